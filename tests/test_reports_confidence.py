"""Calibration and coverage maths behind the evaluation report."""

from __future__ import annotations

import numpy as np
import pytest

from prodcat.reports.confidence import (
    coverage_curve,
    expected_calibration_error,
    prediction_confidence,
    reliability_table,
    threshold_for_accuracy,
)


def test_prediction_confidence_reads_the_predicted_column():
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.5, 0.4, 0.1]])
    # third row predicted as class 20 although 10 has the highest probability (e.g. a tie-break rule)
    conf = prediction_confidence(proba, [10, 30, 20], [10, 20, 30])
    assert conf.tolist() == [0.7, 0.6, 0.4]
    # a prediction outside the columns falls back to the row maximum
    assert prediction_confidence(proba, [99, 30, 10], [10, 20, 30]).tolist() == [0.7, 0.6, 0.5]


def test_prediction_confidence_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="3 classes"):
        prediction_confidence(np.ones((2, 2)), [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="predictions"):
        prediction_confidence(np.ones((2, 2)) / 2, [1], [1, 2])


def test_reliability_table_and_ece_by_hand():
    conf = np.array([0.95, 0.95, 0.95, 0.95, 0.55, 0.55])
    correct = np.array([True, True, True, False, True, False])
    table = reliability_table(conf, correct, n_bins=10)
    assert table["count"].sum() == 6
    top = table.iloc[9]
    assert top["count"] == 4 and top["accuracy"] == pytest.approx(0.75) and top["mean_confidence"] == pytest.approx(0.95)
    mid = table.iloc[5]
    assert mid["count"] == 2 and mid["accuracy"] == pytest.approx(0.5)
    # ECE = 4/6 * |0.75 - 0.95| + 2/6 * |0.5 - 0.55|
    assert expected_calibration_error(table) == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.05)


def test_confidence_of_one_lands_in_the_last_bin():
    table = reliability_table(np.array([1.0, 0.0]), np.array([True, False]), n_bins=4)
    assert table["count"].tolist() == [1, 0, 0, 1]


def test_coverage_curve_keeps_ties_together():
    conf = np.array([0.9, 0.8, 0.8, 0.5])
    correct = np.array([True, True, False, False])
    curve = coverage_curve(conf, correct)
    assert curve["threshold"].tolist() == [0.9, 0.8, 0.5]
    assert curve["n_auto"].tolist() == [1, 3, 4]
    assert curve["accuracy"].tolist() == pytest.approx([1.0, 2 / 3, 0.5])
    assert curve["coverage"].tolist() == pytest.approx([0.25, 0.75, 1.0])


def test_threshold_for_accuracy_picks_the_largest_coverage():
    conf = np.array([0.99, 0.97, 0.9, 0.8, 0.6, 0.4])
    correct = np.array([True, True, True, True, False, False])
    curve = coverage_curve(conf, correct)
    hit = threshold_for_accuracy(curve, 0.95)
    assert hit["threshold"] == pytest.approx(0.8) and hit["n_auto"] == 4 and hit["accuracy"] == 1.0
    assert threshold_for_accuracy(coverage_curve(np.array([0.9, 0.8]), np.array([False, True])), 0.95) is None
