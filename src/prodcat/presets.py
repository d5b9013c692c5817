"""Presets: named model recipes, plain data so they can be listed, diffed and saved in bundles."""

from __future__ import annotations

import copy
from typing import Any

from prodcat.errors import ProdcatError

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "description": "Text only: cleaned text -> word + character TF-IDF -> calibrated linear SVM.",
        "text": {"model": "linear"},
        "image": None,
    },
    "image": {
        "description": "Image only: EfficientNet-Lite0 embeddings -> logistic regression.",
        "text": None,
        "image": {"model": "logreg", "backbone": "lite0"},
    },
}

DEFAULT_PRESET = "fast"


def get_preset(name: str) -> dict[str, Any]:
    """A copy of the named preset; raises a clear error for unknown names."""
    if name not in PRESETS:
        raise ProdcatError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
