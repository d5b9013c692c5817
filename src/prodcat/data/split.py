"""Reproducible stratified train / validation / test split that also works on tiny data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from prodcat.errors import ProdcatError

#: Classes with fewer members than this cannot give one member to each part: they go to train.
MIN_CLASS_SIZE = 3


class SplitError(ProdcatError, ValueError):
    """Invalid split sizes or labels."""


@dataclass
class Split:
    """Positional indices (sorted ``int64`` arrays) of the three disjoint parts."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        """Number of rows in each part."""
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


def _check_size(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise SplitError(f"{name} must be a fraction between 0 and 1, got {value!r}")
    size = float(value)
    if math.isnan(size) or not 0.0 <= size < 1.0:
        raise SplitError(f"{name} must be a fraction in [0, 1), got {value!r}")
    return size


def _apportion(counts: np.ndarray, share: float, caps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-class counts summing to ``round(total * share)``: floors, then largest remainders (random ties)."""
    if share == 0.0 or counts.sum() == 0:
        return np.zeros_like(counts)
    quotas = counts * share
    taken = np.minimum(np.floor(quotas).astype(np.int64), caps)
    target = min(int(round(counts.sum() * share)), int(caps.sum()))
    remainders = quotas - taken
    order = np.lexsort((rng.random(len(counts)), -remainders))  # largest remainder first
    for k in order:
        if taken.sum() >= target:
            break
        if taken[k] < caps[k]:
            taken[k] += 1
    return taken


def stratified_split(
    y: Sequence | np.ndarray | pd.Series, *, valid_size: float = 0.1, test_size: float = 0.1, seed: int = 42
) -> Split:
    """Split row positions into train / valid / test, keeping each class's share in every part.

    Classes with fewer than ``MIN_CLASS_SIZE`` members go entirely to train; every other class
    keeps at least one member in train. Sizes are fractions of the stratifiable rows (0 gives an
    empty part). The same ``y`` and ``seed`` always give the same split.
    """
    valid_share = _check_size("valid_size", valid_size)
    test_share = _check_size("test_size", test_size)
    if valid_share + test_share >= 1.0:
        raise SplitError(f"valid_size + test_size must be below 1, got {valid_share + test_share:g}")
    labels = pd.Series(np.asarray(y, dtype=object) if not isinstance(y, pd.Series) else y.to_numpy())
    if labels.isna().any():
        raise SplitError(f"labels contain missing values at positions {np.flatnonzero(labels.isna())[:5].tolist()}")
    codes, _ = pd.factorize(labels, sort=True)
    counts = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    eligible = np.where(counts >= MIN_CLASS_SIZE, counts, 0)
    n_test = _apportion(eligible, test_share, np.maximum(eligible - 1, 0), rng)
    n_valid = _apportion(eligible, valid_share, np.maximum(eligible - 1 - n_test, 0), rng)
    parts: dict[str, list[np.ndarray]] = {"train": [], "valid": [], "test": []}
    by_class = np.split(np.argsort(codes, kind="stable"), np.cumsum(counts)[:-1]) if len(counts) else []
    for k, members in enumerate(by_class):
        members = rng.permutation(members)
        parts["test"].append(members[: n_test[k]])
        parts["valid"].append(members[n_test[k] : n_test[k] + n_valid[k]])
        parts["train"].append(members[n_test[k] + n_valid[k] :])

    def join(arrays: list[np.ndarray]) -> np.ndarray:
        return np.sort(np.concatenate(arrays)).astype(np.int64) if arrays else np.zeros(0, dtype=np.int64)

    return Split(train=join(parts["train"]), valid=join(parts["valid"]), test=join(parts["test"]))


def validation_split(y: Sequence | np.ndarray, fraction: float, seed: int,
                     max_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train, validation) row positions; validation is about ``fraction`` of the rows.

    Each class with at least two rows gives about ``fraction`` of them (at least one) to
    validation; single-row classes stay in training. ``max_size`` caps the validation rows.
    Returns an empty validation set when ``fraction`` is 0 or nothing can be held out.
    Used inside a fit (early stopping, a fuser's holdout), where every class should be seen.
    """
    codes = np.unique(np.asarray(y), return_inverse=True)[1]
    n = len(codes)
    rng = np.random.default_rng(seed)
    if fraction <= 0 or n < 4:
        return np.arange(n), np.arange(0)
    held: list[np.ndarray] = []
    for code in np.unique(codes):
        rows = np.flatnonzero(codes == code)
        if len(rows) < 2:
            continue
        take = min(len(rows) - 1, max(1, int(round(fraction * len(rows)))))
        held.append(rng.choice(rows, size=take, replace=False))
    valid = np.sort(np.concatenate(held)) if held else np.arange(0)
    if max_size is not None and len(valid) > max_size:
        valid = np.sort(rng.choice(valid, size=max_size, replace=False))
    train = np.setdiff1d(np.arange(n), valid, assume_unique=True)
    return train, valid


def stratified_folds(y: Sequence | np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``folds`` stratified (train, held-out) position pairs covering every row once as held out.

    ``folds`` is clipped to [2, size of the largest class]; classes with fewer members than
    folds are spread as evenly as possible (rarer in some folds).
    """
    import warnings

    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(y)
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    folds = int(max(2, min(folds, counts.max())))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        return list(splitter.split(np.zeros(len(y)), y))
