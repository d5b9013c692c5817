"""Budgets kept (one deadline for the whole fit, re-planned between component fits, cheap ones first)
and resumable fits (stage checkpoints in the run folder, ``prodcat train --resume RUN``)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from prodcat.budgets import (FUSER_SHARE, MIN_USEFUL_SECONDS, SAFETY_SHARE, FitBudget, PlannedFit,
                             fitting_order)
from prodcat.components import Component, ComponentSpec, Inputs, aligned, register_component
from prodcat.components.text import TfidfTextComponent
from prodcat.data.sample import build_demo_table
from prodcat.predictor import ProductClassifier


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- re-planning, on a fake clock ------------------------------------------------------------------


def _best_like(budget: FitBudget) -> None:
    """A holdout plan like ``best``'s (85% train share; text and neural refitted)."""
    shares = {"text": 0.1, "neural": 0.1, "minilm": 0.55, "use": 0.15}
    budget.plan(PlannedFit(f"holdout/{n}", n, s, 0.85) for n, s in shares.items())
    budget.plan(PlannedFit(f"final/{n}", n, shares[n], 1.0, final=True) for n in ("text", "neural"))


def test_allotments_are_replanned_over_the_time_left() -> None:
    clock = FakeClock()
    budget = FitBudget(1000, clock=clock, fuser=True)
    _best_like(budget)
    usable = 1000 * (1 - SAFETY_SHARE - FUSER_SHARE)
    reserve = 0.1 * 1000 * 2  # the two refits, nominal
    first = budget.allot("holdout/text")
    assert first == pytest.approx((usable - reserve) * 0.1 / 0.9)
    # text took far less than its share: measured, its refit is reserved at its measured cost
    clock.now += 8.5
    budget.done("holdout/text", 8.5)
    assert budget.estimate(budget.pending["final/text"]) == pytest.approx(10.0)
    neural = budget.allot("holdout/neural")
    assert neural > first  # the time text did not use goes to the others
    clock.now += 85.0
    budget.done("holdout/neural", 85.0)
    use = budget.allot("holdout/use")
    minilm = budget.allot("holdout/minilm")
    left = 1000 - 93.5 - 1000 * (SAFETY_SHARE + FUSER_SHARE) - (10.0 + 100.0)
    assert use + minilm == pytest.approx(left)
    assert minilm / use == pytest.approx(0.55 / 0.15)
    # use overran: minilm gets what is left, the refits' reserve untouched
    clock.now += use + 120
    budget.done("holdout/use", use + 120)
    assert budget.allot("holdout/minilm") == pytest.approx(minilm - 120)
    clock.now += minilm - 120
    budget.done("holdout/minilm", minilm - 120)
    assert budget.allot("final/text") + budget.allot("final/neural") == pytest.approx(110.0)


def test_a_fit_left_too_little_is_not_useful_and_no_limit_allots_none() -> None:
    clock = FakeClock()
    budget = FitBudget(100, clock=clock)
    budget.plan([PlannedFit("holdout/a", "a", 0.1, 1.0), PlannedFit("holdout/b", "b", 0.9, 1.0)])
    assert budget.useful("holdout/b", budget.allot("holdout/b"))
    clock.now += 92  # a overran
    budget.done("holdout/a", 92)
    seconds = budget.allot("holdout/b")
    assert seconds == pytest.approx(100 * (1 - SAFETY_SHARE) - 92)
    assert seconds < MIN_USEFUL_SECONDS and not budget.useful("holdout/b", seconds)
    assert budget.fit_limit("holdout/b", scores=True) >= 1.0  # a component that must run gets a positive limit
    unlimited = FitBudget(None, clock=clock)
    unlimited.plan([PlannedFit("final/a", "a", 0.5, 1.0)])
    assert unlimited.allot("final/a") is None and unlimited.useful("final/a", None)
    assert unlimited.remaining() == float("inf")


def test_cheap_components_are_fitted_first_in_a_stable_order() -> None:
    specs = [ComponentSpec("big", "text", 0.55), ComponentSpec("a", "text", 0.1), ComponentSpec("mid", "text", 0.15),
             ComponentSpec("b", "text", 0.1)]
    assert [s.name for s in fitting_order(specs)] == ["a", "b", "mid", "big"]


# --- a fit under a time limit ends in time ------------------------------------------------------


@dataclass(frozen=True)
class SleepySpec(ComponentSpec):
    kind: str = "sleepy"
    seconds: float = 0.0  # > 0: ignores its limit and takes this long; 0: uses its whole limit (as a deep model)


FITTED: list[tuple[str, float | None]] = []


@register_component("sleepy")
class SleepyComponent(Component):
    """A text component that takes its time (sleeps), then predicts the training prior."""

    spec_class = SleepySpec

    def fit(self, inputs: Inputs, y: np.ndarray, *, time_limit: float | None = None) -> "SleepyComponent":
        FITTED.append((self.spec.name, time_limit))
        time.sleep(self.spec.seconds or min(time_limit if time_limit is not None else 1.0, 30.0))
        classes, counts = np.unique(y, return_counts=True)
        self.model = {"classes": classes, "prior": counts / counts.sum()}
        return self

    def predict_proba(self, inputs: Inputs, classes: np.ndarray, prior: np.ndarray) -> np.ndarray:
        row = aligned(self.model["prior"][None, :], self.model["classes"], classes)
        return np.repeat(row, len(inputs.products), axis=0)


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    table = build_demo_table(n_train=300, n_test=60, seed=5)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    return train[["designation", "description"]], train["prdtypecode"].to_numpy(), test[["designation", "description"]]


def test_a_fit_ends_within_its_time_limit(split, capsys) -> None:
    X, y, _ = split
    preset = {"name": "slow", "components": [
        {"name": "deep", "kind": "sleepy", "budget": 0.6},  # uses whatever it is given
        {"name": "text", "kind": "text", "model": "linear", "budget": 0.1},
        {"name": "overrun", "kind": "sleepy", "budget": 0.1, "seconds": 1.5},  # ignores its limit
        {"name": "late", "kind": "sleepy", "budget": 0.3},
    ], "fusion": {"method": "blend", "folds": 0, "holdout": 0.2, "refit": ["text"]}}
    FITTED.clear()
    limit = 12.0  # room for the real text fit and its refit on a loaded machine
    started = time.perf_counter()
    model = ProductClassifier(preset, time_limit=limit).fit(X, y)
    seconds = time.perf_counter() - started
    assert seconds <= limit * 1.1, seconds
    assert [name for name, _ in FITTED] == ["overrun", "late", "deep"]  # cheap first, then by share
    assert model.component_names == ["deep", "text", "overrun", "late"]  # the preset's order
    limits = dict(FITTED)
    assert limits["deep"] > limits["late"]  # re-planned in proportion to their shares
    assert model.fit_seconds_ <= limit * 1.1


def test_a_component_left_no_time_is_skipped_but_the_first_always_runs(split, capsys) -> None:
    X, y, _ = split
    preset = {"name": "overrun", "components": [
        {"name": "first", "kind": "sleepy", "budget": 0.1, "seconds": 2.5},
        {"name": "second", "kind": "sleepy", "budget": 0.9},
    ], "fusion": {"method": "blend", "folds": 0, "holdout": 0.2, "refit": []}}
    FITTED.clear()
    model = ProductClassifier(preset, time_limit=2.0).fit(X, y)
    assert model.component_names == ["first"]
    assert [name for name, _ in FITTED] == ["first"]
    assert "second: skipped: budget spent" in capsys.readouterr().err


# --- resumable fits ---------------------------------------------------------------------------------

TWO_TEXT = {"name": "two_text", "components": [{"name": "text", "kind": "text", "model": "linear"},
                                               {"name": "logreg", "kind": "text", "model": "logistic_regression"}],
            "fusion": {"method": "auto", "folds": 0, "holdout": 0.2, "refit": ["text"]}}
TWO_TEXT_FOLDS = {**TWO_TEXT, "name": "two_text_folds", "fusion": {"method": "auto", "folds": 3}}


class Interrupted(Exception):
    pass


@pytest.fixture
def fits(monkeypatch):
    """Counts TF-IDF component fits by name; ``fits.fail`` names one whose next fit raises ``fits.error``."""
    original = TfidfTextComponent.fit

    class Fits:
        calls: list[str] = []
        fail: str | None = None
        error: type[BaseException] = Interrupted

        def fit(self_, component, inputs, y, *, time_limit=None):  # noqa: N805
            if component.spec.name == Fits.fail:
                Fits.fail = None
                raise Fits.error("stopped")
            Fits.calls.append(component.spec.name)
            return original(component, inputs, y, time_limit=time_limit)

    counter = Fits()
    Fits.calls = []
    monkeypatch.setattr(TfidfTextComponent, "fit", lambda component, inputs, y, *, time_limit=None:
                        counter.fit(component, inputs, y, time_limit=time_limit))
    return Fits


@pytest.mark.parametrize("preset, first_key", [(TWO_TEXT, "holdout/text"), (TWO_TEXT_FOLDS, "fold1/text")])
def test_an_interrupted_fit_resumes_from_its_checkpoints(preset, first_key, split, fits, tmp_path: Path, capsys) -> None:
    X, y, test = split
    reference = ProductClassifier(preset, progress=False).fit(X, y)
    uninterrupted = list(fits.calls)
    fits.calls.clear()
    fits.fail = "logreg"  # the second fit: of the holdout, or of fold 1
    folder = tmp_path / "checkpoints"
    with pytest.raises(Interrupted):
        ProductClassifier(preset).fit(X, y, checkpoints=folder)
    assert sorted(p.name for p in folder.glob("*.npz")) == [first_key.replace("/", "%2F") + ".npz"]
    before = list(fits.calls)
    fits.calls.clear()
    model = ProductClassifier(preset).fit(X, y, checkpoints=folder)
    assert f"{first_key} loaded from its checkpoint" in capsys.readouterr().err
    assert len(before) + len(fits.calls) == len(uninterrupted)  # the saved stage was not fitted again
    assert model.component_names == reference.component_names
    np.testing.assert_array_equal(model.predict_proba(test), reference.predict_proba(test))
    # another recipe (or other data) never reads these checkpoints
    with pytest.raises(Exception, match="belong to another fit"):
        ProductClassifier(preset, seed=7).fit(X, y, checkpoints=folder)


def _cli_data(tmp_path: Path) -> list[str]:
    from prodcat.data.sample import make_demo_dataset

    demo = make_demo_dataset(tmp_path / "demo", n_train=300, n_test=10, seed=4, with_images=False, progress=False)
    return ["--x", str(demo.x_train), "--y", str(demo.y_train)]


def test_train_resume_on_the_command_line(split, fits, tmp_path: Path, monkeypatch, capsys) -> None:
    from prodcat.cli import main
    from prodcat.presets import PRESETS

    monkeypatch.setitem(PRESETS, "two_text", {k: v for k, v in TWO_TEXT.items() if k != "name"})
    data = _cli_data(tmp_path)
    runs = tmp_path / "runs"
    train = ["train", *data, "--preset", "two_text", "--runs-dir", str(runs)]
    fits.fail, fits.error = "logreg", KeyboardInterrupt
    assert main(train) == 130
    [run] = list(runs.iterdir())
    config = json.loads((run / "config.json").read_text())
    assert config["status"] == "running" and config["options"]["preset"] == "two_text"
    assert (run / "checkpoints" / "fit" / "holdout%2Ftext.npz").is_file()
    capsys.readouterr()
    fits.calls.clear()
    assert main(["train", *data, "--runs-dir", str(runs), "--resume", run.name]) == 0
    out, err = capsys.readouterr()
    assert "holdout/text loaded from its checkpoint" in err and f"Run folder: {run}" in out
    # the first fit: logreg, then text's refit (its holdout fit is loaded); the refit on all rows: all three
    assert fits.calls == ["logreg", "text", "text", "logreg", "text"]
    assert json.loads((run / "config.json").read_text())["status"] == "complete"
    assert (run / "model" / "prodcat.json").is_file() and not (run / "checkpoints").exists()
    assert list(runs.iterdir()) == [run]
    # nothing left to resume
    assert main(["train", *data, "--runs-dir", str(runs), "--resume", str(run)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_bad_resume_is_one_error_line(split, fits, tmp_path: Path, monkeypatch, capsys) -> None:
    from prodcat.cli import main
    from prodcat.presets import PRESETS

    monkeypatch.setitem(PRESETS, "two_text", {k: v for k, v in TWO_TEXT.items() if k != "name"})
    data = _cli_data(tmp_path)
    runs = tmp_path / "runs"
    fits.fail, fits.error = "logreg", KeyboardInterrupt
    assert main(["train", *data, "--preset", "two_text", "--runs-dir", str(runs)]) == 130
    [run] = list(runs.iterdir())
    other = pd.read_csv(data[3], index_col=0)
    other.iloc[0, 0] = 10 if other.iloc[0, 0] != 10 else 40
    other.to_csv(tmp_path / "other_y.csv")
    capsys.readouterr()
    cases = {
        "no such run folder": ["train", *data, "--runs-dir", str(runs), "--resume", "nope"],
        "the data differ": ["train", data[0], data[1], "--y", str(tmp_path / "other_y.csv"), "--runs-dir", str(runs),
                            "--resume", str(run)],
        "not 'fast'": ["train", *data, "--runs-dir", str(runs), "--resume", str(run), "--preset", "fast"],
        "not a run folder that can be resumed": ["train", *data, "--runs-dir", str(runs), "--resume",
                                                 str(tmp_path / "demo")],
    }
    for message, argv in cases.items():
        assert main(argv) == 2, message
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert json.loads((run / "config.json").read_text())["status"] == "running"  # untouched


def test_engine_tasks_save_and_reuse_checkpoints(split, tmp_path: Path, monkeypatch, capsys) -> None:
    """On the engine path (Ray's, here on the local engine) the plan saves each task's fits when they come
    back and does not dispatch a task whose fits are all saved; every task gets the limits planned first."""
    import prodcat.engines
    from prodcat.engines import LocalEngine

    dispatched: list[list[Any]] = []

    class TaskEngine(LocalEngine):
        name = "ray"

        def map(self, fn, tasks, shared=None):
            tasks = list(tasks)
            dispatched.append([shared.limits, len(tasks)])
            return super().map(fn, tasks, shared)

    monkeypatch.setattr(prodcat.engines, "check_engine", lambda name, address=None: None)
    monkeypatch.setattr(prodcat.engines, "get_engine", lambda name, address=None: TaskEngine())
    X, y, test = split
    reference = ProductClassifier(TWO_TEXT, progress=False).fit(X, y)
    folder = tmp_path / "checkpoints"
    first = ProductClassifier(TWO_TEXT, engine="ray", time_limit=50).fit(X, y, checkpoints=folder)
    [(limits, n_tasks)] = dispatched
    assert n_tasks == 2 and set(limits) == {"text", "logreg"} and all(0 < s < 50 for s in limits.values())
    again = ProductClassifier(TWO_TEXT, engine="ray").fit(X, y, checkpoints=folder)
    assert len(dispatched) == 1  # nothing dispatched: both holdout fits were saved
    assert "logreg: holdout/logreg loaded from its checkpoint" in capsys.readouterr().err
    for model in (first, again):
        np.testing.assert_array_equal(model.predict_proba(test), reference.predict_proba(test))
