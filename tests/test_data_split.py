"""Stratified train / valid / test split: reproducible, stratified, disjoint, robust on tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from prodcat.data.split import MIN_CLASS_SIZE, Split, SplitError, stratified_split
from prodcat.errors import ProdcatError
from prodcat.taxonomy import OFFICIAL_COUNTS


def imbalanced_labels(n: int = 2000, seed: int = 0) -> np.ndarray:
    """Labels drawn from the official class distribution, shuffled."""
    codes = np.array(list(OFFICIAL_COUNTS))
    weights = np.array(list(OFFICIAL_COUNTS.values()), dtype=float)
    return np.random.default_rng(seed).choice(codes, size=n, p=weights / weights.sum())


def assert_partition(split: Split, n: int) -> None:
    everything = np.concatenate([split.train, split.valid, split.test])
    assert len(everything) == n and len(np.unique(everything)) == n, "parts overlap or miss rows"
    assert set(everything.tolist()) == set(range(n))
    for part in (split.train, split.valid, split.test):
        assert part.dtype == np.int64 and np.all(np.diff(part) > 0)


def test_same_seed_same_split_other_seed_other_split():
    y = imbalanced_labels()
    a, b = stratified_split(y, seed=7), stratified_split(y, seed=7)
    for part in ("train", "valid", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    c = stratified_split(y, seed=8)
    assert not np.array_equal(a.test, c.test)


def test_parts_are_disjoint_and_cover_all_rows():
    y = imbalanced_labels()
    split = stratified_split(y, valid_size=0.15, test_size=0.2)
    assert_partition(split, len(y))
    assert split.sizes() == {"train": 1300, "valid": 300, "test": 400}


def test_each_class_keeps_its_share_in_every_part():
    y = imbalanced_labels(5000)
    split = stratified_split(y, valid_size=0.1, test_size=0.2, seed=3)
    for code in np.unique(y):
        n = int((y == code).sum())
        assert abs(int((y[split.test] == code).sum()) - n * 0.2) < 1 + 1e-9
        assert abs(int((y[split.valid] == code).sum()) - n * 0.1) < 1 + 1e-9


def test_tiny_data_small_classes_go_to_train():
    # 30 rows: 6 classes of 4, 2 classes of 2, 2 singletons
    y = np.array([10] * 4 + [40] * 4 + [50] * 4 + [60] * 4 + [1140] * 4 + [1160] * 4 + [1180] * 2 + [1280] * 2 + [1281, 1300])
    assert len(y) == 30
    split = stratified_split(y, valid_size=0.2, test_size=0.2, seed=1)
    assert_partition(split, 30)
    small = np.isin(y, [1180, 1280, 1281, 1300])
    assert set(np.flatnonzero(small)) <= set(split.train.tolist())
    assert len(split.test) == round(24 * 0.2) and len(split.valid) == round(24 * 0.2)
    for code in (10, 40, 50, 60, 1140, 1160):
        assert (y[split.train] == code).sum() >= 1, "every class keeps a training example"


def test_class_of_minimum_size_gives_at_most_one_to_each_part():
    y = np.array([1] * MIN_CLASS_SIZE)
    split = stratified_split(y, valid_size=0.4, test_size=0.4)
    assert split.sizes() == {"train": 1, "valid": 1, "test": 1}


def test_zero_sizes_give_empty_parts():
    y = imbalanced_labels(300)
    split = stratified_split(y, valid_size=0.2, test_size=0)
    assert len(split.test) == 0 and split.test.dtype == np.int64
    assert len(split.valid) == 60
    only_train = stratified_split(y, valid_size=0, test_size=0)
    assert len(only_train.train) == 300


def test_positions_not_labels_of_a_series_index():
    y = pd.Series([10, 40] * 10, index=np.arange(1000, 1020))
    split = stratified_split(y, valid_size=0.2, test_size=0.2)
    assert_partition(split, 20)
    assert (y.iloc[split.test] == 10).sum() == 2 and (y.iloc[split.test] == 40).sum() == 2


def test_string_labels_and_empty_input():
    split = stratified_split(["a", "b", "a", "b", "a", "b", "a", "b", "a", "b"], valid_size=0.2, test_size=0.2)
    assert_partition(split, 10)
    empty = stratified_split([])
    assert empty.sizes() == {"train": 0, "valid": 0, "test": 0}


@pytest.mark.parametrize(
    "kwargs, problem",
    [
        ({"valid_size": -0.1}, r"valid_size must be a fraction in \[0, 1\)"),
        ({"test_size": 1.0}, r"test_size must be a fraction in \[0, 1\)"),
        ({"test_size": float("nan")}, "test_size must be a fraction"),
        ({"valid_size": "0.1"}, "valid_size must be a fraction between 0 and 1"),
        ({"valid_size": True}, "valid_size must be a fraction"),
        ({"valid_size": 0.5, "test_size": 0.5}, "valid_size \\+ test_size must be below 1"),
    ],
)
def test_invalid_sizes(kwargs, problem):
    with pytest.raises(SplitError, match=problem) as info:
        stratified_split([1, 2, 3], **kwargs)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ProdcatError)


def test_missing_labels_are_rejected():
    with pytest.raises(SplitError, match=r"missing values at positions \[1\]"):
        stratified_split([10, None, 10])
