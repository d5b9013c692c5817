"""prodcat.image: decode and preprocess photos, embed them with a pretrained backbone, cache features.

Names are imported lazily so that ``import prodcat.image`` stays cheap (no onnxruntime, no torch).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "ImageError": "io",
    "load_rgb": "io",
    "white_border_box": "io",
    "crop_white_border": "io",
    "white_ratio": "io",
    "preprocess": "io",
    "crop_preview": "io",
    "PREPROCESS_VERSION": "io",
    "BACKBONES": "backbone",
    "Backbone": "backbone",
    "CompositeBackbone": "backbone",
    "open_backbone": "backbone",
    "FeatureStore": "cache",
    "EmbeddingResult": "embed",
    "EmbedStats": "embed",
    "ImageEmbedder": "embed",
    "embed_folder": "embed",
    "default_cache_dir": "cachedir",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
