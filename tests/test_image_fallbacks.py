"""Honest fall-backs: text only when too few photos, image-only products without text, and the
evaluation's warning when fusion loses to a component alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from prodcat.data.io import load_official
from prodcat.data.sample import make_demo_dataset
from prodcat.evaluation import evaluate_predictions, fusion_warnings
from prodcat.models.fusion import MIN_PHOTOS_PER_CLASS, text_only_reason
from prodcat.predictor import ProductClassifier


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fallback-demo")
    paths = make_demo_dataset(root, n_train=120, n_test=30, seed=7, image_size=96, progress=False)
    train = load_official(paths.x_train, paths.y_train, paths.images_train)
    test = load_official(paths.x_test, paths.y_test, paths.images_test)
    return train, test, str(tmp_path_factory.getbasetemp() / "prodcat-image-models")


def test_text_only_reason_states_the_threshold() -> None:
    assert text_only_reason(MIN_PHOTOS_PER_CLASS * 27, 27) is None
    reason = text_only_reason(7, 27)
    assert reason is not None and "only 7 training products" in reason and "135 for 27 classes" in reason


def test_balanced_with_too_few_photos_trains_text_only_and_says_so(small_demo, tmp_path: Path, capsys) -> None:
    train, test, cache = small_demo
    n_photos = int(train.X["image_path"].notna().sum())
    assert n_photos < MIN_PHOTOS_PER_CLASS * train.y.nunique()
    model = ProductClassifier("balanced", cache_dir=cache, progress=True).fit(train.X, train.y)
    assert "Text only: only" in capsys.readouterr().err
    assert set(model.components_) == {"text"} and model.fuser_ is None
    assert "text only" in model.describe()
    manifest = json.loads((model.save(tmp_path / "bundle") / "prodcat.json").read_text())
    assert "fewer than 5 per class" in manifest["training"]["text_only_reason"]
    loaded = ProductClassifier.load(tmp_path / "bundle")
    assert loaded.text_only_reason_ == model.text_only_reason_
    np.testing.assert_allclose(loaded.predict_proba(test.X), model.predict_proba(test.X))


def test_text_only_fallback_keeps_the_fuser_of_two_text_components(small_demo) -> None:
    train, test, cache = small_demo
    preset = {"name": "two-texts", "backbone": "lite0",
              "components": [{"name": "words", "kind": "text", "model": "linear"},
                             {"name": "net", "kind": "deep_text", "model": "neural_simple", "params": {"epochs": 2}},
                             {"name": "image", "kind": "image", "model": "logreg"}],
              "fusion": {"method": "blend", "folds": 0, "holdout": 0.3, "refit": ["words", "image"]}}
    model = ProductClassifier(preset, cache_dir=cache, progress=False).fit(train.X, train.y)
    assert model.text_only_reason_ is not None
    assert list(model.components_) == ["words", "net"]
    assert model.fuser_ is not None and model.spec.fusion.refit == ("words",)
    assert model.predict_proba(test.X).shape == (len(test.X), len(model.classes_))


def test_image_preset_trains_and_predicts_on_products_without_text(small_demo, no_ocr) -> None:
    train, test, cache = small_demo
    photo_only = train.X.assign(designation="", description="")
    model = ProductClassifier("image", backbone="lite0", cache_dir=cache, progress=False).fit(photo_only, train.y)
    assert set(model.components_) == {"image", "photo_text"} and model.text_only_reason_ is None
    codes = model.predict(test.X.assign(designation="", description=""))
    assert len(codes) == len(test.X) and set(codes) <= set(model.classes_)


def test_evaluation_warns_when_fusion_loses_to_a_component() -> None:
    y = np.array([1, 1, 2, 2, 3, 3])
    combined = evaluate_predictions(y, [1, 2, 2, 1, 3, 1])
    text = evaluate_predictions(y, y)
    image = evaluate_predictions(y, [1, 1, 1, 1, 1, 1])
    warnings = fusion_warnings(combined, {"text": text, "image": image})
    assert len(warnings) == 1 and "below text alone" in warnings[0] and "--preset fast" in warnings[0]
    assert fusion_warnings(text, {"text": combined}) == []
