"""ProductClassifier: estimator conventions, bundles, version checks, explanations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from prodcat.errors import DataError, ModelError
from prodcat.predictor import ProductClassifier, data_fingerprint
from prodcat.data.sample import build_demo_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return build_demo_table(n_train=500, n_test=100, seed=3)


@pytest.fixture(scope="module")
def split(table):
    train = table[table["split"] == "train"]
    test = table[table["split"] == "test"]
    return train, test


@pytest.fixture(scope="module")
def fitted(split) -> ProductClassifier:
    train, _ = split
    return ProductClassifier(progress=False).fit(train, train["prdtypecode"])


def test_init_only_stores_params() -> None:
    model = ProductClassifier("fast", text_model="logistic_regression", seed=7)
    assert model.get_params()["text_model"] == "logistic_regression"
    assert not hasattr(model, "classes_")
    assert clone(model).get_params() == model.get_params()


def test_predict_proba_follows_classes(fitted, split) -> None:
    _, test = split
    proba = fitted.predict_proba(test)
    assert proba.shape == (len(test), len(fitted.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(fitted.predict(test), fitted.classes_[proba.argmax(axis=1)])


def test_evaluate_beats_chance(fitted, split) -> None:
    _, test = split
    evaluation = fitted.evaluate(test, test["prdtypecode"])
    assert evaluation.weighted_f1 > 0.5  # 27 classes: chance is under 0.1
    assert evaluation.n == len(test)


def test_accepts_plain_text_lists(fitted) -> None:
    assert fitted.predict(["Piscine hors sol ronde", "Jeu PS4 neuf"]).shape == (2,)


def test_save_load_round_trip(fitted, split, tmp_path: Path) -> None:
    _, test = split
    fitted.save(tmp_path / "bundle")
    loaded = ProductClassifier.load(tmp_path / "bundle")
    np.testing.assert_allclose(loaded.predict_proba(test), fitted.predict_proba(test))
    manifest = json.loads((tmp_path / "bundle" / "prodcat.json").read_text())
    assert {"prodcat", "scikit-learn", "numpy", "python"} <= set(manifest["versions"])
    assert manifest["training"]["fingerprint"] == fitted.fingerprint_


@pytest.mark.parametrize("library", ["scikit-learn", "prodcat"])
def test_load_refuses_incompatible_versions(fitted, tmp_path: Path, library: str) -> None:
    fitted.save(tmp_path / "bundle")
    manifest_path = tmp_path / "bundle" / "prodcat.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["versions"][library] = "9.9"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match=f"saved with {library} 9.9"):
        ProductClassifier.load(tmp_path / "bundle")


def test_load_refuses_unknown_format(fitted, tmp_path: Path) -> None:
    fitted.save(tmp_path / "bundle")
    manifest_path = tmp_path / "bundle" / "prodcat.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "format": 99}))
    with pytest.raises(ModelError, match="format 99"):
        ProductClassifier.load(tmp_path / "bundle")


def test_explain_gives_names_and_words(fitted) -> None:
    [prediction] = fitted.explain(["Piscine tubulaire avec pompe de filtration"], k=5)
    assert len(prediction.top) == 5
    code, name, probability = prediction.top[0]
    assert isinstance(name, str) and 0 < probability <= 1
    assert "text" in prediction.components
    assert prediction.words and all(weight > 0 for _, weight in prediction.words)


def test_fit_rejects_mismatched_lengths(split) -> None:
    train, _ = split
    with pytest.raises(DataError):
        ProductClassifier(progress=False).fit(train, train["prdtypecode"].iloc[:-1])


def test_fingerprint_changes_with_labels(split) -> None:
    train, _ = split
    labels = train["prdtypecode"].to_numpy()
    assert data_fingerprint(train, labels) == data_fingerprint(train, labels.copy())
    assert data_fingerprint(train, labels) != data_fingerprint(train, np.roll(labels, 1))


@pytest.mark.parametrize("model_name", ["linear_svc", "logistic_regression", "random_forest", "kneighbors",
                                        "decision_tree"])
def test_seed_baselines_selectable(split, model_name: str) -> None:
    train, test = split
    model = ProductClassifier(text_model=model_name, progress=False).fit(train, train["prdtypecode"])
    assert model.evaluate(test, test["prdtypecode"]).weighted_f1 > 0.2


def test_bundles_written_before_typed_specs_still_load(fitted, split, tmp_path: Path) -> None:
    from prodcat.bundle import upgrade_spec

    _, test = split
    fitted.save(tmp_path / "bundle")
    manifest_path = tmp_path / "bundle" / "prodcat.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"] = {"description": "old", "components": [{"name": "text", "kind": "text", "model": "linear"}],
                        "backbone": None, "fusion": None}  # as format 1 wrote it before typed specs
    manifest_path.write_text(json.dumps(manifest))
    loaded = ProductClassifier.load(tmp_path / "bundle")
    np.testing.assert_allclose(loaded.predict_proba(test), fitted.predict_proba(test))
    assert loaded.spec.name == "fast"
    old = {"components": [{"name": "minilm", "kind": "text", "model": "minilm"},
                          {"name": "image", "kind": "image", "model": "pixels"}],
           "fusion": {"kind": "blend", "folds": 5}}
    assert upgrade_spec(old) == {"components": [{"name": "minilm", "kind": "deep_text", "model": "minilm"},
                                                {"name": "image", "kind": "pixels"}],
                                 "fusion": {"method": "blend", "folds": 5}}


def test_load_refuses_a_recipe_it_does_not_understand(fitted, tmp_path: Path) -> None:
    fitted.save(tmp_path / "bundle")
    manifest_path = tmp_path / "bundle" / "prodcat.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["spec"]["components"][0]["kind"] = "gone"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="recipe is not understood.*retrain it with `prodcat train`"):
        ProductClassifier.load(tmp_path / "bundle")
