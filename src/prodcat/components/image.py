"""``image``: a head (logistic regression, MLP or LDA) over backbone image embeddings, and the shared
behaviour of components that read only products with a usable image (prior for the others)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from prodcat.components.base import Component, ComponentSpec, Inputs, aligned, check, register_component
from prodcat.errors import ModelError

IMAGE_HEADS = ("logreg", "mlp", "lda")


class ImageReadingComponent(Component):
    """Trained on, and scoring, only the products with a usable image."""

    reads = "image"

    def rows(self, inputs: Inputs, mask: np.ndarray) -> Any:
        """What the estimator reads for the products selected by ``mask``."""
        raise NotImplementedError

    def fit(self, inputs: Inputs, y: np.ndarray, *, time_limit: float | None = None) -> "ImageReadingComponent | None":
        mask = inputs.has_image
        if mask.sum() < 2 or len(np.unique(y[mask])) < 2:
            return None
        self.model = self.build(time_limit).fit(self.rows(inputs, mask), y[mask])
        return self

    def predict_proba(self, inputs: Inputs, classes: np.ndarray, prior: np.ndarray) -> np.ndarray:
        out = np.tile(prior, (len(inputs.products), 1))
        mask = inputs.has_image
        if mask.any():
            out[mask] = aligned(self.model.predict_proba(self.rows(inputs, mask)), self.model.classes_, classes)
        return out


@dataclass(frozen=True)
class ImageHeadSpec(ComponentSpec):
    """A head on image embeddings: ``model`` is ``"logreg"``, ``"mlp"`` or ``"lda"``; ``network``:
    with a composite backbone (``lite1-ms+lite2-ms``), the one network whose embedding it reads
    (default: the whole embedding)."""

    kind: str = "image"
    model: str = "logreg"
    network: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.model in IMAGE_HEADS, "model",
              f"unknown image head {self.model!r}; choose one of {', '.join(IMAGE_HEADS)}")
        check(self.network is None or isinstance(self.network, str), "network",
              f"must be the name of a network of the backbone, or null; got {self.network!r}")


@register_component("image")
class ImageHeadComponent(ImageReadingComponent):
    """Standardised embeddings -> logistic regression, MLP or LDA."""

    spec_class = ImageHeadSpec
    trusted = (LinearDiscriminantAnalysis,)

    def build(self, time_limit: float | None) -> Any:
        from prodcat.models.image import ImageEmbeddingClassifier

        return ImageEmbeddingClassifier(head=self.spec.model, seed=self.seed)

    def rows(self, inputs: Inputs, mask: np.ndarray) -> np.ndarray:
        if self.spec.network is None:
            return inputs.vectors[mask]
        from prodcat.image.backbone import network_columns

        if inputs.backbone is None:
            raise ModelError(f"component {self.name!r} reads the {self.spec.network} network: its inputs "
                             "do not say which backbone made the embeddings")
        return inputs.vectors[mask][:, network_columns(inputs.backbone, self.spec.network)]
