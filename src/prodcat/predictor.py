"""``ProductClassifier``: the one public entry point (fit / predict / evaluate / save / load).

Products are rows of a DataFrame with ``designation``, optional ``description`` and optional
``image_path`` (absolute path or None), as produced by :mod:`prodcat.data.io`. A preset
(:mod:`prodcat.presets`) names which components to train; each component is a scikit-learn
classifier over one modality. Products without a usable image fall back to the text model.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

import prodcat
from prodcat.errors import DataError, ModelError
from prodcat.evaluation import Evaluation, evaluate_predictions
from prodcat.presets import DEFAULT_PRESET, get_preset
from prodcat.taxonomy import name_of
from prodcat.text.clean import texts_from

BUNDLE_FORMAT = 1
BUNDLE_MANIFEST = "prodcat.json"
BUNDLE_COMPONENTS = "components.joblib"


@dataclass
class Prediction:
    """Top-k classes of one product, overall and per modality, with the words behind the text."""

    top: list[tuple[int, str, float]]
    modalities: dict[str, list[tuple[int, str, float]]] = field(default_factory=dict)
    words: list[tuple[str, float]] = field(default_factory=list)
    has_image: bool = False

    def to_dict(self) -> dict[str, Any]:
        def rows(items: list[tuple[int, str, float]]) -> list[dict[str, Any]]:
            return [{"code": c, "name": n, "probability": round(p, 6)} for c, n, p in items]

        return {
            "top": rows(self.top),
            "modalities": {m: rows(v) for m, v in self.modalities.items()},
            "words": [{"word": w, "weight": round(s, 6)} for w, s in self.words],
            "has_image": self.has_image,
        }


def _top_k(proba_row: np.ndarray, classes: np.ndarray, k: int) -> list[tuple[int, str, float]]:
    order = np.argsort(-proba_row)[:k]
    return [(int(classes[i]), name_of(int(classes[i])), float(proba_row[i])) for i in order]


def as_products(X: Any) -> pd.DataFrame:
    """Normalise input to a products DataFrame (``designation``, ``description``, ``image_path``)."""
    if isinstance(X, pd.DataFrame) and "designation" in X.columns:
        products = X
    else:
        texts = texts_from(X)
        index = X.index if isinstance(X, (pd.DataFrame, pd.Series)) else None
        products = pd.DataFrame({"designation": texts, "description": ""}, index=index)
    if "image_path" not in products.columns:
        products = products.assign(image_path=None)
    return products


def data_fingerprint(products: pd.DataFrame, y: Sequence[int]) -> str:
    """SHA-256 of the training texts and labels (order-sensitive), to trace a model to its data."""
    digest = hashlib.sha256()
    frame = products[["designation"]].copy()
    frame["description"] = products["description"] if "description" in products else ""
    frame["label"] = np.asarray(y).astype(int)
    digest.update(pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy().tobytes())
    return digest.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions that decide whether a saved bundle can be loaded."""
    return {
        "prodcat": prodcat.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


class ProductClassifier(ClassifierMixin, BaseEstimator):
    """Classify products into the 27 Rakuten codes from text and/or image.

    Parameters follow scikit-learn conventions: the constructor only stores them; ``fit``
    learns ``classes_``, ``components_`` and ``metrics_``.

    preset: name from :data:`prodcat.presets.PRESETS` (``"fast"``, ``"image"``, ...).
    text_model: override the preset's text model name (see :data:`prodcat.models.text.TEXT_MODELS`).
    image_model: override the preset's image head (``"logreg"`` or ``"mlp"``).
    backbone: override the image backbone (``"lite0"`` or ``"lite2"``).
    cache_dir: image embedding cache (default: the user cache dir or ``$PRODCAT_CACHE_DIR``).
    """

    def __init__(
        self,
        preset: str = DEFAULT_PRESET,
        *,
        text_model: str | None = None,
        image_model: str | None = None,
        backbone: str | None = None,
        cache_dir: str | None = None,
        seed: int = 42,
        progress: bool = True,
    ) -> None:
        self.preset = preset
        self.text_model = text_model
        self.image_model = image_model
        self.backbone = backbone
        self.cache_dir = cache_dir
        self.seed = seed
        self.progress = progress

    # -- configuration --------------------------------------------------------------------
    def resolved_spec(self) -> dict[str, Any]:
        """The preset with this object's overrides applied."""
        spec = get_preset(self.preset)
        if self.text_model is not None:
            spec["text"] = {**(spec.get("text") or {}), "model": self.text_model}
        if spec.get("image") is not None:
            if self.image_model is not None:
                spec["image"]["model"] = self.image_model
            if self.backbone is not None:
                spec["image"]["backbone"] = self.backbone
        if not spec.get("text") and not spec.get("image"):
            raise ModelError(f"preset {self.preset!r} enables neither text nor image")
        return spec

    def _embedder(self, spec: dict[str, Any]):
        from prodcat.image.embed import ImageEmbedder

        return ImageEmbedder(spec["image"]["backbone"], cache_dir=self.cache_dir, progress=self.progress)

    def _embed(self, products: pd.DataFrame, spec: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list]:
        paths = products["image_path"].tolist()
        if all(p is None or (isinstance(p, float) and np.isnan(p)) for p in paths):
            return np.zeros((len(products), 0), np.float32), np.zeros(len(products), bool), []
        result = self._embedder(spec).embed(paths)
        return result.vectors, result.ok, result.failures

    # -- fitting --------------------------------------------------------------------------
    def fit(self, X: Any, y: Sequence[int]) -> "ProductClassifier":
        """Train the preset's components on products ``X`` and codes ``y``; returns ``self``."""
        products = as_products(X)
        y = np.asarray(y).astype(int)
        if len(products) != len(y):
            raise DataError(f"{len(products)} products but {len(y)} labels")
        if len(np.unique(y)) < 2:
            raise DataError("training needs at least two different product codes")
        spec = self.resolved_spec()
        started = time.perf_counter()
        self.spec_ = spec
        self.classes_ = np.unique(y)
        self.prior_ = np.bincount(np.searchsorted(self.classes_, y), minlength=len(self.classes_)) / len(y)
        self.components_: dict[str, Any] = {}
        self.image_failures_: list[tuple[str, str]] = []
        if spec.get("text"):
            from prodcat.models.text import TextClassifier

            self._log(f"Training text model ({spec['text']['model']}) on {len(y):,} products")
            self.components_["text"] = TextClassifier(spec["text"]["model"], seed=self.seed).fit(products, y)
        if spec.get("image"):
            from prodcat.models.image import ImageEmbeddingClassifier

            vectors, ok, failures = self._embed(products, spec)
            self.image_failures_ = list(failures)
            if ok.sum() >= 2 and len(np.unique(y[ok])) >= 2:
                self._log(f"Training image model ({spec['image']['model']}) on {int(ok.sum()):,} images")
                self.components_["image"] = ImageEmbeddingClassifier(
                    kind=spec["image"]["model"], random_state=self.seed
                ).fit(vectors[ok], y[ok])
            elif not spec.get("text"):
                raise DataError("the image preset needs images: none of the training products has a readable image")
            else:
                self._log("No usable training images: the image model is skipped")
        self.fit_seconds_ = time.perf_counter() - started
        self.fingerprint_ = data_fingerprint(products, y)
        self.n_train_ = int(len(y))
        self.metrics_: dict[str, Any] = {}
        return self

    def _log(self, message: str) -> None:
        if self.progress:
            import sys

            print(message, file=sys.stderr, flush=True)

    # -- prediction -----------------------------------------------------------------------
    def _aligned(self, component: Any, proba: np.ndarray) -> np.ndarray:
        """Probabilities re-ordered onto ``classes_`` (a component may have seen fewer classes)."""
        out = np.zeros((proba.shape[0], len(self.classes_)))
        out[:, np.searchsorted(self.classes_, component.classes_)] = proba
        return out

    def modality_proba(self, X: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Per-modality probabilities (``classes_`` columns) and the mask of products with an image."""
        check_is_fitted(self, "components_")
        products = as_products(X)
        out: dict[str, np.ndarray] = {}
        has_image = np.zeros(len(products), bool)
        if "text" in self.components_:
            text = self.components_["text"]
            out["text"] = self._aligned(text, text.predict_proba(products))
        if "image" in self.components_:
            vectors, ok, _ = self._embed(products, self.spec_)
            has_image = ok
            proba = np.tile(self.prior_, (len(products), 1))
            if ok.any():
                image = self.components_["image"]
                proba[ok] = self._aligned(image, image.predict_proba(vectors[ok]))
            out["image"] = proba
        return out, has_image

    def combine(self, modalities: dict[str, np.ndarray], has_image: np.ndarray) -> np.ndarray:
        """Fuse per-modality probabilities into one distribution per product."""
        if "text" in modalities and "image" in modalities:
            combined = modalities["text"].copy()
            combined[has_image] = 0.5 * (modalities["text"][has_image] + modalities["image"][has_image])
            return combined
        return next(iter(modalities.values()))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        modalities, has_image = self.modality_proba(X)
        return self.combine(modalities, has_image)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable product type code of each product."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def explain(self, X: Any, k: int = 5, n_words: int = 8) -> list[Prediction]:
        """Top-k classes per product, each modality's own top-k, and the words behind the text."""
        products = as_products(X)
        modalities, has_image = self.modality_proba(products)
        combined = self.combine(modalities, has_image)
        text = self.components_.get("text")
        cleaned = text.clean(products) if text is not None else None
        predictions = []
        for i in range(len(products)):
            top = _top_k(combined[i], self.classes_, k)
            per_modality = {m: _top_k(p[i], self.classes_, k) for m, p in modalities.items()
                            if m != "image" or has_image[i]}
            words = text.top_terms(cleaned[i], top[0][0], n_words) if text is not None else []
            predictions.append(Prediction(top, per_modality, words, bool(has_image[i])))
        return predictions

    def describe(self) -> dict[str, Any]:
        """Short description of the fitted model (preset, components, training size), for reports."""
        check_is_fitted(self, "components_")
        return {"preset": self.preset, "components": ", ".join(sorted(self.components_)),
                "text model": (self.spec_.get("text") or {}).get("model", "-"),
                "image model": (self.spec_.get("image") or {}).get("model", "-"),
                "backbone": (self.spec_.get("image") or {}).get("backbone", "-"),
                "trained on": f"{self.n_train_:,} products" if self.n_train_ else "?",
                "fingerprint": (self.fingerprint_ or "")[:12]}

    def evaluate(self, X: Any, y: Sequence[int]) -> Evaluation:
        """Weighted/macro F1, accuracy, per-class scores and confusion matrix on labelled data."""
        return evaluate_predictions(np.asarray(y).astype(int), self.predict(X), classes=self.classes_)

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model bundle directory (components, config, versions, fingerprint, metrics)."""
        check_is_fitted(self, "components_")
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        joblib.dump({"components": self.components_, "prior": self.prior_}, path / BUNDLE_COMPONENTS, compress=3)
        manifest = {
            "format": BUNDLE_FORMAT,
            "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "params": self.get_params(),
            "spec": self.spec_,
            "classes": [int(c) for c in self.classes_],
            "components": sorted(self.components_),
            "training": {"n": self.n_train_, "fingerprint": self.fingerprint_, "fit_seconds": round(self.fit_seconds_, 2),
                         "image_failures": len(self.image_failures_)},
            "metrics": self.metrics_,
        }
        (path / BUNDLE_MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        return path

    @classmethod
    def read_manifest(cls, path: str | Path) -> dict[str, Any]:
        """The bundle's manifest (config, versions, metrics) without loading the model."""
        manifest_path = Path(path) / BUNDLE_MANIFEST
        if not manifest_path.is_file():
            raise ModelError(f"{path}: not a prodcat model bundle (no {BUNDLE_MANIFEST})")
        try:
            return json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ModelError(f"{manifest_path}: unreadable manifest ({error})") from error

    @classmethod
    def load(cls, path: str | Path) -> "ProductClassifier":
        """Load a bundle written by :meth:`save`; refuses bundles from incompatible versions."""
        manifest = cls.read_manifest(path)
        if manifest.get("format") != BUNDLE_FORMAT:
            raise ModelError(f"{path}: bundle format {manifest.get('format')} is not supported "
                             f"(this prodcat reads format {BUNDLE_FORMAT})")
        saved, current = manifest.get("versions", {}), library_versions()
        for library in ("prodcat", "scikit-learn"):
            if _minor(saved.get(library)) != _minor(current[library]):
                raise ModelError(
                    f"{path}: saved with {library} {saved.get(library)}, this is {current[library]}; "
                    f"retrain the model or install {library}=={saved.get(library)}"
                )
        try:
            state = joblib.load(Path(path) / BUNDLE_COMPONENTS)
        except (OSError, EOFError, ValueError, ImportError, AttributeError) as error:
            raise ModelError(f"{path}: cannot read {BUNDLE_COMPONENTS} ({error})") from error
        model = cls(**manifest["params"])
        model.spec_ = manifest["spec"]
        model.classes_ = np.asarray(manifest["classes"], dtype=int)
        model.components_ = state["components"]
        model.prior_ = state["prior"]
        model.metrics_ = manifest.get("metrics", {})
        training = manifest.get("training", {})
        model.n_train_ = training.get("n")
        model.fingerprint_ = training.get("fingerprint")
        model.fit_seconds_ = training.get("fit_seconds", 0.0)
        model.image_failures_ = []
        model.manifest_ = manifest
        return model


def _minor(version: str | None) -> tuple[str, ...]:
    return tuple((version or "?").split(".")[:2])
