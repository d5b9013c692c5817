"""A faster ``transform`` for a fitted ``analyzer="char_wb"`` TF-IDF vectorizer.

scikit-learn cuts every word of every text into character n-grams and looks each one up in the
vocabulary. Inside-word n-grams depend on the word alone, so :func:`char_wb_tfidf` does that once
per distinct word and reuses it (:func:`transform` picks it whenever it applies): the output equals ``vectorizer.transform(texts)`` (same
columns, same values) for a vectorizer with the options the default text model uses
(``analyzer="char_wb"``, no preprocessing: ``lowercase=False``, no accent stripping).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize


def supports_fast_path(vectorizer: TfidfVectorizer) -> bool:
    """True when :func:`char_wb_tfidf` reproduces ``vectorizer.transform`` exactly."""
    return (isinstance(vectorizer, TfidfVectorizer) and vectorizer.analyzer == "char_wb"
            and not vectorizer.lowercase and vectorizer.strip_accents is None and vectorizer.preprocessor is None
            and vectorizer.input == "content" and not vectorizer.binary and hasattr(vectorizer, "vocabulary_"))


def _word_columns(word: str, vocabulary: dict[str, int], low: int, high: int) -> list[int]:
    """Vocabulary columns of one word's n-grams, padded with a space each side (as scikit-learn)."""
    padded = f" {word} "
    length = len(padded)
    columns = []
    for n in range(low, high + 1):
        for offset in range(max(length - n, 0) + 1):
            column = vocabulary.get(padded[offset:offset + n])
            if column is not None:
                columns.append(column)
        if length <= n:  # the padded word was taken whole: no longer n-grams either
            break
    return columns


def transform(vectorizer: TfidfVectorizer, texts: Sequence[str]) -> sp.csr_matrix:
    """``vectorizer.transform(texts)``, through :func:`char_wb_tfidf` when it applies."""
    return char_wb_tfidf(vectorizer, texts) if supports_fast_path(vectorizer) else vectorizer.transform(texts)


def char_wb_tfidf(vectorizer: TfidfVectorizer, texts: Sequence[str]) -> sp.csr_matrix:
    """``vectorizer.transform(texts)``, with each distinct word's n-grams looked up once."""
    vocabulary = vectorizer.vocabulary_
    low, high = vectorizer.ngram_range
    per_word: dict[str, list[int]] = {}
    indices: list[int] = []
    indptr = [0]
    for text in texts:
        for word in text.split():
            columns = per_word.get(word)
            if columns is None:
                columns = per_word[word] = _word_columns(word, vocabulary, low, high)
            indices.extend(columns)
        indptr.append(len(indices))
    counts = sp.csr_matrix((np.ones(len(indices), dtype=vectorizer.dtype), np.asarray(indices, dtype=np.int32),
                            np.asarray(indptr, dtype=np.int64)), shape=(len(texts), len(vocabulary)))
    counts.sum_duplicates()
    if vectorizer.sublinear_tf:
        np.log(counts.data, counts.data)
        counts.data += 1
    if vectorizer.use_idf:
        counts.data *= vectorizer.idf_[counts.indices]
    return normalize(counts, norm=vectorizer.norm, copy=False) if vectorizer.norm else counts
