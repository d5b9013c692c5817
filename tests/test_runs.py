"""Run folders: never overwritten, listed with their headline metrics; optional MLflow logging."""

from __future__ import annotations

import json
import sys
import threading
import types

import numpy as np
import pytest

from prodcat.errors import ProdcatError
from prodcat.runs import list_runs, log_to_mlflow, new_run_dir, write_run_files


def test_new_run_dirs_in_the_same_second_never_collide(tmp_path):
    folders = [new_run_dir(tmp_path / "runs", name="fast") for _ in range(30)]
    assert len(set(folders)) == 30 and all(f.is_dir() for f in folders)
    assert all(f.name.endswith("-fast") for f in folders)


def test_new_run_dir_is_safe_across_threads(tmp_path):
    made: list = []
    lock = threading.Lock()

    def make():
        folder = new_run_dir(tmp_path)
        with lock:
            made.append(folder)

    threads = [threading.Thread(target=make) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 16


def test_new_run_dir_does_not_reuse_an_existing_folder(tmp_path):
    first = new_run_dir(tmp_path)
    (first / "model.bin").write_bytes(b"keep me")
    second = new_run_dir(tmp_path)
    assert second != first and (first / "model.bin").read_bytes() == b"keep me"


def test_run_names_are_made_safe(tmp_path):
    assert new_run_dir(tmp_path, name="text only / v2").name.endswith("-text-only-v2")
    with pytest.raises(ProdcatError, match="no usable character"):
        new_run_dir(tmp_path, name="///")


def test_write_and_list_runs(tmp_path):
    root = tmp_path / "runs"
    a = new_run_dir(root, "a")
    write_run_files(a, config={"preset": "fast", "created": "2024-01-01T10:00:00", "seed": np.int64(3)},
                    metrics={"weighted_f1": np.float64(0.81), "macro_f1": 0.77, "accuracy": 0.8, "n": 100})
    b = new_run_dir(root, "b")
    write_run_files(b, config={"preset": "best", "created": "2024-01-02T10:00:00", "paths": {tmp_path}},
                    metrics={"holdout": {"weighted_f1": 0.9, "macro_f1": 0.88, "accuracy": 0.91}})
    new_run_dir(root, "empty")  # no files: not a run yet
    (root / "notes.txt").write_text("not a run")
    runs = list_runs(root)
    assert list(runs.columns) == ["run", "created", "preset", "weighted_f1", "macro_f1", "accuracy", "path"]
    assert runs["run"].tolist() == [a.name, b.name]
    assert runs["preset"].tolist() == ["fast", "best"]
    assert runs["weighted_f1"].tolist() == [0.81, 0.9]
    assert runs.loc[1, "macro_f1"] == 0.88 and runs.loc[0, "path"] == str(a)
    assert json.loads((a / "config.json").read_text())["seed"] == 3


def test_write_run_files_adds_created(tmp_path):
    run = new_run_dir(tmp_path)
    write_run_files(run, config={"preset": "fast"}, metrics={"weighted_f1": float("nan")})
    config = json.loads((run / "config.json").read_text())
    assert config["preset"] == "fast" and config["created"][:4].isdigit()
    assert np.isnan(list_runs(tmp_path).loc[0, "weighted_f1"])
    with pytest.raises(ProdcatError, match="does not exist"):
        write_run_files(tmp_path / "nope", config={}, metrics={})


def test_list_runs_survives_a_broken_file(tmp_path):
    run = new_run_dir(tmp_path)
    (run / "metrics.json").write_text("{not json")
    with pytest.warns(UserWarning, match="unreadable JSON"):
        runs = list_runs(tmp_path)
    assert len(runs) == 1 and np.isnan(runs.loc[0, "accuracy"]) and runs.loc[0, "preset"] is None


def test_list_runs_of_a_missing_root_is_empty(tmp_path):
    runs = list_runs(tmp_path / "nothing")
    assert runs.empty and "weighted_f1" in runs.columns


def test_log_to_mlflow_without_mlflow_warns(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # makes `import mlflow` raise ImportError
    with pytest.warns(UserWarning, match="mlflow is not installed"):
        assert log_to_mlflow(None, run_name="r", params={}, metrics={}) is False


def test_log_to_mlflow_logs_flattened_params_and_numeric_metrics(monkeypatch, tmp_path):
    calls: dict = {}

    class Run:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake = types.SimpleNamespace(
        set_tracking_uri=lambda uri: calls.setdefault("uri", uri),
        start_run=lambda run_name: calls.setdefault("run_name", run_name) and Run(),
        log_params=lambda p: calls.setdefault("params", p),
        log_metrics=lambda m: calls.setdefault("metrics", m),
        log_artifacts=lambda d: calls.setdefault("artifacts", d),
    )
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    ok = log_to_mlflow("file:///tmp/x", run_name="run-1",
                       params={"preset": "fast", "text": {"C": 1.0, "ngrams": [1, 2]}},
                       metrics={"weighted_f1": 0.8, "per_class": {"10": 0.5}, "note": "x", "bad": float("nan")},
                       artifacts_dir=tmp_path)
    assert ok is True
    assert calls["uri"] == "file:///tmp/x" and calls["run_name"] == "run-1"
    assert calls["params"] == {"preset": "fast", "text.C": "1.0", "text.ngrams": "[1, 2]"}
    assert calls["metrics"] == {"weighted_f1": 0.8, "per_class.10": 0.5}
    assert calls["artifacts"] == str(tmp_path)
