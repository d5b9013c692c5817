"""The time budget of a fit: one wall-clock deadline for the whole fit, re-planned between component fits.

A fit with ``time_limit=T`` starts its clock when training starts (before the inputs are read).
The plan (:mod:`prodcat.plan`) declares every component fit it will run (:class:`PlannedFit`,
keyed by stage: ``holdout/text``, ``fold2/neural_simple``, ``final/minilm``) and, before each
one, asks :meth:`FitBudget.allot` for its seconds. An allotment is re-planned over the time
*left*, not the time at the start:

- a :data:`SAFETY_SHARE` of ``T`` is kept back, and a :data:`FUSER_SHARE` of ``T`` for fitting
  the fuser when the plan has one;
- the final steps (the refits of a holdout plan's ``refit`` components, the K-fold refits on all
  the rows) are reserved first, at their estimated cost;
- the rest is split among the fits still to run in proportion to their estimated cost.

A fit's estimated cost is measured when the same component has already been fitted (its seconds
scaled by the rows it trains on: a refit on all the rows after a fit on 85% of them costs about
``seconds / 0.85``), else its nominal cost: its preset ``budget`` share of ``T``, scaled the same way.
Cheap components are fitted first (:func:`fitting_order`), so the expensive ones get allotments
planned from measured reality. A fit whose allotment is below :meth:`FitBudget.useful` (a quarter of
its estimated cost, and never under :data:`MIN_USEFUL_SECONDS`, or 5% of a time limit under 100 s) is skipped by the plan rather than
let overrun, except the first fit of a stage, which always runs (the fit must produce a model).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from prodcat.components import ComponentSpec

SAFETY_SHARE = 0.05
"""Share of the time limit never handed out (process start-up jitter, logging, model assembly)."""

FUSER_SHARE = 0.03
"""Share of the time limit kept for fitting the fuser of a multi-component plan."""

SCORE_SHARE = 0.10
"""Share of an allotment kept for scoring the held-out rows after the fit (out-of-fold and holdout fits)."""

MIN_USEFUL_SHARE = 0.25
"""A fit allotted less than this share of its estimated cost is skipped ("budget spent")."""

MIN_USEFUL_SECONDS = 5.0
MIN_USEFUL_LIMIT_SHARE = 0.05
"""... and so is a fit allotted fewer seconds than this (or than this share of a smaller time limit)."""

MIN_LIMIT = 1.0
"""The smallest time limit handed to a component that must run anyway (a positive number)."""


@dataclass(frozen=True)
class PlannedFit:
    """One component fit of a plan: its ``key`` (``stage/component``), the component's budget ``share``,
    the share of the training ``rows`` it trains on, and whether it is a ``final`` step (reserved first)."""

    key: str
    component: str
    share: float
    rows: float
    final: bool = False


def fitting_order(specs: Sequence[ComponentSpec]) -> list[ComponentSpec]:
    """``specs`` cheapest first (by their budget share; ties keep the preset's order)."""
    return sorted(specs, key=lambda spec: spec.budget)


class FitBudget:
    """A wall-clock deadline ``limit`` seconds after ``started`` (``clock()`` now by default); ``limit=None``
    never runs out and allots ``None`` (no limit) to every fit. ``fuser``: keep :data:`FUSER_SHARE` for it."""

    def __init__(self, limit: float | None, *, started: float | None = None, fuser: bool = False,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if limit is not None and limit <= 0:
            raise ValueError(f"time_limit must be positive seconds or None, got {limit!r}")
        self.limit = None if limit is None else float(limit)
        self.clock = clock
        self.started = clock() if started is None else started
        self.fuser = fuser
        self.pending: dict[str, PlannedFit] = {}
        self.measured: dict[str, tuple[float, float]] = {}  # component -> (seconds, rows) of its last fit

    # -- the plan ------------------------------------------------------------------------------
    def plan(self, fits: Iterable[PlannedFit]) -> None:
        """Declare fits still to run (in addition to those declared before)."""
        for fit in fits:
            self.pending[fit.key] = fit

    def done(self, key: str, seconds: float) -> None:
        """Record that fit ``key`` took ``seconds`` (its component's cost is measured from now on)."""
        fit = self.pending.pop(key, None)
        if fit is not None:
            self.measured[fit.component] = (max(0.0, float(seconds)), fit.rows)

    def skip(self, key: str) -> None:
        """Forget fit ``key`` (skipped, or not trainable on this data)."""
        self.pending.pop(key, None)

    # -- time ----------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.started

    def remaining(self) -> float:
        """Seconds to the deadline (infinite without a limit; negative once past it)."""
        return float("inf") if self.limit is None else self.limit - self.elapsed()

    def estimate(self, fit: PlannedFit) -> float:
        """Estimated seconds of ``fit``: measured on its component when it has been fitted, else nominal."""
        if fit.component in self.measured:
            seconds, rows = self.measured[fit.component]
            return seconds * fit.rows / max(rows, 1e-9)
        return fit.share * (self.limit or 0.0) * fit.rows

    def allot(self, key: str) -> float | None:
        """Seconds for the planned fit ``key`` (its fit and scoring), re-planned over the time left; None
        without a limit. Can be zero or negative when the time is spent."""
        if self.limit is None:
            return None
        fit = self.pending[key]
        left = self.remaining() - SAFETY_SHARE * self.limit - (FUSER_SHARE * self.limit if self.fuser else 0.0)
        others = [f for f in self.pending.values() if f.key != key]
        finals = [f for f in others if f.final]
        if fit.final:
            group = [fit, *finals]
        else:
            left -= sum(self.estimate(f) for f in finals)
            group = [fit, *(f for f in others if not f.final)]
        total = sum(self.estimate(f) for f in group)
        if total <= 0:
            return left / len(group)
        return left * self.estimate(fit) / total

    def useful(self, key: str, seconds: float | None) -> bool:
        """True when ``seconds`` is enough for fit ``key`` to be worth running (see the module docstring)."""
        if seconds is None:
            return True
        floor = min(MIN_USEFUL_SECONDS, MIN_USEFUL_LIMIT_SHARE * (self.limit or 0.0))
        return seconds >= max(floor, MIN_USEFUL_SHARE * self.estimate(self.pending[key]))

    def fit_limit(self, key: str, *, scores: bool, allotted: float | None = None) -> float | None:
        """The ``time_limit`` to hand the component of fit ``key``: its allotment (``allotted`` when
        the caller has it), less :data:`SCORE_SHARE` when it then ``scores`` held-out rows, never
        under :data:`MIN_LIMIT`."""
        seconds = self.allot(key) if allotted is None else allotted
        if seconds is None:
            return None
        return max(MIN_LIMIT, seconds * (1.0 - SCORE_SHARE if scores else 1.0))


class FixedLimits:
    """The budget of a fit task sent to another process (a Ray task): the per-component limits the
    plan computed before dispatch; nothing is re-planned or skipped there."""

    def __init__(self, limits: dict[str, float | None]) -> None:
        self.limits = dict(limits)

    def plan(self, fits: Iterable[PlannedFit]) -> None:
        pass

    def done(self, key: str, seconds: float) -> None:
        pass

    def skip(self, key: str) -> None:
        pass

    def allot(self, key: str) -> float | None:
        return self.limits.get(key.rsplit("/", 1)[-1])

    def useful(self, key: str, seconds: float | None) -> bool:
        return True

    def fit_limit(self, key: str, *, scores: bool, allotted: float | None = None) -> float | None:
        return self.allot(key)
