"""Human review of uncertain predictions, and shop-ready prediction tables.

At training, :func:`review_thresholds` measures on the validation rows the lowest confidence
threshold whose automatically classified products reach a target precision (95 %, 98 %); the
thresholds are stored with the validation metrics in the model bundle. At prediction,
:class:`ReviewPolicy` reads them back and flags each product whose confidence is below the
threshold (``needs_review``). The CLI, the REST API and the web app all go through this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from prodcat.errors import ProdcatError
from prodcat.reports.confidence import coverage_curve, threshold_for_accuracy
from prodcat.taxonomy import name_of

REVIEW_TARGETS = (0.95, 0.98)
DEFAULT_REVIEW_TARGET = 0.95
REVIEW_KEY = "review"


def target_key(target: float) -> str:
    """The key a precision target is stored under in the metrics (``"0.95"``)."""
    return f"{float(target):g}"


def review_thresholds(confidence: np.ndarray, correct: np.ndarray,
                      targets: Sequence[float] = REVIEW_TARGETS) -> dict[str, Any]:
    """For each precision target: the threshold, coverage and precision measured on these rows.

    ``None`` for a target no threshold reaches. ``n`` is the number of rows measured on.
    """
    curve = coverage_curve(np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool))
    return {"n": int(len(confidence)),
            "targets": {target_key(t): threshold_for_accuracy(curve, t) if len(curve) else None for t in targets}}


@dataclass(frozen=True)
class ReviewPolicy:
    """Which predictions go to a person: those whose confidence is below ``threshold``.

    ``threshold`` is None when the model has no measured thresholds (``available`` False: no
    product is flagged, ``needs_review`` is unknown) and ``math.inf`` when the target precision
    was reachable at no threshold (every product needs review).
    """

    target: float
    threshold: float | None
    measured_on: int | None = None
    split: str | None = None

    @property
    def available(self) -> bool:
        return self.threshold is not None

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any] | None, target: float = DEFAULT_REVIEW_TARGET) -> "ReviewPolicy":
        """The policy for ``target`` from a bundle's metrics (``model.metrics_``)."""
        if not 0 < target < 1:
            raise ProdcatError(f"review target must be a precision between 0 and 1, got {target}")
        section = (metrics or {}).get("validation")
        review = section.get(REVIEW_KEY) if isinstance(section, Mapping) else None
        targets = review.get("targets") if isinstance(review, Mapping) else None
        if not targets:
            return cls(target, None)
        if target_key(target) not in targets:
            raise ProdcatError(f"the model has review thresholds for precision {', '.join(sorted(targets))}, "
                               f"not {target_key(target)}")
        hit = targets[target_key(target)]
        threshold = float(hit["threshold"]) if isinstance(hit, Mapping) else math.inf
        return cls(target, threshold, review.get("n"), "validation")

    @classmethod
    def for_model(cls, model: Any, target: float = DEFAULT_REVIEW_TARGET) -> "ReviewPolicy":
        """The policy stored in a fitted or loaded :class:`~prodcat.predictor.ProductClassifier`."""
        return cls.from_metrics(getattr(model, "metrics_", None), target)

    def needs_review(self, confidence: np.ndarray | float) -> np.ndarray | None:
        """True where the confidence is below the threshold; None when the model has no threshold."""
        if self.threshold is None:
            return None
        return np.asarray(confidence, dtype=float) < self.threshold

    def verdict(self, needs_review: bool | None) -> str:
        """What a product's flag means, in one sentence."""
        if needs_review is None or self.threshold is None:
            return "No review flag: the model was trained without validation rows to measure a threshold on."
        where = f" measured on {self.measured_on:,} {self.split} rows" if self.measured_on else ""
        if math.isinf(self.threshold):
            return f"Needs review: no confidence threshold reached {self.target:.0%} precision{where}."
        rule = f"the threshold for {self.target:.0%} precision{where}"
        if needs_review:
            return f"Needs review: confidence below {self.threshold:.3f}, {rule}."
        return f"Classified automatically: confidence at or above {self.threshold:.3f}, {rule}."

    def describe(self, where: bool = True) -> str:
        """The policy in one sentence (``where``: with the rows the threshold was measured on)."""
        if self.threshold is None:
            return "no review threshold: the model was trained without validation rows"
        measured = f" (measured on {self.measured_on:,} {self.split} rows)" if self.measured_on and where else ""
        if math.isinf(self.threshold):
            return f"every product needs review: no confidence threshold reached {self.target:.0%} precision{measured}"
        return f"review products below confidence {self.threshold:.3f}, for {self.target:.0%} precision{measured}"


def prediction_table(proba: np.ndarray, classes: Sequence[int], index: Sequence | pd.Index, *, top: int = 1,
                     policy: ReviewPolicy | None = None) -> pd.DataFrame:
    """Shop-ready predictions: ``prdtypecode``, ``name``, ``probability``, ``needs_review``, then
    ``code_k``, ``name_k``, ``probability_k`` for ranks 2..``top``. Rows follow ``index``."""
    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(classes)
    if not 1 <= top <= len(classes):
        raise ProdcatError(f"--top must be between 1 and {len(classes)} (the model's classes), got {top}")
    order = np.argsort(-proba, axis=1, kind="stable")[:, :top]
    best = np.take_along_axis(proba, order, axis=1)
    table = pd.DataFrame(index=pd.Index(index))
    names = {int(c): name_of(int(c)) for c in classes}
    for rank in range(top):
        codes = classes[order[:, rank]].astype(int)
        suffix = "" if rank == 0 else f"_{rank + 1}"
        table["prdtypecode" if rank == 0 else f"code{suffix}"] = codes
        table[f"name{suffix}"] = [names[c] for c in codes]
        table[f"probability{suffix}"] = np.round(best[:, rank], 4)
        if rank == 0:
            flags = (policy or ReviewPolicy(DEFAULT_REVIEW_TARGET, None)).needs_review(best[:, 0])
            table["needs_review"] = pd.array(flags if flags is not None else [pd.NA] * len(table), dtype="boolean")
    return table
