"""Hierarchical text classifier (the seeds' perspective): coarse group first, then the code in it.

P(code) = P(group) x P(code | group), with one TF-IDF linear model for the groups of
:mod:`prodcat.taxonomy` and one per group with more than one code.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from prodcat.models.text import TextClassifier
from prodcat.taxonomy import group_of


class HierarchicalTextClassifier(ClassifierMixin, BaseEstimator):
    """Group model x per-group code models, all :class:`TextClassifier` (``model`` names the kind)."""

    def __init__(self, model: str = "linear", *, seed: int = 42) -> None:
        self.model = model
        self.seed = seed

    def clean(self, X: Any) -> list[str]:
        """Cleaned text, as the underlying text models see it."""
        return TextClassifier(self.model).clean(X)

    def fit(self, X: Any, y: Sequence[int]) -> "HierarchicalTextClassifier":
        y = np.asarray(y).astype(int)
        cleaned = self.clean(X)
        groups = np.array([group_of(code) for code in y])
        self.classes_ = np.unique(y)
        self.group_model_ = TextClassifier(self.model, seed=self.seed).fit_clean(cleaned, groups)
        self.code_models_: dict[str, Any] = {}
        for group in np.unique(groups):
            members = np.flatnonzero(groups == group)
            codes = np.unique(y[members])
            if len(codes) == 1:
                self.code_models_[group] = int(codes[0])
            else:
                self.code_models_[group] = TextClassifier(self.model, seed=self.seed).fit_clean(
                    [cleaned[i] for i in members], y[members])
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        cleaned = self.clean(X)
        group_proba = self.group_model_.predict_proba_clean(cleaned)
        out = np.zeros((len(cleaned), len(self.classes_)))
        for column, group in enumerate(self.group_model_.classes_):
            inner = self.code_models_[group]
            if isinstance(inner, int):
                out[:, np.searchsorted(self.classes_, inner)] += group_proba[:, column]
            else:
                positions = np.searchsorted(self.classes_, inner.classes_)
                out[:, positions] += group_proba[:, [column]] * inner.predict_proba_clean(cleaned)
        return out

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def top_terms(self, cleaned: str, code: int, k: int = 8) -> list[tuple[str, float]]:
        """Words that pushed the product towards ``code`` inside its group."""
        inner = self.code_models_.get(group_of(code))
        model = inner if isinstance(inner, TextClassifier) else self.group_model_
        target = code if isinstance(inner, TextClassifier) else group_of(code)
        return model.top_terms(cleaned, target, k)
