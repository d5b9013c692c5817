"""Image-only classifiers: heads on backbone embeddings, and the seeds' classical pixel baseline."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.validation import check_is_fitted, validate_data

HEADS = ("logreg", "mlp", "lda")
PIXEL_FEATURES = ("histogram", "pixels")


class ImageEmbeddingClassifier(ClassifierMixin, BaseEstimator):
    """Standardised embeddings -> logistic regression (``head="logreg"``), a small MLP (``"mlp"``) or
    linear discriminant analysis with a Ledoit-Wolf shrunk covariance (``"lda"``: no parameter to
    tune, one point above logistic regression on the shared real photos). Raw LDA probabilities are
    far too confident (log-loss 11 on real photos), so the ``lda`` head divides its scores by a
    temperature chosen by inner 3-fold log-loss (``temperature_``).

    Fit it on the rows that have an image (``EmbeddingResult.ok``); products without one are
    left to the text model.
    """

    def __init__(
        self,
        head: str = "logreg",
        *,
        C: float = 0.003,
        hidden_layer_sizes: tuple[int, ...] = (512,),
        alpha: float = 1e-3,
        max_iter: int = 300,
        class_weight: str | dict | None = None,
        seed: int | None = 0,
    ) -> None:
        self.head = head
        self.C = C
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.seed = seed

    def _model(self, n_samples: int):
        if self.head == "logreg":
            return LogisticRegression(C=self.C, max_iter=self.max_iter, class_weight=self.class_weight)
        if self.head == "mlp":
            return MLPClassifier(
                hidden_layer_sizes=tuple(self.hidden_layer_sizes),
                alpha=self.alpha,
                max_iter=self.max_iter,
                early_stopping=n_samples >= 200,  # keeps 10% aside to stop before overfitting
                n_iter_no_change=8,
                random_state=self.seed,
            )
        if self.head == "lda":
            return LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto")
        raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")

    def fit(self, X, y, sample_weight=None) -> "ImageEmbeddingClassifier":
        """Learn from embeddings ``X`` (n, dim) and labels ``y``."""
        X, y = validate_data(self, X, y, dtype=np.float32)
        if self.head == "lda" and (sample_weight is not None or self.class_weight is not None):
            raise ValueError("the lda head takes no sample or class weights")
        if self.head == "mlp" and self.class_weight is not None:  # MLP has no class_weight: weigh rows
            weights = compute_sample_weight(self.class_weight, y)
            sample_weight = weights if sample_weight is None else weights * np.asarray(sample_weight)
        self.scaler_ = StandardScaler().fit(X, sample_weight=sample_weight)
        weights = {} if self.head == "lda" else {"sample_weight": sample_weight}
        Z = self.scaler_.transform(X)
        with _one_photo_classes_expected():
            self.model_ = self._model(len(X)).fit(Z, y, **weights)
        self.classes_ = self.model_.classes_
        self.temperature_ = 1.0
        if self.head == "lda":  # predicting needs only coef_ and intercept_: drop the dim x dim covariance
            del self.model_.covariance_
            self.temperature_ = _lda_temperature(Z, y, self.classes_)
        self.n_iter_ = int(np.max(getattr(self.model_, "n_iter_", 1)))
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float32, reset=False)
        if self.head == "lda":
            return _softmax(_lda_scores(self.model_, self.scaler_.transform(X)) / getattr(self, "temperature_", 1.0))
        return self.model_.predict_proba(self.scaler_.transform(X))

    def predict(self, X) -> np.ndarray:
        """Most probable class per row."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    def __setstate__(self, state: dict) -> None:
        """Also reads heads pickled when the parameters were called ``kind`` and ``random_state``."""
        if "kind" in state:
            state["head"] = state.pop("kind")
        if "random_state" in state:
            state["seed"] = state.pop("random_state")
        super().__setstate__(state)


def _lda_scores(model: LinearDiscriminantAnalysis, X: np.ndarray) -> np.ndarray:
    """One score column per class (two classes: LDA gives one column, the second class's log-odds)."""
    scores = model.decision_function(X)
    return np.column_stack([np.zeros_like(scores), scores]) if scores.ndim == 1 else scores


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=1, keepdims=True)
    out = np.exp(scores)
    return out / out.sum(axis=1, keepdims=True)


@contextlib.contextmanager
def _one_photo_classes_expected() -> Iterator[None]:
    """Silence scikit-learn's warning about a class with one row (shrunk covariance): expected, not news."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Only one sample available")
        yield


def _lda_temperature(X: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """The temperature (1 to 100) with the lowest inner 3-fold log-loss of the LDA scores; 1 when
    some class has fewer than 2 rows or an inner part has no more rows than classes."""
    from sklearn.model_selection import StratifiedKFold

    k = min(3, int(np.unique(y, return_counts=True)[1].min()))
    if k < 2:
        return 1.0
    codes = np.searchsorted(classes, y)
    splits = list(StratifiedKFold(k, shuffle=True, random_state=0).split(X, codes))
    if any(len(train) <= len(np.unique(codes[train])) for train, _ in splits):  # LDA needs more rows than classes
        return 1.0
    scores = np.zeros((len(y), len(classes)))
    with _one_photo_classes_expected():
        for train, test in splits:
            lda = LinearDiscriminantAnalysis(solver="lsqr", shrinkage="auto").fit(X[train], codes[train])
            scores[test] = _lda_scores(lda, X[test])
    grid = np.geomspace(1.0, 100.0, 25)
    losses = [-np.log(np.clip(_softmax(scores / t)[np.arange(len(y)), codes], 1e-300, None)).mean() for t in grid]
    return float(grid[int(np.argmin(losses))])


def pixel_features(
    images: np.ndarray, *, features: str = "histogram", bins: int = 8, thumbnail: int = 16
) -> np.ndarray:
    """Classical features of uint8 images ``(n, H, W, 3)``.

    ``"histogram"``: joint RGB colour histogram (``bins**3`` shares) plus the share of near-white
    pixels; ``"pixels"``: the image shrunk to ``thumbnail`` x ``thumbnail``, scaled to [0, 1].
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 images of shape (n, H, W, 3), got {images.dtype} {images.shape}")
    n = len(images)
    if features == "histogram":
        q = (images.astype(np.int64) * bins) >> 8  # 0 .. bins-1 per channel
        cells = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]
        cells = cells.reshape(n, -1) + (np.arange(n) * bins**3)[:, None]
        counts = np.bincount(cells.ravel(), minlength=n * bins**3).reshape(n, bins**3)
        shares = counts / cells.shape[1]
        white = (images.min(axis=-1) >= 240).reshape(n, -1).mean(axis=1, keepdims=True)
        return np.hstack([shares, white]).astype(np.float32)
    if features == "pixels":
        from PIL import Image

        small = [
            np.asarray(Image.fromarray(img).resize((thumbnail, thumbnail), Image.Resampling.BOX))
            for img in images
        ]
        return (np.stack(small).reshape(n, -1) / 255.0).astype(np.float32)
    raise ValueError(f"features must be one of {PIXEL_FEATURES}, got {features!r}")


def load_images(paths: Sequence[str | os.PathLike[str] | None], size: int = 64) -> np.ndarray:
    """Preprocessed uint8 images for paths; missing or unreadable images become all white."""
    from prodcat.data.missing import is_missing
    from prodcat.image.io import ImageError, preprocess

    out = np.full((len(paths), size, size, 3), 255, dtype=np.uint8)
    for i, path in enumerate(paths):
        if is_missing(path):
            continue
        try:
            out[i] = preprocess(path, size)
        except ImageError:
            pass
    return out


class PixelHistogramClassifier(ClassifierMixin, BaseEstimator):
    """The seeds' classical image baseline: colour histograms (or tiny raw pixels) + logistic regression.

    ``X`` is either uint8 images ``(n, H, W, 3)`` or a sequence of image paths (decoded,
    white-border cropped and shrunk to ``image_size``; None or unreadable = blank image).
    """

    def __init__(
        self,
        features: str = "histogram",
        *,
        bins: int = 8,
        thumbnail: int = 16,
        image_size: int = 64,
        C: float = 1.0,
        max_iter: int = 1000,
    ) -> None:
        self.features = features
        self.bins = bins
        self.thumbnail = thumbnail
        self.image_size = image_size
        self.C = C
        self.max_iter = max_iter

    def _featurize(self, X) -> np.ndarray:
        if isinstance(X, np.ndarray) and X.ndim == 4:
            images = X
        else:
            images = load_images(list(X), self.image_size)
        return pixel_features(images, features=self.features, bins=self.bins, thumbnail=self.thumbnail)

    def fit(self, X, y) -> "PixelHistogramClassifier":
        """Learn from images (array or paths) and labels."""
        feats = self._featurize(X)
        y = np.asarray(y)
        if len(feats) != len(y):
            raise ValueError(f"X has {len(feats)} images but y has {len(y)} labels")
        self.scaler_ = StandardScaler().fit(feats)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(self.scaler_.transform(feats), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self.scaler_.transform(self._featurize(X)))

    def predict(self, X) -> np.ndarray:
        """Most probable class per row."""
        check_is_fitted(self, "model_")
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
