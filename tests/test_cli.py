"""End-to-end CLI: train -> predict -> evaluate -> classify on a tiny generated dataset, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from prodcat.cli import main
from prodcat.data.io import read_submission
from prodcat.data.sample import make_demo_dataset


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=400, n_test=80, seed=1,
                             with_images=False, progress=False)


@pytest.fixture(scope="module")
def trained(demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    out = root / "bundle"
    assert main(["train", "--x", str(demo.x_train), "--y", str(demo.y_train), "--out", str(out),
                 "--runs-dir", str(root / "runs")]) == 0
    return out


def test_train_writes_run_folder_never_overwritten(trained: Path, demo, capsys) -> None:
    runs = trained.parent / "runs"
    [run] = list(runs.iterdir())
    assert {"config.json", "metrics.json", "model", "validation"} <= {p.name for p in run.iterdir()}
    assert (run / "validation" / "report.html").exists()
    assert main(["train", "--x", str(demo.x_train), "--y", str(demo.y_train), "--runs-dir", str(runs),
                 "--text-model", "decision_tree"]) == 0
    assert len(list(runs.iterdir())) == 2
    capsys.readouterr()
    assert main(["runs", "--root", str(runs)]) == 0
    listing = capsys.readouterr().out
    assert run.name in listing and "fast" in listing


def test_train_writes_bundle(trained: Path) -> None:
    manifest = json.loads((trained / "prodcat.json").read_text())
    assert manifest["spec"]["components"][0]["model"] == "stack"
    assert len(manifest["classes"]) == 27
    assert 0.3 < manifest["metrics"]["validation"]["weighted_f1"] <= 1.0
    assert len(manifest["training"]["fingerprint"]) == 64


def test_predict_writes_submission_matching_x(demo, trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "submission.csv"
    assert main(["predict", "--model", str(trained), "--x", str(demo.x_test), "--out", str(out)]) == 0
    x_test = pd.read_csv(demo.x_test, index_col=0)
    submission = read_submission(out)
    assert out.read_text().splitlines()[0] == ",prdtypecode"
    assert list(submission.index) == list(x_test.index)
    assert submission.isin(json.loads((trained / "prodcat.json").read_text())["classes"]).all()


def test_evaluate_writes_metrics_tables(demo, trained: Path, tmp_path: Path, capsys) -> None:
    assert main(["evaluate", "--model", str(trained), "--x", str(demo.x_test), "--y", str(demo.y_test),
                 "--out", str(tmp_path)]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert 0.3 < metrics["weighted_f1"] <= 1.0
    per_class = pd.read_csv(tmp_path / "per_class.csv")
    assert {"code", "name", "precision", "recall", "f1", "support"} <= set(per_class.columns)
    assert per_class["support"].sum() == 80
    assert "Per-class" in (tmp_path / "report.html").read_text() or "per-class" in (tmp_path / "report.html").read_text().lower()
    confusion = pd.read_csv(tmp_path / "confusion_matrix.csv", index_col=0)
    assert confusion.to_numpy().sum() == 80
    assert f"{metrics['weighted_f1']:.4f}" in capsys.readouterr().out


def test_classify_prints_top5_with_names(trained: Path, capsys) -> None:
    assert main(["classify", "--model", str(trained), "Piscine gonflable ronde", "avec pompe"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line[:2] in {f"{i}." for i in range(1, 6)}]
    assert len(lines) == 5
    assert "%" in lines[0]


def test_classify_json(trained: Path, capsys) -> None:
    assert main(["classify", "--model", str(trained), "--json", "--top", "3", "Manette console"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert len(payload["top"]) == 3
    assert abs(sum(p["probability"] for p in payload["top"])) <= 1.0 + 1e-6


def test_clean_prints_each_step(capsys) -> None:
    assert main(["clean", "Une table très jolie!", "Dimensions : 60 x 33 cm"]) == 0
    out = capsys.readouterr().out
    assert "Merge columns" in out and "Stem" in out
    assert out.strip().splitlines()[-1].split()[-1] == "cm"


def test_generic_csv_train(tmp_path: Path, demo) -> None:
    x = pd.read_csv(demo.x_train, index_col=0)
    y = pd.read_csv(demo.y_train, index_col=0)
    frame = pd.DataFrame({"title": x["designation"], "code": y["prdtypecode"]})
    frame.to_csv(tmp_path / "generic.csv", index=False)
    assert main(["train", "--x", str(tmp_path / "generic.csv"), "--text-col", "title", "--label-col", "code",
                 "--valid-size", "0", "--out", str(tmp_path / "m"), "--runs-dir", str(tmp_path / "runs")]) == 0
    assert (tmp_path / "m" / "prodcat.json").exists()


@pytest.mark.parametrize(
    "argv_tail, message",
    [
        (["--x", "missing.csv", "--y", "missing.csv"], "missing.csv"),
        (["--x", "{x}"], "--y"),
        (["--x", "{x}", "--text-col", "designation", "--y", "{x}"], "--label-col"),  # --y would be ignored
    ],
)
def test_bad_train_input_is_one_line_error(argv_tail, message, demo, tmp_path: Path, capsys) -> None:
    argv = ["train", *[a.format(x=demo.x_train) for a in argv_tail], "--out", str(tmp_path / "m"),
            "--runs-dir", str(tmp_path / "runs")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_bad_model_dir_is_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["classify", "--model", str(tmp_path), "anything"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a prodcat model bundle" in err and len(err.splitlines()) == 1


def test_unknown_label_code_is_reported(demo, tmp_path: Path, capsys) -> None:
    y = pd.read_csv(demo.y_train, index_col=0)
    y.iloc[3, 0] = 9999
    y.to_csv(tmp_path / "Y_bad.csv")
    assert main(["train", "--x", str(demo.x_train), "--y", str(tmp_path / "Y_bad.csv"), "--out",
                 str(tmp_path / "m"), "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "9999" in err and "Y_bad.csv" in err


def test_bad_argument_exits_non_zero() -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "nope", "--x", "a", "--y", "b", "--out", "c"])
    assert exit_info.value.code == 2
