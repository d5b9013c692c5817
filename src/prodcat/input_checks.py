"""Spot products a model has nothing to go on for: no word it knows and no usable photo.

Such a product still gets an answer (close to the class prior), and the surfaces say so with a
warning instead of presenting the prior as if it were a prediction.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

NO_USABLE_INPUT = ("no usable input: the text has no word this model knows and there is no usable photo; "
                   "the answer is little more than the class prior")


def _word_vectorizers(component: Any) -> list[tuple[Any, Any]] | None:
    """(text model, its word vectorizer) pairs of a TF-IDF text component; None when it cannot be inspected."""
    if hasattr(component, "word_vectorizer") and hasattr(component, "clean"):
        return [(component, component.word_vectorizer())]
    group = getattr(component, "group_model_", None)  # hierarchical: its first stage reads every product
    if group is not None and hasattr(group, "word_vectorizer"):
        return [(group, group.word_vectorizer())]
    return None


def without_usable_input(model: Any, products: pd.DataFrame, has_image: np.ndarray) -> np.ndarray:
    """True for products without a usable photo whose text has no word any text component knows.

    Components that cannot be inspected (deep text models) count as knowing every text, so the
    answer is False for all products when the model has one.
    """
    has_image = np.asarray(has_image, dtype=bool)
    known = np.zeros(len(products), dtype=bool)
    for name, reads in model.component_reads.items():
        if reads == "image":
            continue
        pairs = _word_vectorizers(model.component_estimator(name))
        if pairs is None:
            return np.zeros(len(products), dtype=bool)
        for text_model, vectorizer in pairs:
            known |= vectorizer.transform(text_model.clean(products)).getnnz(axis=1) > 0
    return ~known & ~has_image
