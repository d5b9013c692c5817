"""A classifier of the text read on product photos (OCR): short, noisy, often in several languages."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

_STAND_IN = "_no_text_"


class PhotoTextClassifier(ClassifierMixin, BaseEstimator):
    """Word TF-IDF + character (2-5, within words) TF-IDF -> logistic regression.

    Characters carry most of it: OCR splits and misreads words (``Verslonfrancaise``). A photo
    with no text gets the intercept alone, close to the class frequencies, so a fuser learns to
    trust this model only where a photo has text.
    """

    def __init__(self, *, C: float = 10.0, min_df: int = 2, max_iter: int = 2000) -> None:
        self.C = C
        self.min_df = min_df
        self.max_iter = max_iter

    def _features(self, texts: Sequence[str]) -> sp.csr_matrix:
        return sp.hstack([self.words_.transform(texts), self.chars_.transform(texts)]).tocsr()

    def fit(self, X: Sequence[str], y) -> "PhotoTextClassifier":
        """Learn from photo texts (``""`` for a photo without text) and labels."""
        texts = [str(t) for t in X]
        y = np.asarray(y)
        if len(texts) != len(y):
            raise ValueError(f"X has {len(texts)} texts but y has {len(y)} labels")
        self.words_ = TfidfVectorizer(sublinear_tf=True)
        self.chars_ = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                      min_df=self.min_df)
        # two stand-in documents keep both vocabularies non-empty when no photo has text
        corpus = texts + [_STAND_IN] * 2
        self.words_.fit(corpus)
        self.chars_.fit(corpus)
        self.model_ = LogisticRegression(C=self.C, max_iter=self.max_iter).fit(self._features(texts), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: Sequence[str]) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self._features([str(t) for t in X]))

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """Most probable class per row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
