"""The default text model: four cheap, different linear models stacked on out-of-fold scores.

``StackedTextClassifier`` (text model name ``"stack"``) learns from one set of features per
product, computed once:

- the cleaned text's word 1-2-gram TF-IDF (the seeds' features);
- the *shape* of the raw words (``Harry`` -> ``Xxx``, ``DVD`` -> ``XX``, ``1984`` -> ``dd``) as
  1-3-gram TF-IDF, and eight layout numbers (length, word count, share of capitalised and
  upper-case words, share of digits, a year, a leading capital, description length): cleaning
  lower-cases and drops this, yet it tells e.g. a used book's bare title from a new book's
  catalogue entry;
- character 1-5-gram TF-IDF (inside word boundaries) and raw word 1-2-gram counts;
- the raw tokens (split on spaces only, case and punctuation kept: ``3D``, ``n°5``, ``(Import)``)
  as 1-2-gram TF-IDF.

Four members score every product: a LinearSVC on words + shapes + layout, a modified-Huber SGD
model on words + characters, complement naive Bayes on word counts and a LinearSVC on the raw
tokens. With ``sentences=True`` (text model ``"stack_sentences"``, in the ``best`` preset) a fifth
member, a ridge classifier, reads the Universal Sentence Encoder embeddings
(:func:`~prodcat.models.sentence.encode_sentences`, about 900 texts/s on 2 cores: too slow for the
default). A multinomial logistic
regression (the *stacker*) learns from their standardised scores and the layout numbers on
K-fold out-of-fold predictions (no product is scored by a member that saw it); the members are
then refitted on all the data. The stacker's output is the probability: no separate calibration.

Measured on rakuten_en (README, ``benchmarks/text.py``): each member alone is at or below the
seeds' word TF-IDF + LinearSVC; stacked they are 1.4-2 points above it. The raw-token member
and the stacker's stronger regularisation (``stack_C`` 0.1 -> 0.03) added 0.3 points to the
stack's 5-fold cross-validated F1 on the benchmark's 37,800 training texts (0.7842 -> 0.7873). Stacking needs data:
below :data:`MIN_PER_CLASS` products per class the model is the single calibrated LinearSVC on
words + characters (:class:`~prodcat.models.text.TextClassifier`), which is better there.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.naive_bayes import ComplementNB
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from sklearn.utils.validation import check_is_fitted

from prodcat.models.text import MODEL_CLEANING, TextClassifier
from prodcat.text import char_ngrams
from prodcat.text.clean import CleaningConfig, clean_texts, texts_from

RAW_CLEANING = CleaningConfig(lowercase=False, accents=False, non_alnum=False, numbers=False,
                              short_tokens=False, stopwords=False, stem=False, detect_language=False)
"""Only HTML stripping and mojibake repair: the shape and layout features read the raw words."""

WORD_CLEANING = CleaningConfig(**MODEL_CLEANING)
"""The linear text model's cleaning: whole words, stop words kept."""

_YEAR = re.compile(r"\b(1[89]\d\d|20\d\d)\b")
_RUNS = re.compile(r"([xXd])\1{2,}")
LAYOUT_FEATURES = ("log_chars", "log_words", "capitalised", "upper_case", "digits", "has_year", "leading_capital",
                   "log_description_chars")


MIN_PER_CLASS = 300
"""Below this many training products per class (on average) the stack is not used: the single
calibrated LinearSVC on words + characters is better there. Measured on rakuten_en subsets
(weighted F1 on 3,000 held-out texts, linear vs stack): 20 a class 0.497 vs 0.468, 50 0.586 vs
0.552, 100 0.630 vs 0.627, 200 0.688 vs 0.685, 400 0.724 vs 0.733, all 1,400 0.782 vs 0.794."""


class _ShapeTable(dict):
    """``str.translate`` table: upper-case letter -> ``X``, other letter -> ``x``, digit -> ``d``,
    anything else unchanged; each character is classified the first time it is met."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        self[code] = shape = "X" if char.isupper() else "x" if char.isalpha() else "d" if char.isdigit() else char
        return shape


_SHAPES = _ShapeTable()


def word_shape(text: str) -> str:
    """Each word's shape: letters as ``X``/``x`` by case, digits as ``d``, runs cut to two."""
    return _RUNS.sub(r"\1\1", " ".join(text.split()).translate(_SHAPES))


def layout(text: str, description: str = "") -> list[float]:
    """The layout numbers of :data:`LAYOUT_FEATURES` for one raw text."""
    words = text.split()
    n_words, n_chars = max(len(words), 1), max(len(text), 1)
    return [np.log1p(len(text)), np.log1p(len(words)),
            sum(w[:1].isupper() for w in words) / n_words,
            sum(w.isupper() and len(w) > 1 for w in words) / n_words,
            sum(c.isdigit() for c in text) / n_chars,
            float(bool(_YEAR.search(text))), float(text[:1].isupper()), np.log1p(len(description))]


def _descriptions(X: Any, n: int) -> list[str]:
    import pandas as pd

    if isinstance(X, pd.DataFrame) and "description" in X.columns:
        return ["" if not isinstance(d, str) else d for d in X["description"].tolist()]
    return [""] * n


def _scores(model: Any, features: Any) -> np.ndarray:
    """Per-class scores as an (n, classes) array, binary models included."""
    if isinstance(model, ComplementNB):
        scores = model.predict_joint_log_proba(features)
        return scores - scores.mean(axis=1, keepdims=True)
    scores = np.asarray(model.decision_function(features), dtype=np.float64)
    return np.column_stack([-scores, scores]) if scores.ndim == 1 else scores


class StackedTextClassifier(ClassifierMixin, BaseEstimator):
    """LinearSVC (words + shapes + layout), SGD (words + characters), complement naive Bayes
    (word counts) and LinearSVC (raw tokens), stacked by a logistic regression on out-of-fold
    scores; ``sentences=True`` adds a ridge classifier on sentence embeddings. See the module docstring.

    ``X`` is a DataFrame with ``designation`` and optional ``description`` columns, or a sequence
    of strings; ``predict_proba`` columns follow ``classes_``.
    """

    def __init__(self, *, folds: int = 5, C: float = 1.0, stack_C: float = 0.03, max_features: int | None = 400_000,
                 min_per_class: int = MIN_PER_CLASS, sentences: bool = False, seed: int = 42) -> None:
        self.folds = folds
        self.sentences = sentences
        self.min_per_class = min_per_class
        self.C = C
        self.stack_C = stack_C
        self.max_features = max_features
        self.seed = seed

    # -- features -------------------------------------------------------------------------
    def clean(self, X: Any) -> list[str]:
        """Merged and cleaned text of each product (what the word features read)."""
        return clean_texts(texts_from(X), WORD_CLEANING)

    def _vectorizers(self) -> dict[str, Any]:
        common = dict(sublinear_tf=True, lowercase=False, dtype=np.float32)
        return {
            "words": TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b",
                                     max_features=self.max_features, **common),
            "shapes": TfidfVectorizer(ngram_range=(1, 3), token_pattern=r"\S+", **common),
            "chars": TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 5), min_df=2,
                                     max_features=self.max_features, **common),
            "counts": CountVectorizer(ngram_range=(1, 2), token_pattern=r"(?u)\b\w+\b", lowercase=False,
                                      max_features=self.max_features, dtype=np.float32),
            "raw": TfidfVectorizer(ngram_range=(1, 2), token_pattern=r"\S+", max_features=self.max_features, **common),
        }

    def _features(self, X: Any, fit: bool, n_labels: int | None = None) -> dict[str, Any]:
        texts = texts_from(X)
        if n_labels is not None and len(texts) != n_labels:
            raise ValueError(f"{len(texts)} texts but {n_labels} labels")
        raw = clean_texts(texts, RAW_CLEANING)
        cleaned = clean_texts(raw, WORD_CLEANING)
        sources = {"words": cleaned, "shapes": [word_shape(t) for t in raw], "chars": cleaned, "counts": cleaned,
                   "raw": raw}
        if fit:
            self.vectorizers_ = self._vectorizers()
        blocks = {name: v.fit_transform(sources[name]) if fit else char_ngrams.transform(v, sources[name])
                  for name, v in self.vectorizers_.items()}
        numbers = np.array([layout(t, d) for t, d in zip(raw, _descriptions(X, len(raw)))], dtype=np.float64)
        if fit:
            self.layout_scaler_ = StandardScaler().fit(numbers)
        numbers = self.layout_scaler_.transform(numbers)
        features = {
            "svc": sp.hstack([blocks["words"], 0.6 * blocks["shapes"], sp.csr_matrix(0.1 * numbers)], format="csr"),
            "sgd": sp.hstack([blocks["words"], blocks["chars"]], format="csr"),
            "nb": blocks["counts"],
            "layout": numbers,
        }
        if "raw" in blocks:  # stacks fitted before the raw-token member have no such vectorizer
            features["raw"] = blocks["raw"]
        if self.sentences if fit else "use" in self.members_:
            from prodcat.models.sentence import encode_sentences

            features["use"] = encode_sentences(X)
        return features

    def _members(self) -> dict[str, Any]:
        return {"svc": LinearSVC(C=self.C, random_state=self.seed),
                "sgd": SGDClassifier(loss="modified_huber", alpha=2e-5, max_iter=30, tol=1e-3, random_state=self.seed),
                "nb": ComplementNB(alpha=0.3),
                "raw": LinearSVC(C=self.C, random_state=self.seed),
                **({"use": RidgeClassifier(alpha=1.0)} if self.sentences else {})}

    def _fit_members(self, features: dict[str, Any], y: np.ndarray, rows: np.ndarray | None = None) -> dict[str, Any]:
        with warnings.catch_warnings():  # SGD's max_iter is a budget, not a convergence promise
            warnings.filterwarnings("ignore", message="Maximum number of iteration", category=Warning)
            members = {name: model.fit(features[name] if rows is None else features[name][rows],
                                       y if rows is None else y[rows])
                       for name, model in self._members().items()}
        members["sgd"].__dict__.pop("_loss_function_", None)  # a compiled object predictions never use
        return members

    def _stack_inputs(self, members: dict[str, Any], features: dict[str, Any], rows: Any = slice(None)) -> np.ndarray:
        return np.hstack([_scores(m, features[name][rows]) for name, m in members.items()] + [features["layout"][rows]])

    # -- estimator API --------------------------------------------------------------------
    def fit(self, X: Any, y: Sequence[int]) -> "StackedTextClassifier":
        """Features, out-of-fold member scores, the stacker, then the members refitted on
        everything; below ``min_per_class`` products per class, the single linear model."""
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        counts = np.bincount(np.searchsorted(self.classes_, y))
        folds = int(min(self.folds, counts.min()))
        self.fallback_ = self.stacker_ = self.members_ = None
        if len(y) < self.min_per_class * len(self.classes_) or folds < 2:
            self.fallback_ = TextClassifier(seed=self.seed).fit(X, y)
            return self
        features = self._features(X, fit=True, n_labels=len(y))
        held_out = np.zeros((len(y), len(self._members()) * len(self.classes_) + features["layout"].shape[1]))
        for train, test in StratifiedKFold(folds, shuffle=True, random_state=self.seed).split(np.zeros(len(y)), y):
            held_out[test] = self._stack_inputs(self._fit_members(features, y, train), features, test)
        self.stacker_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.stack_C, max_iter=3000)).fit(held_out, y)
        self.members_ = self._fit_members(features, y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "classes_")
        if self.fallback_ is not None:
            return self.fallback_.predict_proba(X)
        features = self._features(X, fit=False)
        return self.stacker_.predict_proba(self._stack_inputs(self.members_, features))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable code of each product."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def word_vectorizer(self) -> TfidfVectorizer:
        """The fitted word TF-IDF vectorizer (what :meth:`clean` output is read with)."""
        check_is_fitted(self, "classes_")
        return self.fallback_.word_vectorizer() if self.fallback_ is not None else self.vectorizers_["words"]

    def _word_names(self) -> np.ndarray:
        """Word-vocabulary names by column, built once (sorting a large vocabulary takes ~0.4 s)."""
        if getattr(self, "_word_names_cache", None) is None:
            self._word_names_cache = self.vectorizers_["words"].get_feature_names_out()
        return self._word_names_cache

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_word_names_cache"}

    def top_terms(self, cleaned: str, code: int, k: int = 8) -> list[tuple[str, float]]:
        """Words of one cleaned text that pushed the LinearSVC member towards ``code`` the most."""
        check_is_fitted(self, "classes_")
        if self.fallback_ is not None:
            return self.fallback_.top_terms(cleaned, code, k)
        words = self.vectorizers_["words"]
        row = words.transform([cleaned]).tocsr()
        coef = np.asarray(self.members_["svc"].coef_)
        if coef.shape[0] == 1:  # binary: one row of weights
            coef = np.vstack([-coef[0], coef[0]])
        weights = coef[int(np.flatnonzero(self.classes_ == code)[0]), : row.shape[1]]
        contributions = row.multiply(weights).tocsr()
        names = self._word_names()
        order = np.argsort(-contributions.data)
        return [(str(names[contributions.indices[i]]), float(contributions.data[i]))
                for i in order[:k] if contributions.data[i] > 0]
