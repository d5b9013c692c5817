"""Confidence analysis of predictions: calibration (reliability, ECE) and coverage for human review."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def prediction_confidence(proba: np.ndarray, y_pred: Sequence[int], classes: Sequence[int]) -> np.ndarray:
    """Probability each row gives its predicted class (the row maximum where the prediction is not a column)."""
    proba = np.asarray(proba, dtype=float)
    classes = [int(c) for c in classes]
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"proba has shape {proba.shape} but there are {len(classes)} classes")
    y_pred = np.asarray(y_pred).astype(int)
    if len(y_pred) != len(proba):
        raise ValueError(f"{len(y_pred)} predictions but {len(proba)} probability rows")
    column = {c: i for i, c in enumerate(classes)}
    index = np.array([column.get(int(p), -1) for p in y_pred], dtype=int)
    confidence = proba.max(axis=1)
    known = index >= 0
    confidence[known] = proba[np.flatnonzero(known), index[known]]
    return confidence


def reliability_table(confidence: np.ndarray, correct: np.ndarray, n_bins: int = 10) -> pd.DataFrame:
    """Per equal-width confidence bin: bounds, product count, mean confidence and accuracy."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=confidence, minlength=n_bins)
    hit_sum = np.bincount(which, weights=correct.astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return pd.DataFrame(
            {
                "bin_low": edges[:-1],
                "bin_high": edges[1:],
                "count": count,
                "mean_confidence": np.where(count > 0, conf_sum / count, np.nan),
                "accuracy": np.where(count > 0, hit_sum / count, np.nan),
            }
        )


def expected_calibration_error(table: pd.DataFrame) -> float:
    """ECE: the count-weighted mean gap between accuracy and confidence over the bins of ``table``."""
    filled = table[table["count"] > 0]
    total = filled["count"].sum()
    if total == 0:
        return float("nan")
    gaps = (filled["accuracy"] - filled["mean_confidence"]).abs()
    return float((gaps * filled["count"]).sum() / total)


def coverage_curve(confidence: np.ndarray, correct: np.ndarray) -> pd.DataFrame:
    """For each distinct threshold t: share of products with confidence >= t and their accuracy.

    Rows go from the highest threshold (fewest products auto-classified) to the lowest (all of them).
    """
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    n = len(confidence)
    if n == 0:
        return pd.DataFrame(columns=["threshold", "n_auto", "coverage", "accuracy"])
    order = np.argsort(-confidence, kind="stable")
    sorted_conf = confidence[order]
    hits = np.cumsum(correct[order])
    # a threshold keeps every product tied with the last one kept: use the end of each tie group
    ends = np.flatnonzero(np.r_[sorted_conf[1:] != sorted_conf[:-1], True])
    kept = ends + 1
    return pd.DataFrame(
        {
            "threshold": sorted_conf[ends],
            "n_auto": kept,
            "coverage": kept / n,
            "accuracy": hits[ends] / kept,
        }
    )


def threshold_for_accuracy(curve: pd.DataFrame, target: float) -> dict | None:
    """The lowest threshold (largest coverage) whose auto-classified accuracy reaches ``target``; None if none."""
    reaching = curve[curve["accuracy"] >= target]
    if reaching.empty:
        return None
    best = reaching.loc[reaching["coverage"].idxmax()]
    return {
        "target": float(target),
        "threshold": float(best["threshold"]),
        "coverage": float(best["coverage"]),
        "accuracy": float(best["accuracy"]),
        "n_auto": int(best["n_auto"]),
    }
