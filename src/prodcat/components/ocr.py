"""``ocr``: a classifier of the text printed on the photos (book covers, game boxes, packaging),
read by OCR, on the products with a usable image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prodcat.components.base import ComponentSpec, Inputs, check, register_component
from prodcat.components.image import ImageReadingComponent


@dataclass(frozen=True)
class PhotoTextSpec(ComponentSpec):
    """``C``: the inverse regularisation of the logistic regression on the photo text's TF-IDF."""

    kind: str = "ocr"
    C: float = 10.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(isinstance(self.C, (int, float)) and not isinstance(self.C, bool) and self.C > 0, "C",
              f"must be a positive number, got {self.C!r}")


@register_component("ocr")
class PhotoTextComponent(ImageReadingComponent):
    """Reads ``Inputs.photo_text`` (filled by OCR when a preset has this component)."""

    spec_class = PhotoTextSpec
    reads_photo_text = True

    def build(self, time_limit: float | None) -> Any:
        from prodcat.models.photo_text import PhotoTextClassifier

        return PhotoTextClassifier(C=self.spec.C)

    def rows(self, inputs: Inputs, mask: np.ndarray) -> list[str]:
        texts = inputs.photo_text if inputs.photo_text is not None else [""] * len(mask)
        return [text for text, keep in zip(texts, mask) if keep]
