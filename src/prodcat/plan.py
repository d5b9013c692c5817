"""The fit plan: which components are trained on which rows, and what the fusers learn from.

- one component: fitted on all the rows;
- several, ``folds >= 2``: out-of-fold probabilities (stratified K folds, each fold's products
  scored by components trained on the other folds), fusers learnt from them, then every
  component refitted on all the rows;
- several, ``folds == 0``: components trained on a stratified ``1 - holdout`` share, fusers
  learnt from their predictions on the held-out share; then the components named in ``refit``
  are trained again on all the rows.

Each component gets its ``budget`` share of the fit's time limit. The fits that do not depend on
each other (the K fold fits; the components of a holdout plan) run on an engine: one after the
other in this process (``local``), or as Ray tasks (``ray``), with the same results; the final
refits on all the rows always run here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from threadpoolctl import threadpool_limits

from prodcat.components import Component, ComponentSpec, Inputs, make_component
from prodcat.data.split import stratified_folds, validation_split
from prodcat.errors import DataError
from prodcat.models.fusion import BlendFuser, fit_fusers
from prodcat.presets import FusionSpec, PresetSpec


@dataclass
class FittedParts:
    """What a fit plan produced."""

    components: dict[str, Component]
    stack: Any = None  # the chosen fuser (see fusion.choose_fuser), guarded
    blend: BlendFuser | None = None
    fit_times: dict[str, float] = field(default_factory=dict)


def out_of_fold(
    fit_predict: Callable[[list[tuple[np.ndarray, np.ndarray]]], list[dict[str, np.ndarray]]],
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 42,
) -> dict[str, np.ndarray]:
    """Out-of-fold probabilities of each component.

    ``fit_predict(splits)`` gets every fold's ``(train_positions, held_out_positions)`` and returns,
    for each, ``{component: probabilities of the held-out products}`` (columns = all classes) of
    fresh components fitted on the train positions; folds come from
    :func:`~prodcat.data.split.stratified_folds`.
    """
    splits = stratified_folds(y, folds, seed)
    out: dict[str, np.ndarray] = {}
    for (_, held_out), probas in zip(splits, fit_predict(splits), strict=True):
        for name, proba in probas.items():
            out.setdefault(name, np.zeros((len(y), proba.shape[1])))[held_out] = proba
    return out


@dataclass(frozen=True)
class PlanData:
    """What every fit task of a plan reads (sent to Ray's object store once, not with each task)."""

    spec: PresetSpec
    classes: np.ndarray
    prior: np.ndarray
    seed: int
    time_limit: float | None
    inputs: Inputs
    y: np.ndarray


@dataclass(frozen=True)
class FitTask:
    """Fit the components named ``names`` on the rows ``train``, score the rows ``held_out``."""

    names: tuple[str, ...]
    train: np.ndarray
    held_out: np.ndarray
    keep: bool = False  # send the fitted components back (holdout plans), not only their scores
    label: str = ""


@dataclass
class TaskResult:
    """What a :class:`FitTask` produced: held-out probabilities, fit seconds, log lines, components."""

    proba: dict[str, np.ndarray]
    fit_times: dict[str, float]
    messages: list[str]
    components: dict[str, Component]


def fit_task(task: FitTask, data: PlanData) -> TaskResult:
    """Run one :class:`FitTask` (module level, so that Ray can send it to a worker by reference)."""
    messages: list[str] = []
    plan = FitPlan(data.spec, data.classes, data.prior, seed=data.seed, time_limit=data.time_limit,
                   log=messages.append)
    specs = [c for c in data.spec.components if c.name in task.names]
    with threadpool_limits(limits=1, user_api="blas"):  # as ProductClassifier.fit, also in a Ray worker
        fitted = plan.fit_components(data.inputs.take(task.train), data.y[task.train], specs)
        proba = plan.score(fitted, data.inputs.take(task.held_out))
    return TaskResult(proba, plan.fit_times, messages, fitted if task.keep else {})


class FitPlan:
    """Fits a preset's components (and fusers) on inputs; ``time_limit`` is the whole fit's.

    ``engine``: where the independent fits run, ``"local"`` or ``"ray"`` (``address``: a running
    Ray cluster; none: a local Ray runtime, started for these fits and stopped after them).
    """

    def __init__(self, spec: PresetSpec, classes: np.ndarray, prior: np.ndarray, *, seed: int,
                 time_limit: float | None, log: Callable[[str], None], engine: str = "local",
                 address: str | None = None) -> None:
        self.spec = spec
        self.classes = classes
        self.prior = prior
        self.seed = seed
        self.time_limit = spec.time_limit if time_limit is None else time_limit
        self.log = log
        self.engine = engine
        self.address = address
        self.fit_times: dict[str, float] = {}

    def fit(self, inputs: Inputs, y: np.ndarray) -> FittedParts:
        """Run the plan; components that this data cannot train are left out."""
        fusion = self.spec.fusion
        if fusion is None or len(self.spec.components) < 2:
            return FittedParts(self.fit_components(inputs, y, self.spec.components), fit_times=self.fit_times)
        if fusion.out_of_fold:
            fitted, held_out, held_out_y, held_out_image = self._out_of_fold(inputs, y, fusion)
        else:
            fitted, held_out, held_out_y, held_out_image = self._holdout(inputs, y, fusion)
        present = {n: held_out[n] for n in fitted if n in held_out}
        image_only = [n for n in present if fitted[n].reads == "image"]
        fuser, blend = fit_fusers(present, held_out_y, held_out_image, self.classes, self.prior,
                                  image_only=image_only, seed=self.seed, method=fusion.method)
        self.log(f"  fuser: {fuser.describe()['kind']}")
        return FittedParts(fitted, fuser, blend, self.fit_times)

    def fit_components(self, inputs: Inputs, y: np.ndarray, specs: Sequence[ComponentSpec]) -> dict[str, Component]:
        """Fresh components of ``specs`` fitted on ``inputs``, timed."""
        fitted: dict[str, Component] = {}
        for spec in specs:
            started = time.perf_counter()
            budget = None if self.time_limit is None else float(self.time_limit) * spec.budget
            component = make_component(spec, seed=self.seed).fit(inputs, y, time_limit=budget)
            if component is None:
                self.log(f"  {spec.name}: skipped (not enough products with a usable image)")
                continue
            fitted[spec.name] = component
            self.fit_times[spec.name] = self.fit_times.get(spec.name, 0.0) + time.perf_counter() - started
        return fitted

    def score(self, components: dict[str, Component], inputs: Inputs) -> dict[str, np.ndarray]:
        """Each component's probabilities of ``inputs`` on the plan's classes."""
        return {n: c.predict_proba(inputs, self.classes, self.prior) for n, c in components.items()}

    def run(self, tasks: list[FitTask], inputs: Inputs, y: np.ndarray) -> list[TaskResult]:
        """The results of ``tasks``, in order, from the plan's engine; fit times and log lines gathered here."""
        data = PlanData(self.spec, self.classes, self.prior, self.seed, self.time_limit, inputs, y)
        if self.engine == "local":
            results = []
            for task in tasks:
                if task.label:
                    self.log(task.label)
                results.append(fit_task(task, data))
                self._gather(results[-1])
            return results
        from prodcat.engines import get_engine

        self.log(f"  {len(tasks)} independent fits as {self.engine} tasks")
        with get_engine(self.engine, address=self.address) as engine:
            results = engine.map(fit_task, tasks, data)
        for result in results:
            self._gather(result)
        return results

    def _gather(self, result: TaskResult) -> None:
        for message in result.messages:
            self.log(message)
        for name, seconds in result.fit_times.items():
            self.fit_times[name] = self.fit_times.get(name, 0.0) + seconds

    def _out_of_fold(self, inputs: Inputs, y: np.ndarray, fusion: FusionSpec):
        names = tuple(c.name for c in self.spec.components)

        def fit_predict(splits: list[tuple[np.ndarray, np.ndarray]]) -> list[dict[str, np.ndarray]]:
            tasks = [FitTask(names, train, held_out, label=f"  out-of-fold predictions: fold {number}/{len(splits)}")
                     for number, (train, held_out) in enumerate(splits, 1)]
            return [result.proba for result in self.run(tasks, inputs, y)]

        held_out = out_of_fold(fit_predict, y, folds=fusion.folds, seed=self.seed)
        self.log("  refitting every component on all the training data")
        return self.fit_components(inputs, y, self.spec.components), held_out, y, inputs.has_image

    def _holdout(self, inputs: Inputs, y: np.ndarray, fusion: FusionSpec):
        train, held_out = validation_split(y, fusion.holdout, self.seed)
        if not len(held_out):
            raise DataError(f"too few products ({len(y)}) to hold {fusion.holdout:.0%} out for the fuser")
        if self.engine == "local":
            tasks = [FitTask(tuple(c.name for c in self.spec.components), train, held_out, keep=True)]
        else:  # the components do not depend on each other: one task each
            tasks = [FitTask((c.name,), train, held_out, keep=True) for c in self.spec.components]
        fitted: dict[str, Component] = {}
        held_out_proba: dict[str, np.ndarray] = {}
        for result in self.run(tasks, inputs, y):
            fitted.update(result.components)
            held_out_proba.update(result.proba)
        fitted = {c.name: fitted[c.name] for c in self.spec.components if c.name in fitted}  # the preset's order
        held_out_proba = {name: held_out_proba[name] for name in fitted}
        refit = [c for c in self.spec.components if c.name in fusion.refit and c.name in fitted]
        if refit:  # cheap components: the fuser learnt from their held-out scores; now use all the data
            self.log(f"  refitting {', '.join(c.name for c in refit)} on all the training data")
            fitted.update(self.fit_components(inputs, y, refit))
        return fitted, held_out_proba, y[held_out], inputs.has_image[held_out]
