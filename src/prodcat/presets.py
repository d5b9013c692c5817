"""Presets: named model recipes, plain data so they can be listed, diffed and saved in bundles.

A preset lists its ``components`` (see :mod:`prodcat.components`), the image ``backbone`` (and
``tta``: also embed the mirrored photo and average, twice the cost; off unless set) and how the
components are fused:

- ``{"kind": "auto" | "classwise" | "stack" | "blend", "folds": K}`` (``auto``: the fuser with the
  lowest out-of-fold log-loss, see :func:`prodcat.models.fusion.choose_fuser`): the fuser learns from K-fold out-of-fold
  predictions, then every component is refitted on all the training data;
- ``{"kind": ..., "folds": 0, "holdout": 0.15, "refit": [names]}``: components train on 85% and
  the fuser learns from their predictions on the other 15%; then the components named in
  ``refit`` (the cheap ones) are trained again on all the data, the others are kept as they are.

``time_limit`` (seconds) is the default budget of a fit when the user gives none.
"""

from __future__ import annotations

import copy
from typing import Any

from prodcat.errors import ProdcatError

_TEXT = {"name": "text", "kind": "text", "model": "linear"}
_IMAGE = {"name": "image", "kind": "image", "model": "logreg"}

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "description": "Text only: cleaned text -> word + character TF-IDF -> calibrated linear SVM.",
        "components": [_TEXT],
        "backbone": None,
        "fusion": None,
    },
    "image": {
        "description": "Image only: EfficientNet-Lite1 embeddings (white border cropped) -> logistic regression.",
        "components": [_IMAGE],
        "backbone": "lite1",
        "fusion": None,
    },
    "balanced": {
        "description": "Text TF-IDF model + image embeddings model, late fusion on 5-fold out-of-fold "
                       "probabilities, the fuser (class-wise, blend or stack) chosen by its out-of-fold log-loss "
                       "(default when images are given).",
        "components": [_TEXT, _IMAGE],
        "backbone": "lite0",
        "fusion": {"kind": "auto", "folds": 5},
    },
    "best": {
        "description": "Everything stacked: TF-IDF linear, dense net on TF-IDF, MiniLM transformer fine-tuned "
                       "(top 3 layers), Universal Sentence Encoder features, image MLP head and early fusion; "
                       "fuser chosen and fitted on a 15% holdout, then the TF-IDF models refitted on all the data.",
        "components": [
            _TEXT,
            {"name": "neural_simple", "kind": "text", "model": "neural_simple"},
            {"name": "minilm", "kind": "text", "model": "minilm", "budget": 0.55, "params": {"epochs": 4}},
            {"name": "use", "kind": "text", "model": "use", "budget": 0.15},
            {"name": "image", "kind": "image", "model": "mlp"},
            {"name": "early_fusion", "kind": "early_fusion"},
        ],
        "backbone": "lite0",
        "fusion": {"kind": "auto", "folds": 0, "holdout": 0.15, "refit": ["text", "neural_simple"]},
        "time_limit": 1200,
    },
}

DEFAULT_PRESET = "fast"


def get_preset(name: str) -> dict[str, Any]:
    """A copy of the named preset; raises a clear error for unknown names."""
    if name not in PRESETS:
        raise ProdcatError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
