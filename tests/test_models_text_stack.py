"""StackedTextClassifier: the default text model (four linear members stacked out-of-fold)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score

from prodcat.data.sample import build_demo_table
from prodcat.models.text import TextClassifier
from prodcat.models.text_stack import LAYOUT_FEATURES, StackedTextClassifier, layout, word_shape


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    table = build_demo_table(n_train=600, n_test=200, seed=5)
    return table[table["split"] == "train"], table[table["split"] == "test"]


@pytest.fixture(scope="module")
def fitted(split) -> StackedTextClassifier:
    train, _ = split
    return StackedTextClassifier(min_per_class=10).fit(train, train["prdtypecode"])  # demo data: ~20 a class


def test_word_shape_keeps_case_and_digits() -> None:
    assert word_shape("Harry Potter DVD 1984 x2") == "Xxx Xxx XX dd xd"  # runs cut to two
    assert word_shape("Éléphant") == "Xxx"
    assert word_shape("") == ""


def test_layout_numbers() -> None:
    numbers = layout("Revue De Paris 1925", "une description")
    assert len(numbers) == len(LAYOUT_FEATURES)
    named = dict(zip(LAYOUT_FEATURES, numbers))
    assert named["capitalised"] == 0.75 and named["has_year"] == 1.0 and named["leading_capital"] == 1.0
    assert named["log_description_chars"] == pytest.approx(np.log1p(len("une description")))
    assert layout("", "") == [0.0] * len(LAYOUT_FEATURES)


def test_probabilities_follow_classes(fitted, split) -> None:
    _, test = split
    proba = fitted.predict_proba(test)
    assert proba.shape == (len(test), len(fitted.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert fitted.stacker_ is not None and fitted.fallback_ is None
    assert list(fitted.members_) == ["svc", "sgd", "nb", "raw"]
    np.testing.assert_array_equal(fitted.predict(test), fitted.classes_[proba.argmax(axis=1)])


def test_stacked_model_learns(fitted, split) -> None:
    _, test = split
    assert f1_score(test["prdtypecode"], fitted.predict(test), average="weighted") > 0.5


def test_small_data_uses_the_single_linear_model(split) -> None:
    train, test = split
    model = StackedTextClassifier().fit(train, train["prdtypecode"])  # ~20 a class, below MIN_PER_CLASS
    assert model.stacker_ is None and isinstance(model.fallback_, TextClassifier)
    single = TextClassifier().fit(train, train["prdtypecode"])
    np.testing.assert_allclose(model.predict_proba(test), single.predict_proba(test))
    cleaned = model.clean(test.head(1))[0]
    code = int(model.predict(test.head(1))[0])
    assert model.top_terms(cleaned, code) == single.top_terms(cleaned, code)
    assert model.word_vectorizer() is model.fallback_.vectorizers_[0]


def test_words_behind_a_prediction(fitted, split) -> None:
    _, test = split
    row = test.head(1)
    code = int(fitted.predict(row)[0])
    cleaned = fitted.clean(row)[0]
    terms = fitted.top_terms(cleaned, code, k=5)
    assert 0 < len(terms) <= 5
    assert all(set(term.split()) <= set(cleaned.split()) for term, _ in terms)
    assert [w for _, w in terms] == sorted((w for _, w in terms), reverse=True)


def test_tiny_classes_still_predict() -> None:
    texts = ["drone camera 4k", "drone quadcopter", "piscine tubulaire", "piscine gonflable", "livre poche"]
    codes = [2583, 2583, 2582, 2582, 10]  # one class with a single product: no out-of-fold scores
    model = StackedTextClassifier(min_per_class=1).fit(texts, codes)
    assert model.stacker_ is None
    proba = model.predict_proba(["drone pliable", "petite piscine"])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert list(model.classes_[proba.argmax(axis=1)]) == [2583, 2582]


def test_binary_problems_work() -> None:
    texts = ["drone camera", "drone 4k", "drone pliable", "piscine ronde", "piscine tubulaire", "piscine hors sol"]
    model = StackedTextClassifier(folds=3, min_per_class=1).fit(texts, [1, 1, 1, 2, 2, 2])
    assert model.stacker_ is not None
    assert list(model.predict(["un drone", "une piscine"])) == [1, 2]


def test_clone_and_params() -> None:
    model = StackedTextClassifier(stack_C=0.3, seed=1)
    assert clone(model).get_params() == model.get_params()
    assert not hasattr(clone(model), "members_")


def test_label_count_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="3 texts but 2 labels"):
        StackedTextClassifier(min_per_class=1).fit(["a b", "c d", "e f"], [1, 2])


def test_a_fitted_stack_survives_the_code_free_state_format(fitted, split, tmp_path) -> None:
    from prodcat.persist import load_state, save_state

    _, test = split
    save_state({"model": fitted}, tmp_path / "state.npz")
    loaded = load_state(tmp_path / "state.npz")["model"]
    np.testing.assert_allclose(loaded.predict_proba(test), fitted.predict_proba(test))


def test_a_stack_fitted_before_the_raw_token_member_still_predicts(split, monkeypatch) -> None:
    train, test = split
    vectorizers, members = StackedTextClassifier._vectorizers, StackedTextClassifier._members
    monkeypatch.setattr(StackedTextClassifier, "_vectorizers",
                        lambda self: {k: v for k, v in vectorizers(self).items() if k != "raw"})
    monkeypatch.setattr(StackedTextClassifier, "_members",
                        lambda self: {k: v for k, v in members(self).items() if k != "raw"})
    old = StackedTextClassifier(min_per_class=10).fit(train, train["prdtypecode"])
    monkeypatch.undo()
    assert list(old.members_) == ["svc", "sgd", "nb"] and "raw" not in old.vectorizers_
    proba = old.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def test_sentence_member_reads_the_universal_sentence_encoder(split, tmp_path) -> None:
    from prodcat.persist import load_state, save_state

    train, test = split
    model = StackedTextClassifier(min_per_class=10, sentences=True).fit(train, train["prdtypecode"])
    assert list(model.members_) == ["svc", "sgd", "nb", "raw", "use"]
    assert f1_score(test["prdtypecode"], model.predict(test), average="weighted") > 0.5
    save_state({"model": model}, tmp_path / "state.npz")
    loaded = load_state(tmp_path / "state.npz")["model"]
    np.testing.assert_allclose(loaded.predict_proba(test), model.predict_proba(test))
