"""`prodcat export --format mlflow`: an MLflow pyfunc model directory written without mlflow, loadable
by prodcat's loader and, where mlflow is installed, by ``mlflow.pyfunc.load_model``."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest

from prodcat.cli import main
from prodcat.data.sample import build_demo_table
from prodcat.export import BUNDLE_ARTIFACT, LOADER_MODULE, bundle_extras, requirement
from prodcat.mlflow_model import ProdcatPythonModel, _load_pyfunc
from prodcat.predictor import ProductClassifier
from prodcat.taxonomy import name_of

PRODUCTS = pd.DataFrame({"designation": ["Piscine tubulaire ronde avec pompe", "Manette sans fil PS4"],
                         "description": ["", "noire"]}, index=[101, 102])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    table = build_demo_table(n_train=300, n_test=27, seed=4)
    train = table[table["split"] == "train"]
    model = ProductClassifier(progress=False).fit(train, train["prdtypecode"])
    model.metrics_ = {"validation": {"n": 60, "review": {"n": 60, "targets": {"0.95": {"threshold": 0.6},
                                                                              "0.98": {"threshold": 0.9}}}}}
    return model.save(tmp_path_factory.mktemp("export") / "model")


@pytest.fixture(scope="module")
def exported(bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("export-out") / "mlflow-model"
    assert main(["export", "--model", str(bundle), "--format", "mlflow", "--out", str(out)]) == 0
    return out


def test_export_writes_mlmodel_bundle_and_requirements(bundle, exported) -> None:
    mlmodel = (exported / "MLmodel").read_text(encoding="utf-8")
    assert f"loader_module: {LOADER_MODULE}" in mlmodel and f"data: {BUNDLE_ARTIFACT}" in mlmodel
    assert sorted(p.name for p in (exported / BUNDLE_ARTIFACT).iterdir()) == sorted(p.name for p in bundle.iterdir())
    assert "prodcat==" in (exported / "requirements.txt").read_text()
    assert "-r requirements.txt" in (exported / "python_env.yaml").read_text()
    assert "prodcat==" in (exported / "conda.yaml").read_text()
    yaml = pytest.importorskip("yaml")
    parsed = yaml.safe_load(mlmodel)
    assert parsed["flavors"]["python_function"]["loader_module"] == LOADER_MODULE
    inputs = json.loads(parsed["signature"]["inputs"])
    assert [c["name"] for c in inputs] == ["designation", "description", "image_path"]


@pytest.mark.parametrize("preset, extras", [("fast", []), ("image", ["image"]), ("balanced", ["image"]),
                                            ("best", ["image", "deep"])])
def test_requirements_name_the_extras_the_model_needs(preset, extras) -> None:
    from prodcat.presets import PRESETS

    assert bundle_extras({"spec": PRESETS[preset], "params": {"preset": preset}}) == extras
    assert requirement(extras).startswith({0: "prodcat==", 1: "prodcat[image]==", 2: "prodcat[deep,image]=="}[len(extras)])


def test_a_text_only_deep_model_requires_the_deep_extra() -> None:
    spec = {"components": [{"name": "text", "kind": "deep_text", "model": "minilm"}]}
    assert bundle_extras({"spec": spec}) == ["deep"]
    assert requirement(["deep"]).startswith("prodcat[deep]==")


def expected_codes(bundle) -> list[int]:
    return ProductClassifier.load(bundle).predict(PRODUCTS).tolist()


def test_loader_predicts_codes_names_probabilities_and_review(bundle, exported) -> None:
    model = _load_pyfunc(str(exported / BUNDLE_ARTIFACT))
    table = model.predict(PRODUCTS)
    assert table.index.tolist() == [101, 102]
    assert table["prdtypecode"].tolist() == expected_codes(bundle)
    assert table["name"].tolist() == [name_of(c) for c in table["prdtypecode"]]
    assert table["needs_review"].tolist() == (table["probability"] < 0.6).tolist()
    strict = model.predict(PRODUCTS, params={"review_target": 0.98, "top": 2})
    assert strict["needs_review"].tolist() == (strict["probability"] < 0.9).tolist() and "code_2" in strict
    assert model.predict(["Piscine tubulaire ronde"])["prdtypecode"].tolist() == expected_codes(bundle)[:1]

    class Context:
        artifacts = {"bundle": str(exported / BUNDLE_ARTIFACT)}

    python_model = ProdcatPythonModel()
    python_model.load_context(Context())
    assert python_model.predict(Context(), PRODUCTS)["prdtypecode"].tolist() == expected_codes(bundle)


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is None, reason="mlflow is not installed (optional)")
def test_mlflow_loads_and_predicts_the_export(bundle, exported) -> None:
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(exported))
    table = model.predict(PRODUCTS)
    assert table["prdtypecode"].tolist() == expected_codes(bundle)
    assert list(table.columns) == ["prdtypecode", "name", "probability", "needs_review"]
    assert "code_3" in model.predict(PRODUCTS, params={"top": 3}).columns


def test_export_refuses_an_existing_directory_and_a_non_bundle(bundle, exported, tmp_path, capsys) -> None:
    before = sorted(p.name for p in exported.iterdir())
    assert main(["export", "--model", str(bundle), "--format", "mlflow", "--out", str(exported)]) == 2
    assert sorted(p.name for p in exported.iterdir()) == before
    assert main(["export", "--model", str(tmp_path), "--format", "mlflow", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error:") for line in err)
    assert "already exists" in err[0] and "not a prodcat model bundle" in err[1]
    assert not (tmp_path / "x").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".x.")]
