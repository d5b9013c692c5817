"""The serving logic shared by the REST API and the web demonstrator, free of any web framework.

:class:`PredictionService` wraps a loaded :class:`~prodcat.predictor.ProductClassifier`: it
checks products (text and/or photo) against what the model can use, classifies a whole batch
in one vectorised ``explain`` call, and shapes the answer (top-k with French names, the
probability each component (text, image...) gives each class, the words behind the text). Photos stay in memory:
they reach the predictor through the ``image_bytes`` column of the products frame.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError

import prodcat
from prodcat.data.io import MOJIBAKE_PATTERN
from prodcat.errors import DataError, ModelError
from prodcat.input_checks import NO_USABLE_INPUT, without_usable_input
from prodcat.review import ReviewPolicy
from prodcat.serve.uploads import DEFAULT_MAX_IMAGE_BYTES, DEFAULT_MAX_UPLOAD_PIXELS, check_image
from prodcat.taxonomy import CATEGORIES, name_of
from prodcat.text.encoding import fix_mojibake

MAX_TOP_K = 27
IMAGE_IGNORED = "this model does not use photos: the image was ignored"
IMAGE_UNREADABLE = "the model could not read this photo: the prediction ignores it"


class InputError(DataError):
    """A product the served model cannot classify; ``status`` is the HTTP status to answer with."""

    def __init__(self, problem: str, *, status: int = 422) -> None:
        super().__init__(problem)
        self.status = status


@dataclass
class ProductInput:
    """One product as received: text fields and the raw bytes of an optional photo.

    ``name`` says where the product came from in the request (``"products[3]"``) so that
    error messages point at it.
    """

    designation: str | None = None
    description: str | None = None
    image: bytes | None = None
    name: str = "product"
    image_field: str = "image"

    @property
    def has_text(self) -> bool:
        return bool((self.designation or "").strip() or (self.description or "").strip())


@dataclass
class ServedModel:
    """What the service needs to know about the model, read once."""

    accepts_text: bool
    accepts_images: bool
    classes: np.ndarray
    kinds: dict[str, str] = field(default_factory=dict)


def _repair(text: str | None) -> str:
    """Mojibake repair as the data loaders do it (only on text showing mojibake patterns)."""
    text = text or ""
    return fix_mojibake(text) if MOJIBAKE_PATTERN.search(text) else text


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars made plain and NaN/infinity replaced by None (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _probability(p: float) -> float:
    return min(1.0, max(0.0, round(float(p), 6)))


def _demo_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, "JPEG")
    return buffer.getvalue()


class PredictionService:
    """Classify products with a loaded model; checks input and shapes answers for the API and the demo."""

    def __init__(self, model: Any, *, max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
                 max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS) -> None:
        self.model = model
        self.max_image_bytes = max_image_bytes
        self.max_pixels = max_pixels
        try:
            kinds = model.component_kinds
        except NotFittedError:
            raise ModelError("the model is not fitted") from None
        self.served = ServedModel(
            accepts_text=model.reads_text,
            accepts_images=model.reads_images,
            classes=np.asarray(model.classes_),
            kinds=kinds,
        )
        self.review = ReviewPolicy.for_model(model)

    @classmethod
    def from_path(cls, model_dir: str | Path, **limits: int) -> "PredictionService":
        """Load a model bundle (raises :class:`~prodcat.errors.ModelError`) and wrap it."""
        from prodcat.predictor import ProductClassifier

        return cls(ProductClassifier.load(model_dir), **limits)

    # -- checks ---------------------------------------------------------------------------
    def check(self, product: ProductInput) -> list[str]:
        """Raise :class:`InputError`/:class:`~prodcat.serve.uploads.UploadError` for unusable input;
        return warnings about input the model will ignore."""
        warnings = []
        if product.image is not None:
            check_image(product.image, max_bytes=self.max_image_bytes, max_pixels=self.max_pixels,
                        field=product.image_field)
        has_image = product.image is not None
        if not product.has_text and not has_image:
            raise InputError(f"{product.name}: a product needs a designation, a description or an image: "
                             "all are missing or empty")
        if has_image and not self.served.accepts_images:
            if not product.has_text:
                raise InputError(f"{product.name}: this model classifies text only and the product has no "
                                 "designation or description")
            warnings.append(IMAGE_IGNORED)
        if not has_image and not self.served.accepts_text:
            raise InputError(f"{product.name}: this model classifies photos only: send an image")
        return warnings

    def frame(self, products: Sequence[ProductInput]) -> pd.DataFrame:
        """The products frame the predictor reads (standard columns plus in-memory ``image_bytes``)."""
        n = len(products)
        images = [p.image if self.served.accepts_images else None for p in products]
        frame = pd.DataFrame({
            "designation": pd.Series([_repair(p.designation) for p in products], dtype="str"),
            "description": pd.Series([_repair(p.description) for p in products], dtype="str"),
            "productid": pd.array([pd.NA] * n, dtype="Int64"),
            "imageid": pd.array([pd.NA] * n, dtype="Int64"),
            "image_path": pd.Series([None] * n, dtype=object),
        })
        if any(image is not None for image in images):
            frame["image_bytes"] = pd.Series(images, dtype=object)
        return frame

    # -- prediction -----------------------------------------------------------------------
    def predict(self, products: Sequence[ProductInput], k: int = 5) -> list[dict[str, Any]]:
        """Check then classify ``products`` in one vectorised call; one answer dict per product."""
        if not 1 <= k <= MAX_TOP_K:
            raise InputError(f"top_k must be between 1 and {MAX_TOP_K}, got {k}")
        if not products:
            return []
        warnings = [self.check(p) for p in products]
        frame = self.frame(products)
        explained = self.model.explain(frame, k=len(self.served.classes))
        nothing_known = without_usable_input(self.model, frame, [p.has_image for p in explained])
        for product, prediction, notes, empty in zip(products, explained, warnings, nothing_known, strict=True):
            if product.image is not None and self.served.accepts_images and not prediction.has_image:
                notes.append(IMAGE_UNREADABLE)
            if empty:
                notes.append(NO_USABLE_INPUT)
        answers = [self._answer(pred, k, notes) for pred, notes in zip(explained, warnings, strict=True)]
        flags = self.review.needs_review([prediction.top[0][2] for prediction in explained])
        for i, answer in enumerate(answers):
            answer["needs_review"] = None if flags is None else bool(flags[i])
        return answers

    @staticmethod
    def _answer(prediction: Any, k: int, warnings: list[str]) -> dict[str, Any]:
        per_class = {m: {code: p for code, _, p in rows} for m, rows in prediction.components.items()}
        top = [
            {"code": int(code), "name": name, "probability": _probability(p),
             "by_modality": {m: _probability(probs.get(code, 0.0)) for m, probs in per_class.items()}}
            for code, name, p in prediction.top[:k]
        ]
        return {
            "code": top[0]["code"],
            "name": top[0]["name"],
            "probability": top[0]["probability"],
            "top": top,
            "modalities": {m: [{"code": int(c), "name": n, "probability": _probability(p)} for c, n, p in rows[:k]]
                           for m, rows in prediction.components.items()},
            "words": [{"word": w, "weight": round(float(s), 6)} for w, s in prediction.words],
            "has_image": bool(prediction.has_image),
            "warnings": list(warnings),
        }

    def warm_up(self) -> None:
        """Run one prediction per modality so lazy set-up happens at start-up, not on the first request."""
        product = ProductInput(designation="Piscine gonflable ronde" if self.served.accepts_text else None,
                               image=_demo_jpeg() if self.served.accepts_images else None)
        self.predict([product], k=1)

    # -- descriptions ---------------------------------------------------------------------
    def categories(self) -> list[dict[str, Any]]:
        """The taxonomy's codes (and any other code the model knows), with names and groups."""
        known = {int(c) for c in self.served.classes}
        codes = sorted(set(CATEGORIES) | known)
        return [{"code": code, "name": name_of(code),
                 "group": CATEGORIES[code].group if code in CATEGORIES else None,
                 "in_model": code in known} for code in codes]

    def model_info(self) -> dict[str, Any]:
        """Versions, training fingerprint, metrics and recipe of the served model (JSON-safe)."""
        manifest = self.model.manifest
        training = manifest["training"]
        return json_safe({
            "prodcat_version": prodcat.__version__,
            "saved_with": manifest["versions"],
            "created": manifest.get("created"),
            "preset": self.model.spec.name,
            "components": list(self.served.kinds),
            "component_kinds": self.served.kinds,
            "accepts_images": self.served.accepts_images,
            "n_classes": len(self.served.classes),
            "training": training,
            "fingerprint": training.get("fingerprint"),
            "metrics": manifest.get("metrics") or {},
            "spec": manifest["spec"],
        })

    @property
    def fingerprint(self) -> str | None:
        """SHA-256 of the model's training data, when known."""
        return getattr(self.model, "fingerprint_", None)
