"""``ProductClassifier``: the one public entry point (fit / predict / evaluate / save / load).

Products are rows of a DataFrame with ``designation``, optional ``description``, optional
``image_path`` (absolute path or None) and optional ``image_bytes`` (an encoded image held in
memory, e.g. an upload: embedded without touching the on-disk cache), as produced by
:mod:`prodcat.data.io`. A preset (:mod:`prodcat.presets`) names the components to train; with
several components a fuser (:mod:`prodcat.models.fusion`) combines their probabilities.
Products without a usable image fall back to the text components.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

import prodcat
from prodcat import components as comp
from prodcat import safe_bundle
from prodcat.errors import DataError, ModelError
from prodcat.evaluation import Evaluation, evaluate_predictions
from prodcat.presets import DEFAULT_PRESET, get_preset
from prodcat.safe_bundle import BUNDLE_FORMAT, BUNDLE_MANIFEST  # noqa: F401 (re-exported)
from prodcat.taxonomy import name_of
from prodcat.text.clean import texts_from


# One BLAS thread: on a shared 2-core machine OpenBLAS threads spin against each other (and
# against onnxruntime and decoding workers); a logistic regression on image embeddings measured
# 20x slower with the default. Parallel work happens in processes and onnxruntime instead.
BLAS_THREADS = 1


@functools.cache
def _threadpools() -> ThreadpoolController:
    """One controller per process (building one rescans the loaded libraries: 1-5 ms)."""
    return ThreadpoolController()


def _one_blas_thread():
    return _threadpools().limit(limits=BLAS_THREADS, user_api="blas")


@functools.lru_cache(maxsize=4)
def _embedder(backbone: str, cache_dir: str | None, tta: bool = False):
    """One image embedder (and ONNX session, ~30 ms to build) per backbone, cache and TTA per process."""
    from prodcat.image.embed import ImageEmbedder

    return ImageEmbedder(backbone, cache_dir=cache_dir, tta=tta)


@dataclass
class Prediction:
    """Top-k classes of one product, overall and per component, with the words behind the text."""

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

    The constructor only stores parameters; ``fit`` learns ``classes_``, ``components_``,
    ``fuser_`` and the training fingerprint.

    preset: name from :data:`prodcat.presets.PRESETS` (``"fast"``, ``"image"``, ``"balanced"``, ``"best"``).
    text_model: override the model of the preset's ``text`` component (any name of
        :func:`prodcat.components.text_model_names`).
    image_model: override the head of the ``image`` component (``"logreg"`` or ``"mlp"``).
    backbone: override the image backbone (``"lite0"``, ``"lite1"`` or ``"lite2"``).
    fusion: override the fuser (``"auto"``: chosen by out-of-fold log-loss; ``"classwise"``, ``"stack"``
        or ``"blend"``; see :func:`prodcat.models.fusion.choose_fuser`).
    time_limit: seconds for the whole fit; deep components get their share of it.
    cache_dir: image embedding cache (default: the user cache dir or ``$PRODCAT_CACHE_DIR``).
    """

    def __init__(
        self,
        preset: str = DEFAULT_PRESET,
        *,
        text_model: str | None = None,
        image_model: str | None = None,
        backbone: str | None = None,
        fusion: str | None = None,
        time_limit: float | None = None,
        cache_dir: str | None = None,
        seed: int = 42,
        progress: bool = True,
    ) -> None:
        self.preset = preset
        self.text_model = text_model
        self.image_model = image_model
        self.backbone = backbone
        self.fusion = fusion
        self.time_limit = time_limit
        self.cache_dir = cache_dir
        self.seed = seed
        self.progress = progress

    # -- configuration --------------------------------------------------------------------
    def resolved_spec(self) -> dict[str, Any]:
        """The preset with this object's overrides applied."""
        spec = get_preset(self.preset)
        for entry in spec["components"]:
            if entry["name"] == "text" and self.text_model is not None:
                entry["model"] = self.text_model
            if entry["name"] == "image" and self.image_model is not None:
                entry["model"] = self.image_model
        if self.backbone is not None and spec.get("backbone"):
            spec["backbone"] = self.backbone
        if self.fusion is not None and spec.get("fusion"):
            spec["fusion"]["kind"] = self.fusion
        return spec

    def _log(self, message: str) -> None:
        if self.progress:
            print(message, file=sys.stderr, flush=True)

    def _inputs(self, products: pd.DataFrame, spec: dict[str, Any]) -> comp.Inputs:
        """Products plus image embeddings when the spec's components read them."""
        n = len(products)
        if not comp.needs_images(spec["components"]):
            return comp.Inputs(products, np.zeros((n, 0), np.float32), np.zeros(n, bool))
        images = list(products["image_path"])
        if "image_bytes" in products.columns:
            images = [b if b is not None and not _is_missing(b) else p
                      for b, p in zip(products["image_bytes"], images)]
        if all(_is_missing(i) for i in images):
            return comp.Inputs(products, np.zeros((n, 0), np.float32), np.zeros(n, bool))
        embedder = _embedder(spec["backbone"], self.cache_dir, bool(spec.get("tta", False)))
        embedder.progress = self.progress and n > 256
        result = embedder.embed(images)
        return comp.Inputs(products, result.vectors, result.ok, list(result.failures))

    # -- fitting --------------------------------------------------------------------------
    def _budget(self, entry: dict[str, Any]) -> float | None:
        """A component's share of ``time_limit`` (its ``budget`` fraction, 10% by default)."""
        limit = self.time_limit if self.time_limit is not None else self.spec_.get("time_limit")
        return None if limit is None else float(limit) * float(entry.get("budget", 0.1))

    def _fit_components(self, inputs: comp.Inputs, y: np.ndarray, spec: dict[str, Any]) -> dict[str, Any]:
        """Fresh components of ``spec`` fitted on ``inputs``; untrainable ones are left out."""
        fitted: dict[str, Any] = {}
        for entry in spec["components"]:
            estimator = comp.build(entry, seed=self.seed, time_limit=self._budget(entry))
            started = time.perf_counter()
            model = comp.fit(entry, estimator, inputs, y)
            if model is None:
                self._log(f"  {entry['name']}: skipped (not enough products with a usable image)")
                continue
            fitted[entry["name"]] = model
            self.fit_times_[entry["name"]] = self.fit_times_.get(entry["name"], 0.0) + time.perf_counter() - started
        return fitted

    def fit(self, X: Any, y: Sequence[int]) -> "ProductClassifier":
        """Train the preset's components (and fuser) on products ``X`` and codes ``y``; returns ``self``."""
        with _one_blas_thread():
            return self._fit(X, y)

    def _fit(self, X: Any, y: Sequence[int]) -> "ProductClassifier":
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
        self.fit_times_: dict[str, float] = {}
        inputs = self._inputs(products, spec)
        self.image_failures_ = inputs.failures
        if comp.needs_images(spec["components"]) and not inputs.has_image.any():
            if all(comp.uses_image(e) for e in spec["components"]):
                raise DataError(f"preset {self.preset!r} needs images: none of the training products has a "
                                "readable image (pass --images / an image_path column)")
            self._log("No usable training images: image components are skipped")
        self.text_only_reason_ = _text_only_reason(spec, inputs.has_image, len(self.classes_))
        if self.text_only_reason_:
            self._log(f"Text only: {self.text_only_reason_}")
            spec = self.spec_ = {**spec, "fusion": None,
                                 "components": [e for e in spec["components"] if not comp.needs_images([e])]}
        names = ", ".join(e["name"] for e in spec["components"])
        self._log(f"Training {names} on {len(y):,} products ({int(inputs.has_image.sum()):,} with an image)")
        self.fuser_ = self.blend_ = None
        fusion = spec.get("fusion")
        if fusion and len(spec["components"]) > 1:
            self.components_ = self._fit_with_fusion(inputs, y, spec, fusion)
        else:
            self.components_ = self._fit_components(inputs, y, spec)
        if not self.components_:
            raise DataError("no component could be trained on this data")
        self.fit_seconds_ = time.perf_counter() - started
        self.fingerprint_ = data_fingerprint(products, y)
        self.n_train_ = int(len(y))
        self.metrics_: dict[str, Any] = {}
        return self

    def _fit_with_fusion(self, inputs: comp.Inputs, y: np.ndarray, spec: dict[str, Any],
                         fusion: dict[str, Any]) -> dict[str, Any]:
        """Fit components, the chosen fuser and the blend without leakage."""
        from prodcat.models.fusion import BlendFuser, choose_fuser, out_of_fold

        entries = {e["name"]: e for e in spec["components"]}

        def score(models: dict[str, Any], part: comp.Inputs) -> dict[str, np.ndarray]:
            return {n: comp.proba(entries[n], m, part, self.classes_, self.prior_) for n, m in models.items()}

        if fusion.get("folds", 5) >= 2:
            def fit_predict(train: np.ndarray, held_out: np.ndarray) -> dict[str, np.ndarray]:
                return score(self._fit_components(inputs.take(train), y[train], spec), inputs.take(held_out))

            held_out_proba = out_of_fold(fit_predict, y, folds=int(fusion["folds"]), seed=self.seed, progress=self._log)
            held_out_y, held_out_image = y, inputs.has_image
            self._log("  refitting every component on all the training data")
            fitted = self._fit_components(inputs, y, spec)
        else:
            from sklearn.model_selection import train_test_split

            counts = np.bincount(np.searchsorted(self.classes_, y))
            train, held_out = train_test_split(np.arange(len(y)), test_size=float(fusion.get("holdout", 0.15)),
                                               random_state=self.seed, stratify=y if counts.min() >= 2 else None)
            fitted = self._fit_components(inputs.take(train), y[train], spec)
            held_out_proba = score(fitted, inputs.take(held_out))
            held_out_y, held_out_image = y[held_out], inputs.has_image[held_out]
            refit = [e for e in spec["components"] if e["name"] in fusion.get("refit", ()) and e["name"] in fitted]
            if refit:  # cheap components: the fuser learnt from their held-out scores; now use all the data
                self._log(f"  refitting {', '.join(e['name'] for e in refit)} on all the training data")
                fitted.update(self._fit_components(inputs, y, {**spec, "components": refit}))
        present = [n for n in fitted if n in held_out_proba]
        text_like = [n for n in present if not comp.uses_image(entries[n])]
        image_like = [n for n in present if comp.uses_image(entries[n])]
        if not text_like:  # only image components: products without an image get the prior
            text_like, held_out_proba = ["_prior"], {**held_out_proba, "_prior": np.tile(self.prior_, (len(held_out_y), 1))}
        self.fuser_, self.fuser_losses_ = choose_fuser(fusion.get("kind", "auto"), text_like, image_like, held_out_proba,
                                                       held_out_y, held_out_image, self.classes_, seed=self.seed)
        self._log(f"  fuser: {self.fuser_.describe()['kind']}"
                  + "".join(f", {k} log-loss {v:.3f}" for k, v in self.fuser_losses_.items()))
        self.blend_ = BlendFuser(text_like, image_like).fit(held_out_proba, held_out_y, held_out_image, self.classes_)
        return fitted

    # -- prediction -----------------------------------------------------------------------
    def modality_proba(self, X: Any) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Each component's probabilities (``classes_`` columns) and the mask of products with a
        usable image."""
        check_is_fitted(self, "components_")
        products = as_products(X)
        inputs = self._inputs(products, self.spec_)
        self.last_image_failures_ = list(inputs.failures)  # (path, reason) of photos this call could not use
        entries = {e["name"]: e for e in self.spec_["components"]}
        with _one_blas_thread():
            out = {name: comp.proba(entries[name], model, inputs, self.classes_, self.prior_)
                   for name, model in self.components_.items()}
        return out, inputs.has_image

    def combine(self, modalities: dict[str, np.ndarray], has_image: np.ndarray, *, fuser: str | None = None
                ) -> np.ndarray:
        """Fuse per-component probabilities into one distribution per product.

        ``fuser``: ``"blend"`` for the plain blend (default: the fitted fuser); with one component, its own.
        """
        model = self.blend_ if fuser == "blend" else self.fuser_
        if model is None:
            if len(modalities) != 1:  # several components and no fuser: plain average
                return np.mean(list(modalities.values()), axis=0)
            return next(iter(modalities.values()))
        if "_prior" in model.text_components:
            modalities = {**modalities, "_prior": np.tile(self.prior_, (len(has_image), 1))}
        return model.predict_proba(modalities, has_image)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        modalities, has_image = self.modality_proba(X)
        return self.combine(modalities, has_image)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable product type code of each product."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def explain(self, X: Any, k: int = 5, n_words: int = 8) -> list[Prediction]:
        """Top-k classes per product, each component's own top-k (products with an image only for
        image components), and the words that pushed the text model."""
        products = as_products(X)
        modalities, has_image = self.modality_proba(products)
        combined = self.combine(modalities, has_image)
        entries = {e["name"]: e for e in self.spec_["components"]}
        text = self.components_.get("text")
        cleaned = text.clean(products) if text is not None and hasattr(text, "top_terms") else None
        predictions = []
        for i in range(len(products)):
            top = _top_k(combined[i], self.classes_, k)
            per_component = {name: _top_k(p[i], self.classes_, k) for name, p in modalities.items()
                             if has_image[i] or not comp.uses_image(entries[name])}
            words = text.top_terms(cleaned[i], top[0][0], n_words) if cleaned is not None else []
            predictions.append(Prediction(top, per_component, words, bool(has_image[i])))
        return predictions

    def evaluate(self, X: Any, y: Sequence[int]) -> Evaluation:
        """Weighted/macro F1, accuracy, per-class scores and confusion matrix on labelled data."""
        return evaluate_predictions(np.asarray(y).astype(int), self.predict(X), classes=self.classes_)

    def leaderboard(self, X: Any, y: Sequence[int]) -> pd.DataFrame:
        """Every component alone and every fusion, scored on labelled data (best first)."""
        y = np.asarray(y).astype(int)
        started = time.perf_counter()
        modalities, has_image = self.modality_proba(X)
        shared = (time.perf_counter() - started) / max(len(y), 1) * 1000
        entries = {e["name"]: e for e in self.spec_["components"]}
        rows = []

        def add(name: str, modality: str, proba: np.ndarray, fit_s: float) -> None:
            e = evaluate_predictions(y, self.classes_[proba.argmax(axis=1)], classes=self.classes_)
            rows.append({"model": name, "modality": modality, "weighted_f1": e.weighted_f1, "macro_f1": e.macro_f1,
                         "accuracy": e.accuracy, "fit_s": fit_s, "predict_ms_per_1000": shared * 1000})

        for name, proba in modalities.items():
            entry = entries[name]
            modality = {"text": "text", "image": "image"}.get(entry["kind"], "text+image")
            if comp.uses_image(entry) and (~has_image).any():
                modality = f"image ({int(has_image.sum())} of {len(y)} with an image; prior otherwise)"
            add(f"{name} ({entry.get('model') or entry['kind']})", modality, proba, self.fit_times_.get(name, 0.0))
        if self.fuser_ is not None:
            total = float(sum(self.fit_times_.values()))
            fused = "text+image" if any(comp.uses_image(entries[n]) for n in self.components_) else "text"
            chosen = self.fuser_.describe()["kind"]
            add(f"fusion: {chosen}", fused, self.combine(modalities, has_image), total)
            if chosen != "blend":
                add("fusion: blend", fused, self.combine(modalities, has_image, fuser="blend"), total)
        return pd.DataFrame(rows).sort_values("weighted_f1", ascending=False, ignore_index=True)

    def describe(self) -> dict[str, Any]:
        """Short description of the fitted model (preset, components, training size), for reports."""
        check_is_fitted(self, "components_")
        entries = {e["name"]: e for e in self.spec_["components"]}
        info = {"preset": self.preset,
                "components": ", ".join(f"{n} ({entries[n].get('model') or entries[n]['kind']})"
                                        for n in self.components_),
                "fusion": self.fuser_.describe()["kind"] if self.fuser_ is not None else "-",
                "backbone": self.spec_.get("backbone") or "-",
                "trained on": f"{self.n_train_:,} products" if self.n_train_ else "?",
                "fingerprint": (self.fingerprint_ or "")[:12]}
        if self.text_only_reason_:
            info["text only"] = self.text_only_reason_
        if self.blend_ is not None:
            info["blend weights"] = json.dumps({k: {n: round(w, 3) for n, w in v.items()}
                                                for k, v in self.blend_.weights().items()})
        return info

    # -- persistence ----------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the model bundle directory atomically (code-free state, config, versions,
        fingerprint, metrics); see :mod:`prodcat.safe_bundle`."""
        check_is_fitted(self, "components_")
        state = {"components": self.components_, "prior": self.prior_, "fuser": self.fuser_, "blend": self.blend_,
                 "fit_times": self.fit_times_}
        manifest = {
            "format": BUNDLE_FORMAT,
            "versions": library_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "params": {**self.get_params(), "cache_dir": None},  # where to cache is the user's choice, not the bundle's
            "spec": self.spec_,
            "classes": [int(c) for c in self.classes_],
            "components": list(self.components_),
            "training": {"n": self.n_train_, "fingerprint": self.fingerprint_, "fit_seconds": round(self.fit_seconds_, 2),
                         "image_failures": len(self.image_failures_), "text_only_reason": self.text_only_reason_},
            "metrics": self.metrics_,
        }
        return safe_bundle.write_bundle(path, state, manifest)

    @classmethod
    def read_manifest(cls, path: str | Path) -> dict[str, Any]:
        """The bundle's manifest (config, versions, metrics) without loading the model."""
        return safe_bundle.read_manifest(path)

    @classmethod
    def load(cls, path: str | Path, *, cache_dir: str | None = None) -> "ProductClassifier":
        """Load a bundle written by :meth:`save`; never runs code from it, refuses bundles from
        incompatible versions and edited or damaged ones. ``cache_dir``: the image embedding cache
        to use (default ``$PRODCAT_CACHE_DIR`` or the user cache dir; a bundle never chooses it)."""
        manifest = cls.read_manifest(path)
        safe_bundle.check_format(manifest, path)
        saved, current = manifest.get("versions") or {}, library_versions()
        for library in ("prodcat", "scikit-learn"):
            if _minor(saved.get(library)) != _minor(current[library]):
                raise ModelError(
                    f"{path}: saved with {library} {saved.get(library)}, this is {current[library]}; "
                    f"retrain the model or install {library}=={saved.get(library)}"
                )
        params = safe_bundle.check_params(manifest.get("params"), cls._get_param_names(), path)
        classes = safe_bundle.check_classes(manifest, path)
        if not isinstance(manifest.get("spec"), dict) or not isinstance(manifest["spec"].get("components"), list):
            raise ModelError(f"{path}: the manifest has no valid model spec")
        state = safe_bundle.read_state(path, manifest)
        safe_bundle.check_state_classes(state, classes, manifest.get("components"), path)
        try:
            model = cls(**{**params, "cache_dir": cache_dir})
        except TypeError as error:
            raise ModelError(f"{path}: the manifest's params are invalid ({error})") from None
        model.spec_ = manifest["spec"]
        model.classes_ = classes.astype(int)
        model.components_ = state["components"]
        model.prior_ = state["prior"]
        model.fuser_ = state.get("fuser")
        model.blend_ = state.get("blend")
        model.fit_times_ = state.get("fit_times", {})
        model.metrics_ = manifest.get("metrics", {})
        training = manifest.get("training", {})
        model.n_train_ = training.get("n")
        model.fingerprint_ = training.get("fingerprint")
        model.text_only_reason_ = training.get("text_only_reason")
        model.fit_seconds_ = training.get("fit_seconds", 0.0)
        model.image_failures_ = []
        model.manifest_ = manifest
        return model


def _text_only_reason(spec: dict[str, Any], has_image: np.ndarray, n_classes: int) -> str | None:
    """Why a preset mixing text and image components trains text only here (too few photos), or None."""
    from prodcat.models.fusion import text_only_reason

    entries = spec["components"]
    if not comp.needs_images(entries) or all(comp.needs_images([e]) for e in entries):
        return None
    return text_only_reason(int(has_image.sum()), n_classes)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value)


def _minor(version: str | None) -> tuple[str, ...]:
    return tuple((version or "?").split(".")[:2])
