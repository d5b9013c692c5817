"""``pixels``: the seeds' classical image baseline (colour histograms of the photos + logistic
regression), on the products with a usable image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prodcat.components.base import ComponentSpec, Inputs, register_component
from prodcat.components.image import ImageReadingComponent


@dataclass(frozen=True)
class PixelsSpec(ComponentSpec):
    """No settings beyond the common ones."""

    kind: str = "pixels"


@register_component("pixels")
class PixelsComponent(ImageReadingComponent):
    """Reads the image files themselves (not the embeddings)."""

    spec_class = PixelsSpec

    def build(self, time_limit: float | None) -> Any:
        from prodcat.models.image import PixelHistogramClassifier

        return PixelHistogramClassifier()

    def rows(self, inputs: Inputs, mask: np.ndarray) -> list[Any]:
        return [path for path, keep in zip(inputs.products["image_path"], mask) if keep]
