"""The fit plan: which components are trained on which rows, and what the fusers learn from.

- one component: fitted on all the rows;
- several, ``folds >= 2``: out-of-fold probabilities (stratified K folds, each fold's products
  scored by components trained on the other folds), fusers learnt from them, then every
  component refitted on all the rows;
- several, ``folds == 0``: components trained on a stratified ``1 - holdout`` share, fusers
  learnt from their predictions on the held-out share; then the components named in ``refit``
  are trained again on all the rows.

The fit's time limit is one deadline for the whole fit (:class:`~prodcat.budgets.FitBudget`):
the components are fitted cheapest first, each given a time limit re-planned over the time left,
and a fit whose share is too small to be useful is skipped ("skipped: budget spent"); the fitted
model keeps the preset's component order. The fits that do not depend on each other (the K fold
fits; the components of a holdout plan) run on an engine: one after the other in this process
(``local``), or as Ray tasks (``ray``, each task given the per-component limits planned before
dispatch), with the same results; the final refits on all the rows always run here. With a
:class:`~prodcat.checkpoints.CheckpointStore`, each finished component fit is saved under its stage
key (``holdout/text``, ``fold2/neural_simple``, ``final/minilm``) and a later fit with the same
store loads it instead of fitting it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from threadpoolctl import threadpool_limits

from prodcat.budgets import FitBudget, FixedLimits, PlannedFit, fitting_order
from prodcat.checkpoints import CheckpointStore
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
    """What every fit task of a plan reads (sent to Ray's object store once, not with each task);
    ``limits``: each component's time limit, planned before dispatch."""

    spec: PresetSpec
    classes: np.ndarray
    prior: np.ndarray
    seed: int
    limits: dict[str, float | None]
    inputs: Inputs
    y: np.ndarray


@dataclass(frozen=True)
class FitTask:
    """Fit the components named ``names`` on the rows ``train``, score the rows ``held_out``;
    ``stage`` names the fits in checkpoints and budgets (``holdout``, ``fold2``)."""

    names: tuple[str, ...]
    train: np.ndarray
    held_out: np.ndarray
    keep: bool = False  # send the fitted components back (holdout plans), not only their scores
    label: str = ""
    stage: str = "holdout"


@dataclass
class TaskResult:
    """What a :class:`FitTask` produced: held-out probabilities, fit seconds, log lines, components."""

    proba: dict[str, np.ndarray]
    fit_times: dict[str, float]
    messages: list[str]
    components: dict[str, Component]


def fit_task(task: FitTask, data: PlanData) -> TaskResult:
    """Run one :class:`FitTask` in another process (module level, so that Ray can send it to a worker
    by reference), with the limits planned before dispatch."""
    messages: list[str] = []
    plan = FitPlan(data.spec, data.classes, data.prior, seed=data.seed, time_limit=None, log=messages.append)
    plan.budget = FixedLimits(data.limits)
    with threadpool_limits(limits=1, user_api="blas"):  # as ProductClassifier.fit, also in a Ray worker
        fitted, proba = plan.fit_stage(task, data.inputs, data.y)
    return TaskResult(proba, plan.fit_times, messages, fitted if task.keep else {})


class FitPlan:
    """Fits a preset's components (and fusers) on inputs; ``time_limit`` is the whole fit's, counted
    from ``started`` (a ``time.perf_counter()`` value; default: now).

    ``engine``: where the independent fits run, ``"local"`` or ``"ray"`` (``address``: a running
    Ray cluster; none: a local Ray runtime, started for these fits and stopped after them).
    ``checkpoints``: where finished component fits are saved and found again (see the module docstring).
    """

    def __init__(self, spec: PresetSpec, classes: np.ndarray, prior: np.ndarray, *, seed: int,
                 time_limit: float | None, log: Callable[[str], None], engine: str = "local",
                 address: str | None = None, started: float | None = None,
                 checkpoints: CheckpointStore | None = None) -> None:
        self.spec = spec
        self.classes = classes
        self.prior = prior
        self.seed = seed
        self.time_limit = spec.time_limit if time_limit is None else time_limit
        self.log = log
        self.engine = engine
        self.address = address
        self.checkpoints = checkpoints
        self.fit_times: dict[str, float] = {}
        fused = spec.fusion is not None and len(spec.components) >= 2
        self.budget: FitBudget | FixedLimits = FitBudget(self.time_limit, started=started, fuser=fused)

    def fit(self, inputs: Inputs, y: np.ndarray) -> FittedParts:
        """Run the plan; components that this data cannot train, or that the time left cannot, are left out."""
        fusion = self.spec.fusion
        if fusion is None or len(self.spec.components) < 2:
            self._declare("final", self.spec.components, 1.0)
            fitted, _ = self.fit_stage(FitTask(tuple(c.name for c in self.spec.components), np.arange(len(y)),
                                               np.arange(0), keep=True, stage="final"), inputs, y)
            return FittedParts(fitted, fit_times=self.fit_times)
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

    def _declare(self, stage: str, specs: Sequence[ComponentSpec], rows: float, *, final: bool = False) -> None:
        self.budget.plan(PlannedFit(f"{stage}/{c.name}", c.name, c.budget, rows, final) for c in specs)

    def fit_stage(self, task: FitTask, inputs: Inputs, y: np.ndarray, *, refit: bool = False
                  ) -> tuple[dict[str, Component], dict[str, np.ndarray]]:
        """Fit the components of ``task`` cheapest first, each within the time the budget allots it
        (or load it from its checkpoint); (fitted components in the preset's order, their held-out
        probabilities). The first component of a stage always runs; a later one whose allotment is
        too small is skipped, as is a ``refit`` (its component stays as fitted before)."""
        specs = [c for c in self.spec.components if c.name in task.names]
        train_inputs, train_y = inputs.take(task.train), y[task.train]
        held_out = inputs.take(task.held_out) if len(task.held_out) else None
        fitted: dict[str, Component] = {}
        proba: dict[str, np.ndarray] = {}
        ran = 0  # components of this stage fitted or loaded so far
        for spec in fitting_order(specs):
            key = f"{task.stage}/{spec.name}"
            if self.checkpoints is not None and self.checkpoints.has(key):
                self._load_saved(spec, key, fitted, proba)
                self.checkpoints.drop_partial(key)  # left by an interruption between the save and the drop
                ran += 1
                continue
            allotted = self.budget.allot(key)
            if (refit or ran) and not self.budget.useful(key, allotted):
                self.log(f"  {spec.name}: skipped: budget spent ({max(allotted or 0.0, 0.0):.0f} s left for {key})"
                         + (", kept as fitted on the training share" if refit else ""))
                self.budget.skip(key)
                continue
            started = time.perf_counter()
            limit = self.budget.fit_limit(key, scores=held_out is not None, allotted=allotted)
            component = make_component(spec, seed=self.seed)
            if self.checkpoints is not None:  # a component that saves mid-fit (minilm) resumes from there
                component.checkpoint_dir = self.checkpoints.partial_dir(key)
            component = component.fit(train_inputs, train_y, time_limit=limit)
            seconds = time.perf_counter() - started
            if component is None:
                self.log(f"  {spec.name}: skipped (not enough products with a usable image)")
                self.budget.skip(key)
                continue
            fitted[spec.name] = component
            ran += 1
            self.fit_times[spec.name] = self.fit_times.get(spec.name, 0.0) + seconds
            if held_out is not None:
                proba[spec.name] = component.predict_proba(held_out, self.classes, self.prior)
            self.budget.done(key, seconds)
            resumed = getattr(component.model, "resumed_at_step_", 0)
            if resumed:
                self.log(f"  {spec.name}: {key} resumed from its mid-fit checkpoint at step {resumed}")
            if self.checkpoints is not None:
                self.checkpoints.save(key, model=component.model if task.keep else None, proba=proba.get(spec.name),
                                      seconds=seconds)
                self.checkpoints.drop_partial(key)  # the finished fit supersedes its mid-fit checkpoints
        order = [c.name for c in specs]
        return ({n: fitted[n] for n in order if n in fitted},
                {n: proba[n] for n in order if n in proba})

    def run(self, tasks: list[FitTask], inputs: Inputs, y: np.ndarray) -> list[TaskResult]:
        """The results of ``tasks``, in order, from the plan's engine; fit times and log lines gathered here."""
        if self.engine == "local":
            results = []
            for task in tasks:
                if task.label:
                    self.log(task.label)
                fitted, proba = self.fit_stage(task, inputs, y)
                results.append(TaskResult(proba, {}, [], fitted if task.keep else {}))
            return results
        from prodcat.engines import get_engine

        results: list[TaskResult | None] = [self._saved_task(task) for task in tasks]
        todo = [task for task, result in zip(tasks, results) if result is None]
        if todo:
            # every task gets the limits planned for the first one's fits (they run side by side)
            limits = {name: self.budget.fit_limit(f"{todo[0].stage}/{name}", scores=True) for name in todo[0].names}
            limits.update({name: self.budget.fit_limit(f"{task.stage}/{name}", scores=True)
                           for task in todo for name in task.names if name not in limits})
            data = PlanData(self.spec, self.classes, self.prior, self.seed, limits, inputs, y)
            self.log(f"  {len(todo)} independent fits as {self.engine} tasks")
            with get_engine(self.engine, address=self.address) as engine:
                done = iter(engine.map(fit_task, todo, data))
            for index, result in enumerate(results):
                if result is None:
                    results[index] = next(done)
                    self._gather(tasks[index], results[index])
        return [result for result in results if result is not None]

    def _saved_task(self, task: FitTask) -> TaskResult | None:
        """The result of ``task`` from its checkpoints, when every one of its fits was saved."""
        keys = [f"{task.stage}/{name}" for name in task.names]
        if self.checkpoints is None or not all(self.checkpoints.has(key) for key in keys):
            return None
        fitted: dict[str, Component] = {}
        proba: dict[str, np.ndarray] = {}
        for spec in [c for c in self.spec.components if c.name in task.names]:
            self._load_saved(spec, f"{task.stage}/{spec.name}", fitted, proba)
        return TaskResult(proba, {}, [], fitted if task.keep else {})

    def _load_saved(self, spec: ComponentSpec, key: str, fitted: dict[str, Component],
                    proba: dict[str, np.ndarray]) -> None:
        """Add the checkpoint of fit ``key`` to ``fitted`` (when it kept its estimator) and ``proba``."""
        saved = self.checkpoints.load(key)  # type: ignore[union-attr]
        self.budget.done(key, saved.seconds)
        self.fit_times[spec.name] = self.fit_times.get(spec.name, 0.0) + saved.seconds
        if saved.model is not None:
            fitted[spec.name] = make_component(spec, seed=self.seed, model=saved.model)
        if saved.proba is not None:
            proba[spec.name] = saved.proba
        self.log(f"  {spec.name}: {key} loaded from its checkpoint")

    def _gather(self, task: FitTask, result: TaskResult) -> None:
        for message in result.messages:
            self.log(message)
        for name, seconds in result.fit_times.items():
            self.fit_times[name] = self.fit_times.get(name, 0.0) + seconds
            key = f"{task.stage}/{name}"
            self.budget.done(key, seconds)
            if self.checkpoints is not None:
                component = result.components.get(name)
                self.checkpoints.save(key, model=None if component is None else component.model,
                                      proba=result.proba.get(name), seconds=seconds)

    def _out_of_fold(self, inputs: Inputs, y: np.ndarray, fusion: FusionSpec):
        names = tuple(c.name for c in self.spec.components)
        folds = fusion.folds
        for number in range(1, folds + 1):
            self._declare(f"fold{number}", self.spec.components, (folds - 1) / folds)
        self._declare("final", self.spec.components, 1.0, final=True)
        present: set[str] = set(names)

        def fit_predict(splits: list[tuple[np.ndarray, np.ndarray]]) -> list[dict[str, np.ndarray]]:
            tasks = [FitTask(names, train, held_out, label=f"  out-of-fold predictions: fold {number}/{len(splits)}",
                             stage=f"fold{number}") for number, (train, held_out) in enumerate(splits, 1)]
            probas = [result.proba for result in self.run(tasks, inputs, y)]
            for proba in probas:  # a component skipped in one fold has no out-of-fold scores
                present.intersection_update(proba)
            return probas

        held_out = out_of_fold(fit_predict, y, folds=folds, seed=self.seed)
        held_out = {n: p for n, p in held_out.items() if n in present}
        for name in set(names) - present:
            self.budget.skip(f"final/{name}")
        self.log("  refitting every component on all the training data")
        final = tuple(n for n in names if n in present)
        fitted, _ = self.fit_stage(FitTask(final, np.arange(len(y)), np.arange(0), keep=True, stage="final"), inputs, y)
        return fitted, held_out, y, inputs.has_image

    def _holdout(self, inputs: Inputs, y: np.ndarray, fusion: FusionSpec):
        train, held_out = validation_split(y, fusion.holdout, self.seed)
        if not len(held_out):
            raise DataError(f"too few products ({len(y)}) to hold {fusion.holdout:.0%} out for the fuser")
        share = len(train) / len(y)
        self._declare("holdout", self.spec.components, share)
        self._declare("final", [c for c in self.spec.components if c.name in fusion.refit], 1.0, final=True)
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
        for c in self.spec.components:
            if c.name in fusion.refit and c.name not in fitted:
                self.budget.skip(f"final/{c.name}")
        if refit:  # cheap components: the fuser learnt from their held-out scores; now use all the data
            self.log(f"  refitting {', '.join(c.name for c in refit)} on all the training data")
            refitted, _ = self.fit_stage(FitTask(tuple(c.name for c in refit), np.arange(len(y)), np.arange(0),
                                                 keep=True, stage="final"), inputs, y, refit=True)
            fitted.update(refitted)
        return fitted, held_out_proba, y[held_out], inputs.has_image[held_out]
