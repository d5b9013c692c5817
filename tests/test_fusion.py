"""Late and early fusion: fusers on synthetic probabilities, and the balanced preset on demo images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prodcat.data.io import load_official
from prodcat.data.sample import make_demo_dataset
from prodcat.models.fusion import BlendFuser, StackingFuser, out_of_fold
from prodcat.predictor import ProductClassifier

CLASSES = np.array([10, 40, 50])


def _noisy(truth: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities that favour the true class with some strength, else random."""
    logits = rng.normal(size=(len(truth), len(CLASSES)))
    logits[np.arange(len(truth)), np.searchsorted(CLASSES, truth)] += strength
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    y = rng.choice(CLASSES, size=1200)
    has_image = rng.random(1200) < 0.8
    probas = {"text": _noisy(y, 1.2, rng), "image": _noisy(y, 1.2, rng)}
    return y, has_image, probas


def _accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float((CLASSES[proba.argmax(axis=1)] == y).mean())


@pytest.mark.parametrize("fuser_class", [StackingFuser, BlendFuser])
def test_fusion_beats_each_component_on_complementary_signals(synthetic, fuser_class) -> None:
    y, has_image, probas = synthetic
    train, test = slice(0, 800), slice(800, None)
    fuser = fuser_class(["text"], ["image"]).fit({k: v[train] for k, v in probas.items()}, y[train],
                                                 has_image[train], CLASSES)
    fused = fuser.predict_proba({k: v[test] for k, v in probas.items()}, has_image[test])
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-9)
    with_image = has_image[test]
    assert _accuracy(fused[with_image], y[test][with_image]) > _accuracy(probas["text"][test][with_image],
                                                                         y[test][with_image]) + 0.03


def test_products_without_image_ignore_the_image_component(synthetic) -> None:
    y, has_image, probas = synthetic
    fuser = StackingFuser(["text"], ["image"]).fit(probas, y, has_image, CLASSES)
    scrambled = {"text": probas["text"], "image": probas["image"][::-1]}
    no_image = np.zeros(len(y), bool)
    np.testing.assert_allclose(fuser.predict_proba(probas, no_image), fuser.predict_proba(scrambled, no_image))


def test_blend_weights_lie_on_the_simplex(synthetic) -> None:
    y, has_image, probas = synthetic
    weights = BlendFuser(["text"], ["image"]).fit(probas, y, has_image, CLASSES).weights()["with_image"]
    assert abs(sum(weights.values()) - 1) < 1e-9 and all(w >= 0 for w in weights.values())


def test_out_of_fold_never_scores_a_product_with_a_model_that_saw_it() -> None:
    y = np.repeat(CLASSES, 20)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def fit_predict(train: np.ndarray, held_out: np.ndarray) -> dict[str, np.ndarray]:
        seen.append((train, held_out))
        return {"m": np.full((len(held_out), len(CLASSES)), 1 / 3)}

    out = out_of_fold(fit_predict, y, folds=4, seed=0)
    assert out["m"].shape == (len(y), len(CLASSES))
    assert all(not set(train) & set(held_out) for train, held_out in seen)
    assert sorted(np.concatenate([held_out for _, held_out in seen]).tolist()) == list(range(len(y)))


# --- the balanced preset on demo products with images ------------------------------------------


@pytest.fixture(scope="module")
def demo_images(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fusion-demo")
    paths = make_demo_dataset(root, n_train=320, n_test=80, seed=5, progress=False)
    train = load_official(paths.x_train, paths.y_train, paths.images_train)
    test = load_official(paths.x_test, paths.y_test, paths.images_test)
    return train, test, str(tmp_path_factory.getbasetemp() / "prodcat-image-models")


@pytest.fixture(scope="module")
def balanced(demo_images) -> ProductClassifier:
    train, _, cache = demo_images
    return ProductClassifier("balanced", cache_dir=cache, progress=False).fit(train.X, train.y)


def test_balanced_leaderboard_lists_components_and_fusions(balanced, demo_images) -> None:
    _, test, _ = demo_images
    board = balanced.leaderboard(test.X, test.y)
    assert {"fusion: stack", "fusion: blend"} <= set(board["model"])
    assert any(board["model"].str.startswith("text")) and any(board["model"].str.startswith("image"))
    assert {"weighted_f1", "macro_f1", "accuracy", "fit_s", "predict_ms_per_1000", "modality"} <= set(board.columns)
    assert board["weighted_f1"].is_monotonic_decreasing


def test_balanced_falls_back_to_text_without_images(balanced, demo_images) -> None:
    _, test, _ = demo_images
    without = test.X.assign(image_path=None)
    modalities, has_image = balanced.modality_proba(without)
    assert not has_image.any()
    proba = balanced.predict_proba(without)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert set(balanced.explain(without.head(2))[0].modalities) == {"text"}


def test_image_bytes_match_image_files(balanced, demo_images) -> None:
    _, test, _ = demo_images
    rows = test.X[test.X["image_path"].notna()].head(3)
    from_files = balanced.predict_proba(rows)
    in_memory = rows.assign(image_bytes=[Path(p).read_bytes() for p in rows["image_path"]], image_path=None)
    np.testing.assert_allclose(balanced.predict_proba(in_memory), from_files, atol=1e-5)


def test_bad_image_bytes_fall_back_to_text(balanced, demo_images) -> None:
    _, test, _ = demo_images
    rows = test.X.head(2).assign(image_path=None, image_bytes=[b"not an image", None])
    modalities, has_image = balanced.modality_proba(rows)
    assert not has_image.any()


def test_balanced_round_trips_through_a_bundle(balanced, demo_images, tmp_path: Path) -> None:
    _, test, _ = demo_images
    balanced.save(tmp_path / "bundle")
    loaded = ProductClassifier.load(tmp_path / "bundle")
    np.testing.assert_allclose(loaded.predict_proba(test.X), balanced.predict_proba(test.X))
