"""Text classifiers: cleaned text -> TF-IDF (word + character n-grams) -> linear model.

``TextClassifier(model=...)`` picks the estimator by name. ``"linear"`` (the default) is our
model: word 1-2-gram and character 1-5-gram TF-IDF feeding a LinearSVC whose scores are
calibrated into probabilities. The seeds' baselines are selectable for comparison:
``"linear_svc"`` (word TF-IDF + LinearSVC, the seeds' text SVM), ``"logistic_regression"``,
``"random_forest"``, ``"kneighbors"`` and ``"decision_tree"``.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.svm import LinearSVC
from sklearn.tree import DecisionTreeClassifier
from scipy.special import expit
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.validation import check_is_fitted

from prodcat.text import char_ngrams
from prodcat.text.clean import CleaningConfig, clean_texts, texts_from

TEXT_MODELS: tuple[str, ...] = (
    "linear",
    "linear_svc",
    "logistic_regression",
    "random_forest",
    "kneighbors",
    "decision_tree",
)

# Stop-word removal and stemming cost about 1.5 points of weighted F1 for TF-IDF models on the
# real product texts (measured on rakuten_en; see README), so the models keep words whole.
MODEL_CLEANING: dict[str, bool] = {"stopwords": False, "stem": False, "numbers": False}


def _estimator(model: str, C: float, seed: int) -> BaseEstimator:
    """The bare estimator behind each model name."""
    if model in ("linear", "linear_svc"):
        return LinearSVC(C=C, random_state=seed)
    if model == "logistic_regression":
        return LogisticRegression(C=10.0, max_iter=300)
    if model == "random_forest":
        return RandomForestClassifier(n_estimators=200, n_jobs=-1, random_state=seed, min_samples_leaf=1)
    if model == "kneighbors":
        return KNeighborsClassifier(n_neighbors=7, weights="distance", metric="cosine")
    if model == "decision_tree":
        return DecisionTreeClassifier(random_state=seed, min_samples_leaf=2)
    raise ValueError(f"unknown text model {model!r}; choose one of {', '.join(TEXT_MODELS)}")


class TextClassifier(ClassifierMixin, BaseEstimator):
    """Product text classifier with calibrated ``predict_proba``.

    ``X`` is a DataFrame with ``designation`` and optional ``description`` columns, or a
    sequence of strings. ``cleaning`` maps :class:`~prodcat.text.clean.CleaningConfig` field
    names to booleans, on top of :data:`MODEL_CLEANING`.
    """

    def __init__(
        self,
        model: str = "linear",
        *,
        cleaning: dict[str, bool] | None = None,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] | None = (1, 5),
        max_features: int | None = 400_000,
        C: float = 0.3,
        calibration_folds: int = 3,
        seed: int = 42,
    ) -> None:
        self.model = model
        self.cleaning = cleaning
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.max_features = max_features
        self.C = C
        self.calibration_folds = calibration_folds
        self.seed = seed

    # -- features -------------------------------------------------------------------------
    def _config(self) -> CleaningConfig:
        return CleaningConfig(**{**MODEL_CLEANING, **(self.cleaning or {})})

    def clean(self, X: Any) -> list[str]:
        """Merged and cleaned text of each product (the model's input)."""
        return clean_texts(texts_from(X), self._config())

    def _vectorizers(self) -> list[TfidfVectorizer]:
        common = dict(sublinear_tf=True, lowercase=False, dtype=np.float32)
        vectorizers = [
            TfidfVectorizer(ngram_range=tuple(self.word_ngrams), token_pattern=r"(?u)\b\w+\b",
                            max_features=self.max_features, **common)
        ]
        if self.char_ngrams and self.model == "linear":
            vectorizers.append(
                TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(self.char_ngrams), min_df=2,
                                max_features=self.max_features, **common)
            )
        return vectorizers

    def fit_vectorizers(self, cleaned: Sequence[str]) -> sp.csr_matrix:
        """Learn the TF-IDF vocabularies from cleaned text; returns its features."""
        self.vectorizers_ = self._vectorizers()
        return sp.hstack([v.fit_transform(cleaned) for v in self.vectorizers_], format="csr")

    def vectorize(self, cleaned: Sequence[str]) -> sp.csr_matrix:
        """TF-IDF features of cleaned text (word block first, then character n-grams)."""
        blocks = [char_ngrams.transform(v, cleaned) for v in self.vectorizers_]
        return sp.hstack(blocks, format="csr") if len(blocks) > 1 else blocks[0].tocsr()

    # -- estimator API --------------------------------------------------------------------
    def fit(self, X: Any, y: Sequence[int]) -> "TextClassifier":
        """Clean, vectorise and fit; returns ``self``."""
        return self.fit_clean(self.clean(X), y)

    def fit_clean(self, cleaned: Sequence[str], y: Sequence[int]) -> "TextClassifier":
        """Fit on text that :meth:`clean` already produced (saves cleaning twice)."""
        y = np.asarray(y)
        if len(cleaned) != len(y):
            raise ValueError(f"{len(cleaned)} texts but {len(y)} labels")
        features = self.fit_vectorizers(cleaned)
        base = _estimator(self.model, self.C, self.seed)
        if not hasattr(base, "predict_proba"):
            folds = min(self.calibration_folds, int(np.bincount(np.unique(y, return_inverse=True)[1]).min()))
            base = (CalibratedClassifierCV(base, method="sigmoid", cv=folds, ensemble=False)
                    if folds >= 2 else _SoftmaxScores(base))
        self.estimator_ = clone(base).fit(features, y)
        self.classes_ = np.asarray(self.estimator_.classes_)
        self.sigmoid_ = _sigmoid_parameters(self.estimator_, len(self.classes_))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        return self.predict_proba_clean(self.clean(X))

    def predict_proba_clean(self, cleaned: Sequence[str]) -> np.ndarray:
        """:meth:`predict_proba` on already-cleaned text."""
        check_is_fitted(self, "estimator_")
        features = self.vectorize(cleaned)
        if getattr(self, "sigmoid_", None) is None:
            return np.asarray(self.estimator_.predict_proba(features), dtype=np.float64)
        # Same numbers as CalibratedClassifierCV.predict_proba, in one vectorised step instead of
        # 27 calibrator calls with their input checks (about 5-10 ms per single-product request).
        linear = self.estimator_.calibrated_classifiers_[0].estimator
        scores = safe_sparse_dot(features, linear.coef_.T, dense_output=True) + linear.intercept_
        a, b = self.sigmoid_
        proba = expit(-(a * scores + b))
        total = proba.sum(axis=1, keepdims=True)
        return np.divide(proba, total, out=np.full_like(proba, 1 / proba.shape[1]), where=total != 0)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable code of each product."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def word_vectorizer(self) -> TfidfVectorizer:
        """The fitted word TF-IDF vectorizer (what :meth:`clean` output is read with)."""
        check_is_fitted(self, "estimator_")
        return self.vectorizers_[0]

    def _word_names(self) -> np.ndarray:
        """Word-vocabulary names by column, built once (sorting the vocabulary costs ~0.4 s)."""
        if getattr(self, "_word_names_cache", None) is None:
            vocabulary = self.vectorizers_[0].vocabulary_
            names = np.empty(len(vocabulary), dtype=object)
            for word, column in vocabulary.items():
                names[column] = word
            self._word_names_cache = names
        return self._word_names_cache

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_word_names_cache"}

    def top_terms(self, cleaned: str, code: int, k: int = 8) -> list[tuple[str, float]]:
        """Terms of one cleaned text that pushed its score towards ``code`` the most.

        Uses the linear weights of the model (contribution = tf-idf value x weight); empty for
        non-linear models.
        """
        check_is_fitted(self, "estimator_")
        weights = _linear_weights(self.estimator_)
        if weights is None:
            return []
        row = self.vectorize([cleaned])
        names = self._word_names()
        if weights.shape[0] == 1 and len(self.classes_) == 2:  # binary linear models keep one row
            weights = np.vstack([-weights[0], weights[0]])
        class_index = int(np.flatnonzero(self.classes_ == code)[0])
        contributions = row.multiply(weights[class_index]).tocsr()
        order = np.argsort(-contributions.data)
        terms: list[tuple[str, float]] = []
        word_features = len(names)
        for position in order:
            if contributions.data[position] <= 0 or len(terms) >= k:
                break
            column = contributions.indices[position]
            if column < word_features:  # words are readable; char n-grams are not
                terms.append((str(names[column]), float(contributions.data[position])))
        return terms


def _sigmoid_parameters(estimator: BaseEstimator, n_classes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-class (a, b) of a sigmoid-calibrated linear multi-class model, else None."""
    if not isinstance(estimator, CalibratedClassifierCV) or len(estimator.calibrated_classifiers_) != 1:
        return None
    calibrated = estimator.calibrated_classifiers_[0]
    if calibrated.method != "sigmoid" or n_classes < 3 or not hasattr(calibrated.estimator, "coef_"):
        return None
    return (np.array([c.a_ for c in calibrated.calibrators]), np.array([c.b_ for c in calibrated.calibrators]))


def _linear_weights(estimator: BaseEstimator) -> np.ndarray | None:
    """Class x feature weight matrix of a (possibly calibrated) linear model, or None."""
    if isinstance(estimator, CalibratedClassifierCV):
        estimator = estimator.calibrated_classifiers_[0].estimator
    if isinstance(estimator, _SoftmaxScores):
        estimator = estimator.estimator_
    coef = getattr(estimator, "coef_", None)
    return None if coef is None else np.asarray(coef)


class _SoftmaxScores(ClassifierMixin, BaseEstimator):
    """Fallback probabilities (softmax of decision scores) when data is too small to calibrate."""

    def __init__(self, estimator: BaseEstimator) -> None:
        self.estimator = estimator

    def fit(self, X: Any, y: Sequence[int]) -> "_SoftmaxScores":
        self.estimator_ = clone(self.estimator).fit(X, y)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        scores = np.asarray(self.estimator_.decision_function(X), dtype=np.float64)
        if scores.ndim == 1:
            scores = np.column_stack([-scores, scores])
        scores = scores * 5.0
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)
