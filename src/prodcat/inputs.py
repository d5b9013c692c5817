"""What components read: products normalised to a frame, plus image embeddings when some
component of the recipe reads images (products without a usable image are flagged, not dropped)."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from prodcat.components import Inputs
from prodcat.data.missing import is_missing
from prodcat.presets import PresetSpec
from prodcat.text.clean import texts_from


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


@functools.lru_cache(maxsize=4)
def _embedder(backbone: str, cache_dir: str | None):
    """One image embedder (and ONNX session, ~30 ms to build) per backbone and cache per process."""
    from prodcat.image.embed import ImageEmbedder

    return ImageEmbedder(backbone, cache_dir=cache_dir)


@functools.lru_cache(maxsize=4)
def _photo_text_reader(cache_dir: str | None):
    """One OCR reader (its models take about a second to load) per cache folder per process."""
    from prodcat.image.ocr import PhotoTextReader

    return PhotoTextReader(cache_dir)


def read_inputs(products: pd.DataFrame, spec: PresetSpec, *, cache_dir: str | None, progress: bool) -> Inputs:
    """Products plus image embeddings (from ``image_bytes`` when present, else ``image_path``)
    when the recipe's components read them."""
    n = len(products)
    if not spec.reads_images:
        return Inputs(products, np.zeros((n, 0), np.float32), np.zeros(n, bool))
    images = list(products["image_path"])
    if "image_bytes" in products.columns:
        images = [b if not is_missing(b) else p for b, p in zip(products["image_bytes"], images)]
    if all(is_missing(i) for i in images):
        return Inputs(products, np.zeros((n, 0), np.float32), np.zeros(n, bool))
    embedder = _embedder(spec.backbone, cache_dir)
    embedder.progress = progress and n > 256
    result = embedder.embed(images)
    photo_text = None
    if spec.reads_photo_text:
        usable = np.flatnonzero(result.ok)
        reader = _photo_text_reader(cache_dir)
        reader.progress = progress and len(usable) > 16
        found = reader.read([images[i] for i in usable])
        photo_text = [""] * n
        for i, text in zip(usable, found):
            photo_text[i] = text
    return Inputs(products, result.vectors, result.ok, list(result.failures), photo_text=photo_text,
                  backbone=spec.backbone)
