"""Presets: named model recipes, plain data so they can be listed, diffed and saved in bundles.

A preset lists its ``components`` (see :mod:`prodcat.components`), the image ``backbone`` and
how the components are fused:

- ``{"kind": "stack" | "blend", "folds": K}``: the fuser learns from K-fold out-of-fold
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
_STACK = {"name": "text", "kind": "text", "model": "stack"}
_IMAGE = {"name": "image", "kind": "image", "model": "logreg"}

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "description": "Text only: LinearSVC (words + word shapes + layout), SGD (words + characters) and "
                       "complement naive Bayes, stacked by a logistic regression on 5-fold out-of-fold scores.",
        "components": [_STACK],
        "backbone": None,
        "fusion": None,
    },
    "image": {
        "description": "Image only: EfficientNet-Lite0 embeddings -> logistic regression.",
        "components": [_IMAGE],
        "backbone": "lite0",
        "fusion": None,
    },
    "balanced": {
        "description": "Text TF-IDF model + image embeddings model, late fusion by stacking on 5-fold "
                       "out-of-fold probabilities (default when images are given).",
        "components": [_TEXT, _IMAGE],
        "backbone": "lite0",
        "fusion": {"kind": "stack", "folds": 5},
    },
    "best": {
        "description": "Everything stacked: TF-IDF linear, dense net on TF-IDF, MiniLM transformer fine-tuned "
                       "(top 3 layers), Universal Sentence Encoder features, image MLP head and early fusion; "
                       "meta-learner on a 15% holdout, then the TF-IDF models refitted on all the data.",
        "components": [
            _TEXT,
            {"name": "neural_simple", "kind": "text", "model": "neural_simple"},
            {"name": "minilm", "kind": "text", "model": "minilm", "budget": 0.55, "params": {"epochs": 4}},
            {"name": "use", "kind": "text", "model": "use", "budget": 0.15},
            {"name": "image", "kind": "image", "model": "mlp"},
            {"name": "early_fusion", "kind": "early_fusion"},
        ],
        "backbone": "lite0",
        "fusion": {"kind": "stack", "folds": 0, "holdout": 0.15, "refit": ["text", "neural_simple"]},
        "time_limit": 1200,
    },
}

DEFAULT_PRESET = "fast"


def get_preset(name: str) -> dict[str, Any]:
    """A copy of the named preset; raises a clear error for unknown names."""
    if name not in PRESETS:
        raise ProdcatError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])
