"""``ProductClassifier``: the one public entry point (fit / predict / evaluate / save / load).

Products are rows of a DataFrame with ``designation``, optional ``description``, optional
``image_path`` (absolute path or None) and optional ``image_bytes`` (an encoded image held in
memory, e.g. an upload: embedded without touching the on-disk cache), as produced by
:mod:`prodcat.data.io`. A preset (:mod:`prodcat.presets`) names the components to train
(:mod:`prodcat.components`); :mod:`prodcat.plan` fits them, with several components a fuser
(:mod:`prodcat.models.fusion`) combines their probabilities, and :mod:`prodcat.bundle` saves and
loads the result. Products without a usable image fall back to the text components.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import ThreadpoolController

from prodcat import bundle
from prodcat.components import Component, Inputs
from prodcat.errors import DataError, ModelError
from prodcat.evaluation import Evaluation, evaluate_predictions
from prodcat.inputs import as_products, read_inputs
from prodcat.models.fusion import fuse
from prodcat.plan import FitPlan
from prodcat.presets import DEFAULT_PRESET, PresetSpec, load_preset
from prodcat.taxonomy import name_of

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


@dataclass
class Prediction:
    """Top-k classes of one product, overall and per component, with the words behind the text.

    ``components`` maps each component that scored the product (image-reading ones only when it
    has an image) to its own top-k; :meth:`to_dict` names that map ``"modalities"`` (the REST
    API's key).
    """

    top: list[tuple[int, str, float]]
    components: dict[str, list[tuple[int, str, float]]] = field(default_factory=dict)
    words: list[tuple[str, float]] = field(default_factory=list)
    has_image: bool = False

    def to_dict(self) -> dict[str, Any]:
        def rows(items: list[tuple[int, str, float]]) -> list[dict[str, Any]]:
            return [{"code": c, "name": n, "probability": round(p, 6)} for c, n, p in items]

        return {
            "top": rows(self.top),
            "modalities": {m: rows(v) for m, v in self.components.items()},
            "words": [{"word": w, "weight": round(s, 6)} for w, s in self.words],
            "has_image": self.has_image,
        }


def _top_k(proba_row: np.ndarray, classes: np.ndarray, k: int) -> list[tuple[int, str, float]]:
    order = np.argsort(-proba_row)[:k]
    return [(int(classes[i]), name_of(int(classes[i])), float(proba_row[i])) for i in order]


def data_fingerprint(products: pd.DataFrame, y: Sequence[int]) -> str:
    """SHA-256 of the training texts and labels (order-sensitive), to trace a model to its data."""
    digest = hashlib.sha256()
    frame = products[["designation"]].copy()
    frame["description"] = products["description"] if "description" in products else ""
    frame["label"] = np.asarray(y).astype(int)
    digest.update(pd.util.hash_pandas_object(frame.reset_index(drop=True), index=False).to_numpy().tobytes())
    return digest.hexdigest()


@dataclass
class ComponentProba:
    """Each fitted component's probabilities (``classes_`` columns) and the mask of products with
    a usable image, as :meth:`ProductClassifier.component_proba` gives them."""

    probas: dict[str, np.ndarray]
    has_image: np.ndarray


class ProductClassifier(ClassifierMixin, BaseEstimator):
    """Classify products into the 27 Rakuten codes from text and/or image.

    The constructor only stores parameters; ``fit`` learns ``classes_``, the fitted components,
    the fusers and the training fingerprint.

    preset: a name from :data:`prodcat.presets.PRESETS` (``"fast"``, ``"image"``, ``"balanced"``,
        ``"best"``), a recipe as plain data, or a :class:`~prodcat.presets.PresetSpec`.
    text_model: override the model of the preset's component named ``text`` (any name of
        :func:`prodcat.components.text_model_names`).
    image_model: override the component named ``image`` (``"logreg"``, ``"mlp"``, ``"lda"`` or ``"pixels"``).
    backbone: override the image backbone (``"lite0"``, ``"lite1"``, ``"lite2"``, their multi-scale
        variants ``"lite0-ms"``..., or the composite ``"lite1-ms+lite2-ms"``); heads that read one
        network of a composite then read the new backbone (see :meth:`PresetSpec.with_backbone`).
    fusion: override the fusion method (``"auto"``: the fuser with the lowest out-of-fold log-loss;
        ``"classwise"``, ``"stack"`` or ``"blend"``; see :func:`prodcat.models.fusion.choose_fuser`).
    text_backbone: the folder of a local Hugging Face checkpoint fine-tuned by the transformer
        components (``minilm``) instead of the bundled MiniLM; never a hub name (prodcat never downloads).
    device: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"`` for every torch component.
    time_limit: seconds for the whole fit, counted from the start of ``fit``: components are fitted
        cheapest first, each within a share re-planned over the time left (see :mod:`prodcat.budgets`).
    cache_dir: image embedding cache (default: ``$PRODCAT_CACHE_DIR``, else the user cache dir).
    engine: where the independent fits of a multi-component preset run (the K fold fits, or the
        components of a holdout plan): ``"local"`` (this process, one after the other) or ``"ray"``
        (Ray tasks; ``pip install 'prodcat[ray]'``); the same model either way.
    address: the Ray cluster to join (``engine="ray"``); none: a local Ray runtime for the fit.
    """

    def __init__(
        self,
        preset: str | dict[str, Any] | PresetSpec = DEFAULT_PRESET,
        *,
        text_model: str | None = None,
        image_model: str | None = None,
        backbone: str | None = None,
        fusion: str | None = None,
        text_backbone: str | None = None,
        device: str | None = None,
        time_limit: float | None = None,
        cache_dir: str | None = None,
        seed: int = 42,
        progress: bool = True,
        engine: str = "local",
        address: str | None = None,
    ) -> None:
        self.preset = preset
        self.text_model = text_model
        self.image_model = image_model
        self.backbone = backbone
        self.fusion = fusion
        self.text_backbone = text_backbone
        self.device = device
        self.time_limit = time_limit
        self.cache_dir = cache_dir
        self.seed = seed
        self.progress = progress
        self.engine = engine
        self.address = address

    # -- configuration --------------------------------------------------------------------
    def resolved_spec(self) -> PresetSpec:
        """The preset, validated, with this object's overrides applied."""
        from prodcat.components import SpecError, image_component_spec, text_component_spec, torch_params

        spec = load_preset(self.preset)
        components = []
        for c in spec.components:
            if c.name == "text" and self.text_model is not None:
                c = text_component_spec(c.name, self.text_model, budget=c.budget)
            if c.name == "image" and self.image_model is not None:
                c = image_component_spec(c.name, self.image_model, budget=c.budget, network=getattr(c, "network", None))
            overrides = {key: value for key, value in (("backbone", self._backbone_folder()), ("device", self.device))
                         if value is not None and key in torch_params(c)}
            if overrides:
                try:
                    c = replace(c, params={**c.params, **overrides})
                except SpecError as error:
                    raise ModelError(str(error)) from None
            components.append(c)
        if self.text_backbone is not None and not any("backbone" in torch_params(c) for c in components):
            raise ModelError(f"a text backbone needs a transformer component, and preset {spec.name!r} has none: "
                             "add --text-model minilm (or use --preset best)")
        for c in components:  # a hub name or a folder without a model: refused before any training
            if getattr(c, "params", {}).get("backbone") is not None:
                from prodcat.models.transformer import resolve_backbone

                resolve_backbone(c.params["backbone"])
        if self.device is not None:
            from prodcat.models.torch_utils import resolve_device

            resolve_device(self.device)  # "cuda" without a GPU: refused before any training
        spec = replace(spec, components=tuple(components))
        if self.backbone is not None and spec.backbone:
            spec = spec.with_backbone(self.backbone)
        if self.fusion is not None and spec.fusion is not None:
            spec = replace(spec, fusion=replace(spec.fusion, method=self.fusion))
        return spec

    def _backbone_folder(self) -> str | None:
        """``text_backbone`` made absolute when it is a folder (so the bundle finds it from anywhere)."""
        if self.text_backbone is None:
            return None
        path = os.fspath(self.text_backbone)
        return os.path.abspath(path) if os.path.isdir(path) else path

    def _log(self, message: str) -> None:
        if self.progress:
            print(message, file=sys.stderr, flush=True)

    # -- fitting --------------------------------------------------------------------------
    def fit(self, X: Any, y: Sequence[int], *, checkpoints: str | Path | None = None) -> "ProductClassifier":
        """Train the preset's components (and fusers) on products ``X`` and codes ``y``; returns ``self``.

        ``checkpoints``: a folder where each finished component fit is saved; a fit given the same
        folder (same data, recipe and seed) loads those instead of fitting them again (resume)."""
        from prodcat.models.sentence import sentence_memo

        with _one_blas_thread(), sentence_memo():
            return self._fit(X, y, checkpoints)

    def _fit(self, X: Any, y: Sequence[int], checkpoints: str | Path | None = None) -> "ProductClassifier":
        from prodcat.engines import check_engine

        check_engine(self.engine, self.address)
        products = as_products(X)
        y = np.asarray(y).astype(int)
        if len(products) != len(y):
            raise DataError(f"{len(products)} products but {len(y)} labels")
        if len(np.unique(y)) < 2:
            raise DataError("training needs at least two different product codes")
        spec = self.resolved_spec()
        started = time.perf_counter()
        classes = np.unique(y)
        prior = np.bincount(np.searchsorted(classes, y), minlength=len(classes)) / len(y)
        inputs = read_inputs(products, spec, cache_dir=self.cache_dir, progress=self.progress)
        if spec.reads_images and not inputs.has_image.any():
            if all(c.reads == "image" for c in spec.components):
                raise DataError(f"preset {spec.name!r} needs images: none of the training products has a "
                                "readable image (pass --images / an image_path column)")
            self._log("No usable training images: image components are skipped")
        text_only = _text_only_reason(spec, inputs.has_image, len(classes))
        if text_only:
            self._log(f"Text only: {text_only}")
            spec = _text_components(spec)
        names = ", ".join(c.name for c in spec.components)
        self._log(f"Training {names} on {len(y):,} products ({int(inputs.has_image.sum()):,} with an image)")
        plan = FitPlan(spec, classes, prior, seed=self.seed, time_limit=self.time_limit, log=self._log,
                       engine=self.engine, address=self.address, started=started,
                       checkpoints=_checkpoint_store(checkpoints, spec, products, y, self.seed))
        parts = plan.fit(inputs, y)
        if not parts.components:
            raise DataError("no component could be trained on this data")
        self._set_fitted(spec=spec, classes=classes, prior=prior, components=parts.components, stack=parts.stack,
                         blend=parts.blend, fit_times=parts.fit_times, n_train=int(len(y)),
                         fingerprint=data_fingerprint(products, y), fit_seconds=time.perf_counter() - started,
                         metrics={}, image_failures=inputs.failures, text_only_reason=text_only)
        return self

    def _set_fitted(self, *, spec: PresetSpec, classes: np.ndarray, prior: np.ndarray,
                    components: dict[str, Component], stack: Any, blend: Any, fit_times: dict[str, float],
                    n_train: int | None, fingerprint: str | None, fit_seconds: float, metrics: dict[str, Any],
                    image_failures: list[tuple[str, str]] | None = None,
                    text_only_reason: str | None = None) -> None:
        """Set every fitted attribute (from a fit, or from a bundle)."""
        self.spec_ = spec
        self.classes_ = classes
        self.prior_ = prior
        self.components_ = components
        self.fuser_ = stack
        self.blend_ = blend
        self.fit_times_ = fit_times
        self.n_train_ = n_train
        self.fingerprint_ = fingerprint
        self.fit_seconds_ = fit_seconds
        self.metrics_ = metrics
        self.image_failures_ = list(image_failures or [])
        self.text_only_reason_ = text_only_reason
        self._manifest: dict[str, Any] | None = None

    # -- what the fitted model is ------------------------------------------------------------
    @property
    def spec(self) -> PresetSpec:
        """The recipe the model was fitted with (the preset with the overrides)."""
        check_is_fitted(self, "components_")
        return self.spec_

    @property
    def component_names(self) -> list[str]:
        """Names of the fitted components, in the preset's order."""
        check_is_fitted(self, "components_")
        return list(self.components_)

    @property
    def component_reads(self) -> dict[str, str]:
        """What each fitted component reads: ``"text"``, ``"image"`` or ``"text+image"``."""
        check_is_fitted(self, "components_")
        return {n: c.reads for n, c in self.components_.items()}

    @property
    def component_kinds(self) -> dict[str, str]:
        """The registered kind of each fitted component (``text``, ``deep_text``, ``image``...)."""
        check_is_fitted(self, "components_")
        return {n: c.kind for n, c in self.components_.items()}

    def component_estimator(self, name: str) -> Any:
        """The fitted estimator inside component ``name`` (e.g. a ``TextClassifier``), for inspection."""
        check_is_fitted(self, "components_")
        return self.components_[name].model

    @property
    def reads_text(self) -> bool:
        """True when some fitted component reads the text."""
        return any(r != "image" for r in self.component_reads.values())

    @property
    def reads_images(self) -> bool:
        """True when some fitted component reads the photo."""
        return any(r != "text" for r in self.component_reads.values())

    @property
    def manifest(self) -> dict[str, Any]:
        """Versions, parameters, recipe, training facts and metrics: the bundle's manifest when the
        model was loaded, else what :meth:`save` would write."""
        check_is_fitted(self, "components_")
        if self._manifest is not None:
            return {**self._manifest, "metrics": self.metrics_}
        return {**bundle.manifest_of(self), "created": None}

    # -- prediction -----------------------------------------------------------------------
    def component_proba(self, X: Any) -> ComponentProba:
        """Each fitted component's probabilities of products ``X`` and which products have a usable image."""
        check_is_fitted(self, "components_")
        inputs = read_inputs(as_products(X), self.spec_, cache_dir=self.cache_dir, progress=self.progress)
        self.last_image_failures_ = list(inputs.failures)  # (path, reason) of photos this call could not use
        with _one_blas_thread():
            probas = {n: c.predict_proba(inputs, self.classes_, self.prior_) for n, c in self.components_.items()}
        return ComponentProba(probas, inputs.has_image)

    def fused_proba(self, X: Any, *, fuser: str | None = None) -> np.ndarray:
        """Fused probabilities of products ``X`` (or of a :meth:`component_proba` result).

        ``fuser``: ``"blend"`` for the plain blend (default: the fitted fuser); with one component, its own.
        """
        scores = X if isinstance(X, ComponentProba) else self.component_proba(X)
        return fuse(self.blend_ if fuser == "blend" else self.fuser_, scores.probas, scores.has_image, self.prior_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        return self.fused_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable product type code of each product."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def explain(self, X: Any, k: int = 5, n_words: int = 8) -> list[Prediction]:
        """Top-k classes per product, each component's own top-k (products with an image only for
        image components), and the words that pushed the first component able to say."""
        products = as_products(X)
        scores = self.component_proba(products)
        combined = self.fused_proba(scores)
        tops = [_top_k(row, self.classes_, k) for row in combined]
        words = self._words(products, np.array([top[0][0] for top in tops]), n_words)
        predictions = []
        for i, top in enumerate(tops):
            per_component = {name: _top_k(p[i], self.classes_, k) for name, p in scores.probas.items()
                             if scores.has_image[i] or self.components_[name].reads != "image"}
            predictions.append(Prediction(top, per_component, words[i], bool(scores.has_image[i])))
        return predictions

    def _words(self, products: pd.DataFrame, codes: np.ndarray, n_words: int) -> list[list[tuple[str, float]]]:
        text_only = Inputs(products, np.zeros((len(products), 0), np.float32), np.zeros(len(products), bool))
        for component in self.components_.values():
            if component.reads == "text":
                words = component.explain(text_only, codes, n_words)
                if words is not None:
                    return words
        return [[] for _ in range(len(products))]

    def evaluate(self, X: Any, y: Sequence[int]) -> Evaluation:
        """Weighted/macro F1, accuracy, per-class scores and confusion matrix on labelled data."""
        return evaluate_predictions(np.asarray(y).astype(int), self.predict(X), classes=self.classes_)

    def leaderboard(self, X: Any, y: Sequence[int]) -> pd.DataFrame:
        """Every component alone and every fusion, scored on labelled data (best first)."""
        y = np.asarray(y).astype(int)
        started = time.perf_counter()
        scores = self.component_proba(X)
        shared = (time.perf_counter() - started) / max(len(y), 1) * 1000
        has_image = scores.has_image
        rows = []

        def add(name: str, modality: str, proba: np.ndarray, fit_s: float) -> None:
            e = evaluate_predictions(y, self.classes_[proba.argmax(axis=1)], classes=self.classes_)
            rows.append({"model": name, "modality": modality, "weighted_f1": e.weighted_f1, "macro_f1": e.macro_f1,
                         "accuracy": e.accuracy, "fit_s": fit_s, "predict_ms_per_1000": shared * 1000})

        for name, proba in scores.probas.items():
            component = self.components_[name]
            modality = component.reads
            if modality == "image" and (~has_image).any():
                modality = f"image ({int(has_image.sum())} of {len(y)} with an image; prior otherwise)"
            add(f"{name} ({component.spec.label})", modality, proba, self.fit_times_.get(name, 0.0))
        if self.fuser_ is not None:
            total = float(sum(self.fit_times_.values()))
            fused = "text+image" if self.reads_images else "text"
            chosen = self.fuser_.describe()["kind"]
            add(f"fusion: {chosen}", fused, self.fused_proba(scores), total)
            if chosen != "blend":
                add("fusion: blend", fused, self.fused_proba(scores, fuser="blend"), total)
        return pd.DataFrame(rows).sort_values("weighted_f1", ascending=False, ignore_index=True)

    def describe(self) -> dict[str, Any]:
        """Short description of the fitted model (preset, components, training size), for reports."""
        check_is_fitted(self, "components_")
        info = {"preset": self.spec_.name,
                "components": ", ".join(f"{n} ({c.spec.label})" for n, c in self.components_.items()),
                "fusion": self.fuser_.describe()["kind"] if self.fuser_ is not None else "-",
                "backbone": self.spec_.backbone or "-",
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
        """Write the model bundle directory (see :mod:`prodcat.bundle`)."""
        check_is_fitted(self, "components_")
        return bundle.save_bundle(self, path)

    @classmethod
    def read_manifest(cls, path: str | Path) -> dict[str, Any]:
        """The bundle's manifest (config, versions, metrics) without loading the model."""
        return bundle.read_manifest(path)

    @classmethod
    def load(cls, path: str | Path, *, cache_dir: str | None = None) -> "ProductClassifier":
        """Load a bundle written by :meth:`save`; never runs code from it, refuses bundles from
        incompatible versions and edited or damaged ones. ``cache_dir``: the image embedding cache
        to use (default ``$PRODCAT_CACHE_DIR`` or the user cache dir; a bundle never chooses it)."""
        return bundle.load_bundle(cls, path, cache_dir=cache_dir)


def _text_components(spec: PresetSpec) -> PresetSpec:
    """``spec`` without its image-reading components; its fusion is kept while two or more remain."""
    components = tuple(c for c in spec.components if c.reads == "text")
    fusion = spec.fusion
    if fusion is not None and len(components) >= 2:
        names = {c.name for c in components}
        fusion = replace(fusion, refit=tuple(n for n in fusion.refit if n in names))
    else:
        fusion = None
    return replace(spec, fusion=fusion, components=components)


def _checkpoint_store(folder: str | Path | None, spec: PresetSpec, products: pd.DataFrame, y: np.ndarray,
                      seed: int) -> Any:
    """The :class:`~prodcat.checkpoints.CheckpointStore` of a fit (None without a folder)."""
    if folder is None:
        return None
    from prodcat.checkpoints import CheckpointStore

    return CheckpointStore(folder, {"fingerprint": data_fingerprint(products, y), "spec": spec.to_dict(), "seed": seed})


def _text_only_reason(spec: PresetSpec, has_image: np.ndarray, n_classes: int) -> str | None:
    """Why a preset mixing text and image components trains text only here (too few photos), or None."""
    from prodcat.models.fusion import text_only_reason

    if not spec.reads_images or not any(c.reads == "text" for c in spec.components):
        return None
    return text_only_reason(int(has_image.sum()), n_classes)
