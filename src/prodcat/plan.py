"""The fit plan: which components are trained on which rows, and what the fusers learn from.

- one component: fitted on all the rows;
- several, ``folds >= 2``: out-of-fold probabilities (stratified K folds, each fold's products
  scored by components trained on the other folds), fusers learnt from them, then every
  component refitted on all the rows;
- several, ``folds == 0``: components trained on a stratified ``1 - holdout`` share, fusers
  learnt from their predictions on the held-out share; then the components named in ``refit``
  are trained again on all the rows.

Each component gets its ``budget`` share of the fit's time limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

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
    fit_predict: Callable[[np.ndarray, np.ndarray], dict[str, np.ndarray]],
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 42,
    progress: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Out-of-fold probabilities of each component.

    ``fit_predict(train_positions, held_out_positions)`` fits fresh components on the first set
    and returns ``{component: probabilities of the held-out products}`` (columns = all classes);
    folds come from :func:`~prodcat.data.split.stratified_folds`.
    """
    splits = stratified_folds(y, folds, seed)
    out: dict[str, np.ndarray] = {}
    for number, (train, held_out) in enumerate(splits, 1):
        if progress:
            progress(f"  out-of-fold predictions: fold {number}/{len(splits)}")
        for name, proba in fit_predict(train, held_out).items():
            if name not in out:
                out[name] = np.zeros((len(y), proba.shape[1]))
            out[name][held_out] = proba
    return out


class FitPlan:
    """Fits a preset's components (and fusers) on inputs; ``time_limit`` is the whole fit's."""

    def __init__(self, spec: PresetSpec, classes: np.ndarray, prior: np.ndarray, *, seed: int,
                 time_limit: float | None, log: Callable[[str], None]) -> None:
        self.spec = spec
        self.classes = classes
        self.prior = prior
        self.seed = seed
        self.time_limit = spec.time_limit if time_limit is None else time_limit
        self.log = log
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

    def _out_of_fold(self, inputs: Inputs, y: np.ndarray, fusion: FusionSpec):
        def fit_predict(train: np.ndarray, held_out: np.ndarray) -> dict[str, np.ndarray]:
            fitted = self.fit_components(inputs.take(train), y[train], self.spec.components)
            return self.score(fitted, inputs.take(held_out))

        held_out = out_of_fold(fit_predict, y, folds=fusion.folds, seed=self.seed, progress=self.log)
        self.log("  refitting every component on all the training data")
        return self.fit_components(inputs, y, self.spec.components), held_out, y, inputs.has_image

    def _holdout(self, inputs: Inputs, y: np.ndarray, fusion: FusionSpec):
        train, held_out = validation_split(y, fusion.holdout, self.seed)
        if not len(held_out):
            raise DataError(f"too few products ({len(y)}) to hold {fusion.holdout:.0%} out for the fuser")
        fitted = self.fit_components(inputs.take(train), y[train], self.spec.components)
        held_out_proba = self.score(fitted, inputs.take(held_out))
        refit = [c for c in self.spec.components if c.name in fusion.refit and c.name in fitted]
        if refit:  # cheap components: the fuser learnt from their held-out scores; now use all the data
            self.log(f"  refitting {', '.join(c.name for c in refit)} on all the training data")
            fitted.update(self.fit_components(inputs, y, refit))
        return fitted, held_out_proba, y[held_out], inputs.has_image[held_out]
