"""Image-only models: heads on embeddings, and the classical colour-histogram / pixel baseline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from prodcat.models.image import ImageEmbeddingClassifier, PixelHistogramClassifier, pixel_features

LABELS = np.array(["10", "2280", "2583", "50", "1560"])


def synthetic_embeddings(n_per_class: int, seed: int, dim: int = 64):
    """Non-negative, embedding-like vectors: one noisy prototype per class."""
    rng = np.random.default_rng(seed)
    prototypes = np.random.default_rng(123).gamma(1.0, 1.0, (len(LABELS), dim))
    y = np.repeat(LABELS, n_per_class)
    X = prototypes[np.repeat(np.arange(len(LABELS)), n_per_class)] + rng.normal(0, 0.6, (len(y), dim))
    return np.clip(X, 0, None).astype(np.float32), y


@pytest.mark.parametrize("kind", ["logreg", "mlp", "lda"])
def test_embedding_heads_learn_and_generalise(kind):
    X, y = synthetic_embeddings(60, seed=0)
    X_test, y_test = synthetic_embeddings(30, seed=1)
    model = ImageEmbeddingClassifier(kind).fit(X, y)
    assert (model.predict(X_test) == y_test).mean() > 0.9
    proba = model.predict_proba(X_test)
    assert proba.shape == (len(X_test), 5) and np.allclose(proba.sum(axis=1), 1)
    assert list(model.classes_) == sorted(LABELS)
    assert np.array_equal(model.classes_[proba.argmax(axis=1)], model.predict(X_test))


def test_embedding_head_is_a_proper_estimator():
    X, y = synthetic_embeddings(20, seed=0)
    model = ImageEmbeddingClassifier("mlp", hidden_layer_sizes=(32,), class_weight="balanced")
    with pytest.raises(NotFittedError):
        model.predict(X)
    assert clone(model).get_params()["hidden_layer_sizes"] == (32,)
    assert model.fit(X, y) is model and model.n_features_in_ == 64
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :10])
    with pytest.raises(ValueError, match="head"):
        ImageEmbeddingClassifier("svm").fit(X, y)


def test_lda_head_keeps_only_what_predicting_needs_and_persists_code_free(tmp_path):
    import prodcat.components  # noqa: F401  (registers the image component, which trusts the LDA class)
    from prodcat.persist import load_state, save_state

    X, y = synthetic_embeddings(30, seed=0)
    model = ImageEmbeddingClassifier("lda").fit(X, y)
    assert not hasattr(model.model_, "covariance_")  # dim x dim floats, not needed to predict
    save_state(model, tmp_path / "head.npz")
    np.testing.assert_allclose(load_state(tmp_path / "head.npz").predict_proba(X), model.predict_proba(X))
    with pytest.raises(ValueError, match="weights"):
        ImageEmbeddingClassifier("lda").fit(X, y, sample_weight=np.ones(len(y)))


def test_lda_head_tempers_its_overconfident_scores():
    from sklearn.metrics import log_loss

    rng = np.random.default_rng(0)
    y = np.repeat(LABELS, 12)
    X = (rng.normal(0, 1, (len(y), 200)) + 0.4 * (y[:, None] == LABELS[None, :4]).repeat(50, axis=1)).astype(np.float32)
    y_test = np.repeat(LABELS, 20)
    X_test = (rng.normal(0, 1, (len(y_test), 200))
              + 0.4 * (y_test[:, None] == LABELS[None, :4]).repeat(50, axis=1)).astype(np.float32)
    model = ImageEmbeddingClassifier("lda").fit(X, y)
    raw = model.model_.predict_proba(model.scaler_.transform(X_test))
    assert model.temperature_ > 1
    assert log_loss(y_test, model.predict_proba(X_test), labels=model.classes_) < log_loss(y_test, raw, labels=model.classes_)
    assert np.array_equal(model.predict(X_test), model.classes_[raw.argmax(axis=1)])  # same ranking


def coloured_products(n_per_class: int, seed: int, size: int = 48):
    """Red, green or blue objects of random size on white: colour decides the class."""
    rng = np.random.default_rng(seed)
    colours = {"red": (200, 30, 30), "green": (30, 170, 40), "blue": (30, 40, 200)}
    images, labels = [], []
    for label, colour in colours.items():
        for _ in range(n_per_class):
            img = np.full((size, size, 3), 255, dtype=np.uint8)
            side = int(rng.integers(size // 3, size))
            x, y = rng.integers(0, size - side + 1, 2)
            img[y : y + side, x : x + side] = np.clip(np.array(colour) + rng.normal(0, 20, (side, side, 3)), 0, 255)
            images.append(img)
            labels.append(label)
    return np.stack(images), np.array(labels)


@pytest.mark.parametrize("features", ["histogram", "pixels"])
def test_pixel_baseline_separates_colours(features):
    X, y = coloured_products(20, seed=0)
    X_test, y_test = coloured_products(10, seed=1)
    model = PixelHistogramClassifier(features).fit(X, y)
    accuracy = (model.predict(X_test) == y_test).mean()
    assert accuracy > (0.95 if features == "histogram" else 0.8)
    assert model.predict_proba(X_test).shape == (30, 3)


def test_pixel_features():
    img = np.full((1, 10, 10, 3), 255, dtype=np.uint8)
    img[0, :5] = (255, 0, 0)  # top half red, bottom half white
    hist = pixel_features(img, bins=4)
    assert hist.shape == (1, 4**3 + 1)
    red_cell, white_cell = (3 * 4 + 0) * 4 + 0, (3 * 4 + 3) * 4 + 3
    assert hist[0, red_cell] == pytest.approx(0.5) and hist[0, white_cell] == pytest.approx(0.5)
    assert hist[0, -1] == pytest.approx(0.5)  # the seeds' white ratio
    assert pixel_features(img, features="pixels", thumbnail=2).shape == (1, 12)
    with pytest.raises(ValueError):
        pixel_features(img.astype(np.float32))
    with pytest.raises(ValueError, match="features"):
        pixel_features(img, features="sift")


def test_pixel_baseline_reads_paths_and_tolerates_missing_images(tmp_path):
    X, y = coloured_products(6, seed=0)
    paths = []
    for i, img in enumerate(X):
        Image.fromarray(img).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    paths[0] = None  # no image
    paths[1] = str(tmp_path / "missing.jpg")
    model = PixelHistogramClassifier(image_size=32).fit(paths, y)
    assert (model.predict(paths[2:]) == y[2:]).mean() > 0.9
    with pytest.raises(ValueError, match="labels"):
        PixelHistogramClassifier().fit(paths, y[:-1])


def test_lda_head_on_two_photos_a_class_skips_its_temperature_instead_of_failing():
    from prodcat.models.image import ImageEmbeddingClassifier

    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 2)  # inner 2-fold parts: 10 rows for 10 classes
    X = rng.normal(size=(20, 16)) + y[:, None]
    model = ImageEmbeddingClassifier(head="lda").fit(X, y)
    assert model.temperature_ == 1.0 and model.predict_proba(X).shape == (20, 10)
