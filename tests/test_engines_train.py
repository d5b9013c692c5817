"""Training on an engine: the independent fits of a plan (K folds, or a holdout plan's components) as
engine tasks give the same model as the local loop; Ray not installed is one error line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prodcat.cli import main
from prodcat.data.sample import build_demo_table, make_demo_dataset
from prodcat.engines import LocalEngine
from prodcat.errors import ProdcatError
from prodcat.predictor import ProductClassifier

TEXT_MODELS = [{"name": "text", "kind": "text", "model": "linear"},
               {"name": "logreg", "kind": "text", "model": "logistic_regression"}]
OUT_OF_FOLD = {"name": "two_text_folds", "components": TEXT_MODELS, "fusion": {"method": "auto", "folds": 3}}
HOLDOUT = {"name": "two_text_holdout", "components": TEXT_MODELS,
           "fusion": {"method": "auto", "folds": 0, "holdout": 0.2, "refit": ["text"]}}


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    table = build_demo_table(n_train=300, n_test=60, seed=11)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    return train[["designation", "description"]], train["prdtypecode"].to_numpy(), test[["designation", "description"]]


@pytest.fixture(scope="module")
def local_models(split) -> dict[str, ProductClassifier]:
    X, y, _ = split
    return {preset["name"]: ProductClassifier(preset, progress=False).fit(X, y) for preset in (OUT_OF_FOLD, HOLDOUT)}


def _assert_same_model(model: ProductClassifier, reference: ProductClassifier, X: pd.DataFrame) -> None:
    assert model.component_names == reference.component_names
    assert model.fuser_.describe() == reference.fuser_.describe()
    np.testing.assert_array_equal(model.predict_proba(X), reference.predict_proba(X))
    assert set(model.fit_times_) == set(reference.fit_times_)


class _TaskEngine(LocalEngine):
    """The local engine standing in for Ray: the plan takes its engine path (one task per fold, or per
    component of a holdout plan, the inputs shared), counted here."""

    name = "ray"
    calls: list[int] = []

    def map(self, fn, tasks, shared=None):
        tasks = list(tasks)
        _TaskEngine.calls.append(len(tasks))
        return super().map(fn, tasks, shared)


@pytest.mark.parametrize("preset, n_tasks", [(OUT_OF_FOLD, 3), (HOLDOUT, 2)])
def test_engine_tasks_give_the_local_model(preset, n_tasks: int, split, local_models, monkeypatch, capsys) -> None:
    import prodcat.engines

    monkeypatch.setattr(prodcat.engines, "check_engine", lambda name, address=None: None)
    monkeypatch.setattr(prodcat.engines, "get_engine", lambda name, address=None: _TaskEngine())
    _TaskEngine.calls.clear()
    X, y, test = split
    model = ProductClassifier(preset, engine="ray").fit(X, y)
    assert _TaskEngine.calls == [n_tasks]
    assert f"{n_tasks} independent fits as ray tasks" in capsys.readouterr().err
    _assert_same_model(model, local_models[preset["name"]], test)


def test_ray_not_installed_is_one_error_line(tmp_path: Path, monkeypatch, capsys) -> None:
    demo = make_demo_dataset(tmp_path / "demo", n_train=100, n_test=10, seed=3, with_images=False, progress=False)
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    common = ["--x", str(demo.x_train), "--y", str(demo.y_train)]
    for argv in (["train", *common, "--runs-dir", str(tmp_path / "runs"), "--engine", "ray"],
                 ["compare", *common, "--models", "fast", "--out", str(tmp_path / "board"), "--engine", "ray"]):
        assert main(argv) == 2
        error = capsys.readouterr().err
        assert error.startswith("error: ") and "pip install 'prodcat[ray]'" in error and error.count("\n") == 1, error
    assert main(["train", *common, "--runs-dir", str(tmp_path / "runs"), "--address", "auto"]) == 2
    assert "--address needs --engine ray" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "board").exists()
    X = pd.DataFrame({"designation": ["a", "b"]})
    with pytest.raises(ProdcatError, match="unknown engine 'spark'"):
        ProductClassifier(engine="spark").fit(X, [1, 2])


def test_bundle_does_not_keep_the_engine(split, local_models, tmp_path: Path) -> None:
    model = local_models[HOLDOUT["name"]].set_params(engine="ray", address="ray://head:10001")
    params = json.loads((model.save(tmp_path / "model") / "prodcat.json").read_text())["params"]
    assert "engine" not in params and "address" not in params
    loaded = ProductClassifier.load(tmp_path / "model")
    assert (loaded.engine, loaded.address) == ("local", None)
    model.set_params(engine="local", address=None)


# --- on Ray (skipped when Ray is not installed) -------------------------------------------------


@pytest.mark.parametrize("preset", [OUT_OF_FOLD, HOLDOUT])
def test_ray_tasks_give_the_local_model(preset, ray_runtime, split, local_models) -> None:
    X, y, test = split
    model = ProductClassifier(preset, engine="ray", progress=False).fit(X, y)
    _assert_same_model(model, local_models[preset["name"]], test)
