"""minilm's mid-fit checkpoints: written every ``checkpoint_interval`` seconds of training, resumed
by a later fit with the same data, seed and parameters (to the same weights), ignored (one log line)
when damaged or another fit's; the fit plan hands each fit a partial folder and drops it once saved."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from _state import state_round_trip

from prodcat.data.sample import build_demo_table

torch = pytest.importorskip("torch")
from prodcat.models.midfit import MIDFIT_FILE, load_midfit, save_midfit  # noqa: E402
from prodcat.models.transformer import TransformerTextClassifier, _StepTimer  # noqa: E402

# tiny: 86 training rows in batches of 16 (6 steps an epoch), one trainable encoder layer
SMALL = dict(epochs=2, max_length=16, batch_size=16, frozen_layers=5, evaluations=2, n_threads=2, device="cpu")
TINY = {**SMALL, "epochs": 1}


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def data():
    table = build_demo_table(n_train=300, n_test=60, seed=0)
    train = table[table["split"] == "train"].reset_index(drop=True).head(96)
    test = table[table["split"] == "test"].reset_index(drop=True).head(24)
    return train, train["prdtypecode"].to_numpy(), test


@pytest.fixture(scope="module")
def reference(data):
    """An uninterrupted fit, without checkpoints."""
    train, y, test = data
    model = TransformerTextClassifier(**SMALL).fit(train, y)
    return model, model.predict_proba(test)


@pytest.fixture
def steps(monkeypatch):
    """Counts training steps; ``steps.stop_after = k`` makes step k + 1 raise :class:`Interrupted`
    (after its update, before its checkpoint: the last checkpoint is the one after step k)."""
    original = _StepTimer.record

    class Steps:
        done = 0
        stop_after: int | None = None

    def record(timer, seconds):
        if Steps.stop_after is not None and Steps.done >= Steps.stop_after:
            Steps.stop_after = None
            raise Interrupted
        Steps.done += 1
        original(timer, seconds)

    monkeypatch.setattr(_StepTimer, "record", record)
    return Steps


@pytest.fixture
def every_step(monkeypatch):
    monkeypatch.setattr(TransformerTextClassifier, "checkpoint_interval", 0.0)


@pytest.fixture
def no_code(monkeypatch):
    """Fail the test if anything unpickles or ``torch.load``s."""
    def refuse(*args, **kwargs):
        raise AssertionError("a mid-fit checkpoint was read with pickle / torch.load")

    for target, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(target, name, refuse)


def test_a_checkpoint_is_written_after_each_step_with_a_zero_interval(data, steps, every_step, no_code, tmp_path):
    train, y, _ = data
    model = TransformerTextClassifier(**SMALL).set_checkpoint_dir(tmp_path)
    steps.stop_after = 3
    with pytest.raises(Interrupted):
        model.fit(train, y)
    tensors, document = load_midfit(tmp_path)
    assert (document["steps"], document["epoch"], document["position"]) == (3, 0, 3)
    assert {"train", "rng/torch", "weights/output.weight", "weights/encoder.encoder.layer.5.output.dense.weight",
            "adam/0/exp_avg", "adam/0/exp_avg_sq"} <= set(tensors)
    assert {float(s["step"]) for s in document["optimizer"]["scalars"].values()} == {3.0}
    assert document["scheduler"]["last_epoch"] == 3 and document["elapsed"] > 0
    assert document["rng_epoch"]["bit_generator"] == "PCG64"
    # the folder is an instruction for the next fit, never a parameter or saved state
    assert "_midfit_dir" in model.__dict__
    assert not any("midfit" in k or "checkpoint" in k for k in model.get_params())
    assert "_midfit_dir" not in pickle.dumps(model.__getstate__(), protocol=5).decode("latin-1")


def test_no_checkpoint_before_the_interval(data, steps, tmp_path):
    train, y, _ = data
    steps.stop_after = 2
    with pytest.raises(Interrupted):
        TransformerTextClassifier(**SMALL).set_checkpoint_dir(tmp_path).fit(train, y)  # every 180 s
    assert not (tmp_path / MIDFIT_FILE).exists()


def test_an_interrupted_fit_continues_from_its_last_step(data, reference, steps, every_step, no_code, tmp_path):
    train, y, test = data
    fresh, expected = reference
    steps.stop_after = 4
    with pytest.raises(Interrupted):
        TransformerTextClassifier(**SMALL).set_checkpoint_dir(tmp_path).fit(train, y)
    assert load_midfit(tmp_path)[1]["steps"] == 4
    steps.done = 0
    model = TransformerTextClassifier(**SMALL).set_checkpoint_dir(tmp_path).fit(train, y)
    assert model.resumed_at_step_ == 4 and fresh.resumed_at_step_ == 0
    assert steps.done == fresh.steps_ - 4 and model.steps_ == fresh.steps_ >= 8
    # same seed, CPU: the resumed run is the uninterrupted one (same batches, dropout, AdamW state)
    assert model.history_ == fresh.history_
    np.testing.assert_allclose(model.predict_proba(test), expected, rtol=1e-5, atol=1e-6)
    safe = state_round_trip(model, tmp_path / "state.npz")  # bundles never hold the folder
    assert "_midfit_dir" not in safe.__dict__
    np.testing.assert_allclose(safe.predict_proba(test), expected, rtol=1e-5, atol=1e-6)


class _Marker:
    ran: list[str] = []

    def __reduce__(self):
        return (_Marker.ran.append, ("pickle ran",))


@pytest.fixture(scope="module")
def saved(data, tmp_path_factory):
    """The mid-fit checkpoint (a copy of its bytes) of a small fit (seed 1) stopped after its first step."""
    train, y, _ = data
    folder = tmp_path_factory.mktemp("saved")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransformerTextClassifier, "checkpoint_interval", 0.0)
        original = _StepTimer.record

        def record(timer, seconds):
            if timer.durations:
                raise Interrupted
            original(timer, seconds)

        patch.setattr(_StepTimer, "record", record)
        with pytest.raises(Interrupted):
            TransformerTextClassifier(**TINY, seed=1).set_checkpoint_dir(folder).fit(train.head(48), y[:48])
    return (folder / MIDFIT_FILE).read_bytes()


def _damaged(folder: Path, saved: bytes, how: str) -> None:
    path = folder / MIDFIT_FILE
    path.write_bytes(saved)
    if how == "pickle":  # what loading would run, were it unpickled
        import pickle as real_pickle  # the no_code fixture patches load/loads, not dumps

        path.write_bytes(real_pickle.dumps(_Marker()))
    elif how == "truncated":
        path.write_bytes(saved[:-1000])
    elif how == "wrong shape":
        tensors, document = load_midfit(folder)
        tensors["weights/output.weight"] = np.zeros((3, 3), dtype=np.float32)
        save_midfit(folder, tensors, {k: v for k, v in document.items() if k != "format"})


@pytest.mark.parametrize("how, message", [
    ("pickle", "unreadable"), ("truncated", "unreadable"), ("wrong shape", "weights/output.weight"),
    ("another seed", "belongs to another fit")])
def test_a_bad_checkpoint_is_ignored_with_a_log_line(how, message, data, saved, steps, no_code, tmp_path, caplog):
    train, y, _ = data
    _damaged(tmp_path, saved, how)
    with caplog.at_level("WARNING", logger="prodcat.models.transformer"):
        model = TransformerTextClassifier(**TINY, seed=2 if how == "another seed" else 1
                                          ).set_checkpoint_dir(tmp_path).fit(train.head(48), y[:48])
    assert model.resumed_at_step_ == 0 and steps.done == model.steps_ >= 2
    lines = [r.getMessage() for r in caplog.records if "ignoring the mid-fit checkpoint" in r.getMessage()]
    assert len(lines) == 1 and message in lines[0], caplog.text
    assert not _Marker.ran


def test_the_plan_resumes_minilm_from_its_partial_folder_and_drops_it(data, steps, every_step, tmp_path, capsys):
    from prodcat.predictor import ProductClassifier

    train, y, test = data
    params = {k: v for k, v in SMALL.items() if k not in ("n_threads",)}
    preset = {"name": "tiny_minilm", "components": [
        {"name": "minilm", "kind": "deep_text", "model": "minilm", "params": {**params, "epochs": 1}}]}
    X = train[["designation", "description"]]
    folder = tmp_path / "checkpoints"
    steps.stop_after = 2
    with pytest.raises(Interrupted):
        ProductClassifier(preset).fit(X, y, checkpoints=folder)
    partial = folder / "partial" / "final%2Fminilm"
    assert load_midfit(partial)[1]["steps"] == 2
    steps.done = 0
    model = ProductClassifier(preset).fit(X, y, checkpoints=folder)
    assert "final/minilm resumed from its mid-fit checkpoint at step 2" in capsys.readouterr().err
    assert steps.done >= 1 and not partial.exists() and (folder / "final%2Fminilm.npz").is_file()
    assert model.predict_proba(test[["designation", "description"]]).shape[0] == len(test)


def test_a_resumed_fit_replans_its_steps_left_to_its_new_time_limit(data, steps, every_step, tmp_path):
    train, y, _ = data
    small = {**SMALL, "batch_size": 4}  # enough steps for the step timer to be ready (10) before the stop
    train, y = train.head(48), y[:48]
    steps.stop_after = 11
    with pytest.raises(Interrupted):
        TransformerTextClassifier(**small).set_checkpoint_dir(tmp_path).fit(train, y)
    document = load_midfit(tmp_path)[1]
    planned = document["plan"]["planned"]
    assert document["steps"] == 11 and len(document["timer"]["durations"]) == 11 and planned > 11
    steps.done = 0
    # a generous new limit: the steps are re-planned to it (from the saved step timings) and all of them fit
    model = TransformerTextClassifier(**small, time_limit=600).set_checkpoint_dir(tmp_path).fit(train, y)
    assert model.resumed_at_step_ == 11 and model.steps_ == planned and steps.done == planned - 11
