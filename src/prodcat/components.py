"""Model components: build, fit and score the members a preset names, over shared inputs.

A component is one entry of a preset's ``components`` list, e.g.
``{"name": "text", "kind": "text", "model": "linear"}``. Kinds:

- ``text``: a text model over the products (:class:`~prodcat.models.text.TextClassifier`, the
  hierarchical model, or a deep text model by name);
- ``image``: a head over image embeddings (products without a usable image are skipped), or
  with ``model: "pixels"`` the seeds' classical baseline on colour histograms of the photos;
- ``early_fusion``: an MLP over text and image features together.

Every component's probabilities are aligned on the predictor's classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prodcat.errors import ModelError

KINDS = ("text", "image", "early_fusion")


@dataclass
class Inputs:
    """What components read: the products and, when images are used, their embeddings."""

    products: pd.DataFrame
    vectors: np.ndarray
    has_image: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)

    def take(self, positions: np.ndarray) -> "Inputs":
        vectors = self.vectors[positions] if self.vectors.shape[0] else self.vectors
        return Inputs(self.products.iloc[positions], vectors, self.has_image[positions])


def text_model_names() -> tuple[str, ...]:
    """Every text model name a component may use."""
    from prodcat.models.text import TEXT_MODELS

    return (*TEXT_MODELS, "stack", "hierarchical", *_deep_text_models())


def _deep_text_models() -> dict[str, type]:
    try:
        from prodcat.models.deep_text import DEEP_TEXT_MODELS
    except ImportError:  # torch-free installs have no deep text models
        return {}
    return DEEP_TEXT_MODELS


def build(entry: dict[str, Any], *, seed: int, time_limit: float | None = None) -> Any:
    """A fresh, unfitted estimator for one preset entry."""
    kind, model = entry["kind"], entry.get("model")
    if kind == "text":
        from prodcat.models.text import TEXT_MODELS, TextClassifier

        if model in TEXT_MODELS:
            return TextClassifier(model, seed=seed)
        if model == "stack":
            from prodcat.models.text_stack import StackedTextClassifier

            return StackedTextClassifier(seed=seed)
        if model == "hierarchical":
            from prodcat.models.hierarchical import HierarchicalTextClassifier

            return HierarchicalTextClassifier(seed=seed)
        deep = _deep_text_models()
        if model in deep:
            return deep[model](seed=seed, time_limit=time_limit, progress=False, **entry.get("params", {}))
        raise ModelError(f"unknown text model {model!r}; choose one of {', '.join(text_model_names())}")
    if kind == "image":
        from prodcat.models.image import ImageEmbeddingClassifier, PixelHistogramClassifier

        if model == "pixels":
            return PixelHistogramClassifier()
        return ImageEmbeddingClassifier(kind=model or "logreg", random_state=seed)
    if kind == "early_fusion":
        from prodcat.models.early_fusion import EarlyFusionClassifier

        return EarlyFusionClassifier(seed=seed, time_limit=time_limit, **entry.get("params", {}))
    raise ModelError(f"unknown component kind {kind!r}; choose one of {', '.join(KINDS)}")


def fit(entry: dict[str, Any], estimator: Any, inputs: Inputs, y: np.ndarray) -> Any | None:
    """Fit one component; None when it cannot be trained here (e.g. too few images)."""
    kind = entry["kind"]
    if kind == "text":
        return estimator.fit(inputs.products, y)
    if kind == "image":
        mask = inputs.has_image
        if mask.sum() < 2 or len(np.unique(y[mask])) < 2:
            return None
        return estimator.fit(_image_rows(entry, inputs, mask), y[mask])
    if kind == "early_fusion":
        if not inputs.has_image.any():
            return None
        return estimator.fit(inputs.products, y, vectors=inputs.vectors, has_image=inputs.has_image)
    raise ModelError(f"unknown component kind {kind!r}")


def proba(entry: dict[str, Any], estimator: Any, inputs: Inputs, classes: np.ndarray,
          prior: np.ndarray) -> np.ndarray:
    """Probabilities on ``classes`` for every product (image components give the prior where
    there is no image)."""
    kind = entry["kind"]
    out = np.tile(prior, (len(inputs.products), 1))
    if kind == "image":
        mask = inputs.has_image
        if mask.any():
            out[mask] = _aligned(estimator.predict_proba(_image_rows(entry, inputs, mask)), estimator.classes_, classes)
        return out
    if kind == "early_fusion":
        raw = estimator.predict_proba(inputs.products, vectors=inputs.vectors, has_image=inputs.has_image)
    else:
        raw = estimator.predict_proba(inputs.products)
    return _aligned(raw, estimator.classes_, classes)


def _image_rows(entry: dict[str, Any], inputs: Inputs, mask: np.ndarray) -> Any:
    """What an image head reads for the masked products: embeddings, or image paths for pixels."""
    if entry.get("model") == "pixels":
        return [p for p, keep in zip(inputs.products["image_path"], mask) if keep]
    return inputs.vectors[mask]


def _aligned(raw: np.ndarray, own: np.ndarray, classes: np.ndarray) -> np.ndarray:
    out = np.zeros((raw.shape[0], len(classes)))
    out[:, np.searchsorted(classes, np.asarray(own))] = raw
    return out


def needs_images(entries: list[dict[str, Any]]) -> bool:
    """True when some component reads image embeddings."""
    return any(e["kind"] in ("image", "early_fusion") for e in entries)


def uses_image(entry: dict[str, Any]) -> bool:
    """True for components that only make sense for products with an image."""
    return entry["kind"] == "image"
