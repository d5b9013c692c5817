"""Web demonstrator with Streamlit's AppTest: classify page, dataset examples, evaluation report, launcher."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from prodcat.data.io import load_official, make_products
from prodcat.data.sample import build_demo_table, make_demo_dataset
from prodcat.errors import DataError, ModelError
from prodcat.predictor import ProductClassifier
from prodcat.serve import launch, webdata
from prodcat.taxonomy import name_of

WEBAPP = str(launch.WEBAPP)
REPORT_MARKER = "prodcat-report-marker-7f3a"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A run folder as `prodcat train` writes it: run/model (bundle) and run/validation/report.html."""
    run = tmp_path_factory.mktemp("serve-webapp") / "run-1"
    table = build_demo_table(n_train=540, n_test=27, seed=9)
    train = table[table["split"] == "train"]
    model = ProductClassifier(progress=False).fit(train, train["prdtypecode"])
    model.metrics_ = {"validation": {"weighted_f1": 0.8123, "macro_f1": 0.79, "accuracy": 0.81}}
    model.save(run / "model")
    (run / "validation").mkdir()
    (run / "validation" / "report.html").write_text(
        f"<html><body><h1>Evaluation</h1><p>{REPORT_MARKER}</p></body></html>", encoding="utf-8")
    return run


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_demo_dataset(tmp_path_factory.mktemp("serve-webapp-data"), n_train=30, n_test=27, image_size=64,
                             progress=False)


@pytest.fixture
def app(run_dir, monkeypatch):
    def start(data: str | None = None, report: str | None = None, model: Path | None = None) -> AppTest:
        config = webdata.AppConfig(str(model or run_dir / "model"), data, report)
        for name in (webdata.ENV_MODEL, webdata.ENV_DATA, webdata.ENV_REPORT):
            monkeypatch.delenv(name, raising=False)
        for name, value in config.environment().items():
            monkeypatch.setenv(name, value)
        return AppTest.from_file(WEBAPP, default_timeout=60)

    return start


def values(elements) -> list[str]:
    return [e.value for e in elements]


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


def test_classify_page_shows_top5_chart_names_and_words(app, run_dir) -> None:
    at = app()
    at.run()
    assert not at.exception
    assert "Rakuten" in at.title[0].value and values(at.header) == ["Classify a product"]
    assert "0.812" in " ".join(m.value for m in at.sidebar.metric)
    at.text_input[0].set_value("Piscine tubulaire ronde avec pompe de filtration")
    at.text_area[0].set_value("Piscine hors-sol pour le jardin")
    at.button[0].click().run()
    assert not at.exception and not at.error
    model = ProductClassifier.load(run_dir / "model")
    expected = int(model.predict(make_products("Piscine tubulaire ronde avec pompe de filtration",
                                               "Piscine hors-sol pour le jardin"))[0])
    assert at.subheader[0].value.startswith(f"{name_of(expected)} ({expected})")
    table = at.dataframe[0].value
    assert list(table.columns) == ["code", "name", "probability", "text"]
    assert len(table) == 5 and table["code"].iloc[0] == expected
    assert table["probability"].is_monotonic_decreasing
    assert list(table["name"]) == [name_of(c) for c in table["code"]]
    charts = at.get("vega_lite_chart")
    assert len(charts) == 1
    spec = json.loads(charts[0].proto.spec)
    assert spec["encoding"]["y"]["sort"][0].startswith(name_of(expected))  # best class first
    assert any("Words behind the text prediction" in m.value and "piscine" in m.value for m in at.markdown)


def test_classify_page_reports_bad_input(app) -> None:
    at = app()
    at.run()
    at.button[0].click().run()
    assert any("needs a designation, a description or an image" in e.value for e in at.error)
    at.text_input[0].set_value("Jeu de société")
    at.file_uploader[0].set_value(("notes.png", b"this is not a picture", "image/png"))
    at.button[0].click().run()
    assert any("photo: not an image" in e.value for e in at.error)


def test_photo_sent_to_a_text_model_is_explained(app) -> None:
    at = app()
    at.run()
    at.text_input[0].set_value("Figurine Pokémon")
    at.file_uploader[0].set_value(("photo.png", png_bytes(), "image/png"))
    at.button[0].click().run()
    assert not at.error
    assert any("does not use photos" in w.value for w in at.warning)
    assert len(at.dataframe) == 1


def test_query_string_prefills_and_classifies(app) -> None:
    at = app()
    at.query_params["designation"] = "Manette sans fil pour console"
    at.run()
    assert at.text_input[0].value == "Manette sans fil pour console"
    assert len(at.dataframe) == 1 and at.subheader


def test_examples_page_classifies_the_first_products(app, dataset, run_dir) -> None:
    at = app(data=str(dataset.x_train))
    at.run()
    at.sidebar.radio[0].set_value("examples").run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert len(table) == 5
    truth = load_official(dataset.x_train, dataset.y_train, dataset.images_train)
    assert list(table["row"]) == list(truth.X.index[:5])
    assert list(table["true code"]) == list(truth.y.iloc[:5])
    model = ProductClassifier.load(run_dir / "model")
    assert list(table["predicted"]) == [int(c) for c in model.predict(truth.X.iloc[:5])]
    assert list(table["correct"]) == list(table["predicted"] == table["true code"])
    assert len(at.expander) == 5
    with_photo = truth.X["image_path"].iloc[:5].notna().to_numpy()
    assert list(table["photo"].notna()) == list(with_photo) and with_photo.any()
    assert table["photo"].dropna().str.startswith("data:image/jpeg;base64,").all()
    at.slider[0].set_value(8).run()
    assert len(at.dataframe[0].value) == 8


def test_examples_page_without_data_says_how_to_get_it(app) -> None:
    at = app()
    at.run()
    at.sidebar.radio[0].set_value("examples").run()
    assert any("--data" in i.value for i in at.info)


def test_report_page_embeds_the_run_folder_report(app, run_dir, tmp_path) -> None:
    at = app()
    at.query_params["page"] = "report"
    at.run()
    assert at.header[0].value == "Evaluation report"
    embedded = at.get("iframe")
    assert len(embedded) == 1 and REPORT_MARKER in embedded[0].proto.srcdoc
    other = tmp_path / "other.html"
    other.write_text("<p>another report</p>", encoding="utf-8")
    at = app(report=str(other))
    at.query_params["page"] = "report"
    at.run()
    assert "another report" in at.get("iframe")[0].proto.srcdoc


def test_report_page_without_report(app, run_dir, tmp_path) -> None:
    bundle = tmp_path / "bundle"
    ProductClassifier.load(run_dir / "model").save(bundle)
    at = app(model=bundle)
    at.query_params["page"] = "report"
    at.run()
    assert any("No evaluation report" in i.value and "--report" in i.value for i in at.info)


def test_app_without_a_usable_model_says_so(app, tmp_path, monkeypatch) -> None:
    at = app(model=tmp_path)
    at.run()
    assert any("not a prodcat model bundle" in e.value for e in at.error)
    monkeypatch.delenv(webdata.ENV_MODEL)
    at = AppTest.from_file(WEBAPP, default_timeout=60)
    at.run()
    assert any("--model" in e.value for e in at.error)


# -- launcher and helpers ---------------------------------------------------------------------

def test_webapp_command_checks_inputs_and_stays_on_loopback(run_dir, dataset, tmp_path) -> None:
    command, env = launch.webapp_command(run_dir / "model", port=8599, data=str(dataset.x_train))
    assert command[1:4] == ["-m", "streamlit", "run"] and command[4] == WEBAPP
    assert "--server.address=127.0.0.1" in command and "--server.port=8599" in command
    assert "--server.headless=true" in command and "--browser.gatherUsageStats=false" in command
    assert env[webdata.ENV_MODEL] == str((run_dir / "model").resolve())
    assert env[webdata.ENV_DATA] == str(dataset.x_train.resolve())
    with pytest.raises(ModelError):
        launch.webapp_command(tmp_path)
    with pytest.raises(DataError, match="dataset file not found"):
        launch.webapp_command(run_dir / "model", data=str(tmp_path / "missing.csv"))
    with pytest.raises(DataError, match="report not found"):
        launch.webapp_command(run_dir / "model", report=str(tmp_path / "missing.html"))


def test_official_layout_guesses(tmp_path) -> None:
    (tmp_path / "images" / "image_train").mkdir(parents=True)
    (tmp_path / "image_test").mkdir()
    x_train = tmp_path / "X_train_update.csv"
    assert webdata.guess_images_dir(x_train) == tmp_path / "images" / "image_train"
    assert webdata.guess_images_dir(tmp_path / "X_test_update.csv") == tmp_path / "image_test"
    assert webdata.guess_images_dir(tmp_path / "products.csv") is None
    assert webdata.guess_labels_path(x_train) is None
    (tmp_path / "Y_train_CVw08PX.csv").write_text("prdtypecode\n")
    assert webdata.guess_labels_path(x_train) == tmp_path / "Y_train_CVw08PX.csv"
    (tmp_path / "X_train_sample.csv").write_text("")
    (tmp_path / "Y_train_sample.csv").write_text("")
    assert webdata.guess_labels_path(tmp_path / "X_train_sample.csv") == tmp_path / "Y_train_sample.csv"


def test_examples_from_real_sample(shared_data) -> None:
    examples = webdata.load_examples(shared_data / "rakuten_sample" / "X_train_sample.csv", n=5)
    assert len(examples.products) == 5 and examples.labels is not None
    assert examples.images_dir == shared_data / "rakuten_sample" / "image_train"
    assert examples.products["designation"].str.len().gt(0).all()


def test_chart_frame_has_one_row_per_class_and_source() -> None:
    answer = {"top": [{"code": 10, "name": "Livre d'occasion", "probability": 0.6,
                       "by_modality": {"text": 0.7, "image": 0.5}},
                      {"code": 2705, "name": "Livre neuf", "probability": 0.3,
                       "by_modality": {"text": 0.2, "image": 0.4}}],
              "modalities": {"text": [], "image": []}}
    frame = webdata.chart_frame(answer)
    assert len(frame) == 6
    assert list(frame[frame["source"] == "combined"]["probability"]) == [0.6, 0.3]
    assert frame.loc[(frame["label"] == "Livre neuf (2705)") & (frame["source"] == "image"), "probability"].item() == 0.4
    table = webdata.top_table(answer)
    assert list(table.columns) == ["code", "name", "probability", "text", "image"]
    np.testing.assert_allclose(table["image"], [0.5, 0.4])
    assert isinstance(table, pd.DataFrame)
