"""The per-word fast path of a char_wb TF-IDF transform equals scikit-learn's transform."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from prodcat.text.char_ngrams import char_wb_tfidf, supports_fast_path

TRAIN = ["drone camera 4k pliable", "piscine tubulaire hors sol", "Éléphant en peluche géant", "lot de 3 livres",
         "DVD Harry Potter 1984", "a b c", "coque iPhone 12 pro max", "jeu de société 2-4 joueurs"]
NEW = ["drone   4k\tpliable", "", "   ", "x", "ab", "Éléphant ǅemal Ⅻ ١٢٣ n°5 (Import)", "mot-inconnu zzz",
       "coque coque coque iphone"]


@pytest.mark.parametrize("options", [
    dict(ngram_range=(1, 5), sublinear_tf=True),
    dict(ngram_range=(2, 4), sublinear_tf=False, norm=None),
    dict(ngram_range=(3, 3), use_idf=False, min_df=2),
])
def test_same_matrix_as_scikit_learn(options) -> None:
    vectorizer = TfidfVectorizer(analyzer="char_wb", lowercase=False, dtype=np.float32, **options).fit(TRAIN)
    assert supports_fast_path(vectorizer)
    expected = vectorizer.transform(NEW + TRAIN)
    got = char_wb_tfidf(vectorizer, NEW + TRAIN)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert got.nnz == expected.nnz
    assert abs(got - expected).max() == 0


def test_other_vectorizers_keep_scikit_learn() -> None:
    assert not supports_fast_path(TfidfVectorizer(analyzer="char_wb").fit(TRAIN))  # lower-cases first
    assert not supports_fast_path(TfidfVectorizer(analyzer="char", lowercase=False).fit(TRAIN))
    assert not supports_fast_path(TfidfVectorizer(analyzer="char_wb", lowercase=False))  # not fitted
