"""PyTorch plumbing shared by the deep text models, and their networks.

Devices and threads, seeding, time budgets, best-checkpoint
tracking, batched prediction, and weights kept as NumPy arrays so fitted models pickle
without the torch modules (they are rebuilt on first use). This module imports torch; the
model modules import it lazily, so ``import prodcat.models.deep_text`` stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from prodcat.errors import ProdcatError
from prodcat.resources import available_cores

# --- devices, threads, seeds -------------------------------------------------------------


DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str | None = "auto") -> torch.device:
    """``"auto"`` (or None): the GPU when ``torch.cuda.is_available()``, else the CPU; ``"cpu"``;
    ``"cuda"`` (or ``"cuda:N"``), refused when no CUDA GPU is available."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, str) or not (device == "cpu" or device == "cuda" or device.startswith("cuda:")):
        raise ProdcatError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ProdcatError(f"device {device!r} was asked for but no CUDA GPU is available; use 'auto' or 'cpu'")
    return resolved


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision type for ``device``: bfloat16 on a CUDA GPU that supports it, else
    float16 (which needs gradient scaling); None (full precision) on the CPU."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def inference_device(device: str | None) -> torch.device:
    """Where a fitted model predicts: as :func:`resolve_device`, but a model trained on ``"cuda"``
    falls back to the CPU on a machine without a GPU."""
    if isinstance(device, str) and device.startswith("cuda") and not torch.cuda.is_available():
        return torch.device("cpu")
    return resolve_device(device)


@contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op threads (None: every available core), then restore."""
    wanted = max(1, int(n_threads or available_cores()))
    previous = torch.get_num_threads()
    if wanted != previous:
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        if torch.get_num_threads() != previous:
            torch.set_num_threads(previous)


def seed_everything(seed: int) -> np.random.Generator:
    """Seed torch (CPU and GPU) and return a NumPy generator for the same seed."""
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))
    return np.random.default_rng(int(seed))


class TimeBudget:
    """Wall-clock budget started at construction; ``limit=None`` never runs out."""

    def __init__(self, limit: float | None) -> None:
        if limit is not None and limit <= 0:
            raise ValueError(f"time_limit must be positive seconds or None, got {limit!r}")
        self.limit = None if limit is None else float(limit)
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def remaining(self) -> float:
        """Seconds left (infinite without a limit)."""
        return float("inf") if self.limit is None else self.limit - self.elapsed()

    def expired(self, reserve: float = 0.0) -> bool:
        """True once fewer than ``reserve`` seconds are left."""
        return self.remaining() <= reserve


# --- data ----------------------------------------------------------------------------------


def encode_labels(y: Any) -> tuple[np.ndarray, np.ndarray]:
    """(classes, codes): sorted distinct labels and each label's index among them."""
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y must be one-dimensional, got shape {labels.shape}")
    if len(labels) == 0:
        raise ValueError("cannot fit on zero products")
    classes, codes = np.unique(labels.astype(int), return_inverse=True)
    return classes, codes.astype(np.int64)


def batches(n: int, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Row indices in batches; shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           group: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar lengths: shuffle, sort within chunks of ``group`` batches,
    split, shuffle the batches (less padding, still random)."""
    order = rng.permutation(len(lengths))
    out: list[np.ndarray] = []
    span = batch_size * group
    for start in range(0, len(order), span):
        chunk = order[start:start + span]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        out.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    return [out[i] for i in rng.permutation(len(out))]


def csr_to_torch(matrix: sp.csr_matrix, device: torch.device | None = None) -> torch.Tensor:
    """A SciPy CSR matrix as a torch sparse CSR tensor (never densified)."""
    matrix = matrix.tocsr()
    tensor = torch.sparse_csr_tensor(
        torch.from_numpy(matrix.indptr.astype(np.int64)),
        torch.from_numpy(matrix.indices.astype(np.int64)),
        torch.from_numpy(np.asarray(matrix.data, dtype=np.float32)),
        size=matrix.shape,
    )
    return tensor if device is None or device.type == "cpu" else tensor.to(device)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (rows sum to 1)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def weighted_f1(codes: np.ndarray, predicted: np.ndarray) -> float:
    """Weighted F1 of predicted class indices (the challenge metric)."""
    from sklearn.metrics import f1_score

    return float(f1_score(codes, predicted, average="weighted", zero_division=0))


def negative_log_loss(codes: np.ndarray, logits: np.ndarray) -> float:
    """Minus the mean cross-entropy of logits for the true class indices (higher is better)."""
    proba = softmax(logits)[np.arange(len(codes)), codes]
    return float(np.log(np.clip(proba, 1e-12, None)).mean())


def predict_logits(forward: Callable[[np.ndarray], torch.Tensor], n: int, batch_size: int) -> np.ndarray:
    """Run ``forward(rows)`` over ``range(n)`` in batches without gradients; float32 logits."""
    out: list[np.ndarray] = []
    with torch.inference_mode():
        for rows in batches(n, batch_size):
            out.append(forward(rows).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def predict_logits_by_length(forward: Callable[[np.ndarray], torch.Tensor], lengths: np.ndarray,
                             batch_size: int) -> np.ndarray:
    """:func:`predict_logits` over rows taken shortest first (less padding per batch), returned
    in the original row order; ``forward`` receives the original row indices."""
    order = np.argsort(lengths, kind="stable")
    logits = predict_logits(lambda rows: forward(order[rows]), len(lengths), batch_size)
    out = np.empty_like(logits)
    out[order] = logits
    return out


# --- checkpoints and pickling --------------------------------------------------------------


@dataclass(frozen=True)
class LoopPosition:
    """Where :func:`train_loop` stands: epoch index, batches of that epoch done, steps done in all."""

    epoch: int = 0
    position: int = 0
    steps: int = 0


class BestCheckpoint:
    """Keeps a CPU copy of the weights with the best validation score (higher is better)."""

    def __init__(self, patience: int | None) -> None:
        self.patience = patience
        self.best_score = -float("inf")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_step = -1
        self.best_logits: np.ndarray | None = None
        self.stale = 0
        self.steps = 0
        self.history: list[dict[str, float]] = []

    def update(self, score: float, module: nn.Module, logits: np.ndarray | None = None, **info: float) -> bool:
        """Record an evaluation (and its validation ``logits``); True when it is the best so far."""
        self.history.append({"score": float(score), **{k: float(v) for k, v in info.items()}})
        if score > self.best_score:
            self.best_score = float(score)
            self.best_logits = logits
            self.best_state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
            self.best_step = len(self.history) - 1
            self.stale = 0
            return True
        self.stale += 1
        return False

    def should_stop(self) -> bool:
        return self.patience is not None and self.stale > self.patience

    def restore(self, module: nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def validation_proba(self, n_rows: int, n_classes: int) -> np.ndarray:
        """Probabilities the kept checkpoint gave the validation rows ((0, k) without them)."""
        if self.best_logits is None or n_rows == 0:
            return np.zeros((0, n_classes))
        return softmax(self.best_logits)


def train_loop(
    net: nn.Module,
    *,
    epochs: int,
    batches: Callable[[], list[np.ndarray]],
    step: Callable[[np.ndarray], float],
    validate: Callable[[], np.ndarray],
    valid_codes: np.ndarray,
    budget: TimeBudget,
    desc: str,
    progress: bool,
    patience: int | None = None,
    score: Callable[[np.ndarray, np.ndarray], float] | None = None,
    max_steps: Callable[[], int] | None = None,
    reserve: Callable[[], float] | None = None,
    after_step: Callable[[int], bool] | None = None,
    start: LoopPosition | None = None,
    best: BestCheckpoint | None = None,
    after_batch: Callable[[LoopPosition, BestCheckpoint], None] | None = None,
) -> BestCheckpoint:
    """The training loop of every torch model; returns the checkpoint, already restored in ``net``.

    Each epoch runs ``step(rows)`` (returns the batch loss) on every batch of ``batches()``.
    Validation scores ``validate()`` (logits of the validation rows, whose classes are
    ``valid_codes``) with ``score(codes, logits)`` (default: weighted F1; higher is better) and
    keeps the best weights. It runs at the end of every epoch, or, when ``after_step(steps)``
    is given, whenever that returns True and once more at the end. Training stops after
    ``epochs``, when the score has not improved for more than ``patience`` validations, after
    ``max_steps()`` steps, or when ``budget`` has fewer than ``reserve()`` seconds left
    (checked before every batch; the interrupted epoch is still validated). Without validation
    rows the last weights are kept.

    Resuming (mid-fit checkpoints): ``start`` is where an interrupted run stood (its epoch, the
    batches of that epoch done, its step count) and ``best`` its checkpoint so far; the first
    ``batches()`` call must then give that epoch's batches again (the caller restores its random
    state), and the batches already done are skipped. ``after_batch(position, best)`` runs after
    every step (and its validation, if one was due): where a caller saves its mid-fit state.
    """
    best = best if best is not None else BestCheckpoint(patience)
    score = score or (lambda codes, logits: weighted_f1(codes, logits.argmax(axis=1)))
    start = start or LoopPosition()
    steps = start.steps

    def evaluate(**when: int) -> None:
        if len(valid_codes):
            net.eval()
            logits = validate()
            net.train()
            best.update(score(valid_codes, logits), net, logits=logits, **when)
        else:
            best.update(float(next(iter(when.values()))), net, **when)

    for epoch in range(start.epoch, epochs):
        net.train()
        stopped = False
        batch_list = batches()
        done = start.position if epoch == start.epoch else 0
        with progress_bar(len(batch_list), f"{desc} epoch {epoch + 1}/{epochs}", progress) as bar:
            bar.update(min(done, len(batch_list)))
            for position, rows in enumerate(batch_list[done:], done + 1):
                if (max_steps is not None and steps >= max_steps()) or budget.expired(reserve() if reserve else 0.0):
                    stopped = True
                    break
                loss = step(rows)
                steps += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
                if after_step is not None and after_step(steps):
                    evaluate(step=steps)
                if after_batch is not None:
                    after_batch(LoopPosition(epoch, position, steps), best)
        if after_step is None:
            evaluate(epoch=epoch)
        if stopped or best.should_stop():
            break
    if after_step is not None and (not best.history or best.history[-1]["step"] != steps):
        evaluate(step=steps)
    best.restore(net)
    best.steps = steps
    return best


def fit_dense(
    new_net: Callable[[], nn.Module],
    features: np.ndarray,
    codes: np.ndarray,
    budget: TimeBudget,
    *,
    seed: int,
    device: str | None,
    validation_fraction: float,
    learning_rate: float,
    weight_decay: float,
    epochs: int,
    patience: int | None,
    batch_size: int,
    desc: str,
    progress: bool,
    score: Callable[[np.ndarray, np.ndarray], float] | None = None,
) -> tuple[nn.Module, BestCheckpoint, np.ndarray]:
    """Train ``new_net()`` on dense float32 ``features`` (AdamW, cross-entropy, :func:`train_loop`
    with a stratified validation share); returns the network (best weights), its checkpoint and
    the validation rows."""
    from prodcat.data.split import validation_split

    rng = seed_everything(seed)
    target_device = resolve_device(device)
    train, valid = validation_split(codes, validation_fraction, seed)
    net = new_net().to(target_device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=weight_decay)
    inputs = torch.from_numpy(features).to(target_device)
    targets = torch.from_numpy(codes).to(target_device)

    def step(rows: np.ndarray) -> float:
        index = torch.from_numpy(train[rows]).to(target_device)
        loss = torch.nn.functional.cross_entropy(net(inputs[index]), targets[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    best = train_loop(
        net, epochs=epochs, patience=patience, budget=budget, desc=desc, progress=progress,
        batches=lambda: batches(len(train), batch_size, rng), step=step, valid_codes=codes[valid], score=score,
        validate=lambda: predict_logits(lambda rows: net(inputs[torch.from_numpy(valid[rows]).to(target_device)]),
                                        len(valid), 8192))
    return net, best, valid


def state_to_numpy(module: nn.Module) -> dict[str, np.ndarray]:
    """The module's weights as NumPy arrays (copies, on the CPU)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def load_numpy_state(module: nn.Module, state: dict[str, np.ndarray]) -> nn.Module:
    """Load weights saved by :func:`state_to_numpy` (shares memory on the CPU)."""
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    return module


def progress_bar(total: int | None, desc: str, enabled: bool, unit: str = "batch") -> Any:
    """A tqdm bar, or a silent one when ``enabled`` is False."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, leave=False)


# --- networks --------------------------------------------------------------------------------


class _ScipySparseMatmul(torch.autograd.Function):
    """``matrix @ weight`` for a SciPy CSR ``matrix`` and a CPU ``weight``, differentiable in ``weight``.

    SciPy's CSR kernels are about ten times faster than torch's CPU sparse ones here (0.004 s
    against 0.03-0.3 s forward + backward for a 256-row TF-IDF batch), so the CPU path uses them.
    """

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, matrix: sp.csr_matrix) -> torch.Tensor:  # type: ignore[override]
        ctx.matrix = matrix
        return torch.from_numpy(np.asarray(matrix @ weight.detach().numpy(), dtype=np.float32))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return torch.from_numpy(np.asarray(ctx.matrix.T @ grad.contiguous().numpy(), dtype=np.float32)), None


def sparse_matmul(matrix: sp.csr_matrix, weight: torch.Tensor) -> torch.Tensor:
    """``matrix @ weight`` with the sparse rows never densified: SciPy on the CPU,
    ``torch.sparse.mm`` on a GPU; differentiable in ``weight``."""
    matrix = matrix.astype(np.float32, copy=False)
    if weight.device.type == "cpu":
        return _ScipySparseMatmul.apply(weight, matrix)
    return torch.sparse.mm(csr_to_torch(matrix, weight.device), weight)


class SparseHiddenNet(nn.Module):
    """Sparse TF-IDF rows -> dense hidden layer -> ReLU -> dropout -> logits.

    ``hidden_weight`` is an ``(n_features, hidden)`` parameter multiplied by the sparse rows
    (:func:`sparse_matmul`). Training multiplies each batch by only the weight rows its
    features touch (:meth:`forward_rows`), so gradients and optimiser updates cost the batch's
    vocabulary, not the whole matrix.
    """

    def __init__(self, n_features: int, hidden_size: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.hidden_weight = nn.Parameter(torch.empty(n_features, hidden_size))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden_size))
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(hidden_size, n_classes)
        nn.init.normal_(self.hidden_weight, std=0.01)

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.output(self.dropout(torch.relu(hidden + self.hidden_bias)))

    def forward(self, x: sp.csr_matrix) -> torch.Tensor:
        """``x``: SciPy CSR (batch, n_features)."""
        return self.head(sparse_matmul(x, self.hidden_weight))

    def forward_rows(self, x_local: sp.csr_matrix, weight_rows: torch.Tensor) -> torch.Tensor:
        """``x_local``: CSR (batch, k) over ``k`` touched features; ``weight_rows``: their (k, hidden) rows."""
        return self.head(sparse_matmul(x_local, weight_rows))


class LazyAdamRows:
    """Adam for a large embedding-like matrix, updating only the rows a batch touched.

    Moments of untouched rows are left as they are (as TensorFlow's LazyAdam does), which is
    what makes a 100,000+ feature hidden layer trainable on a CPU.
    """

    def __init__(self, weight: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.weight = weight
        self.lr = lr
        self.beta1, self.beta2 = betas
        self.eps = eps
        self.m = torch.zeros_like(weight)
        self.v = torch.zeros_like(weight)
        self.steps = 0

    @torch.no_grad()
    def step(self, rows: torch.Tensor, grad: torch.Tensor) -> None:
        self.steps += 1
        m = self.m.index_select(0, rows).mul_(self.beta1).add_(grad, alpha=1 - self.beta1)
        v = self.v.index_select(0, rows).mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
        self.m.index_copy_(0, rows, m)
        self.v.index_copy_(0, rows, v)
        step_size = self.lr * np.sqrt(1 - self.beta2 ** self.steps) / (1 - self.beta1 ** self.steps)
        update = m.div_(v.sqrt_().add_(self.eps)).mul_(step_size)
        self.weight.index_add_(0, rows, update, alpha=-1.0)


class BiGRUNet(nn.Module):
    """Token ids -> embedding -> bidirectional GRU -> masked max + mean pooling -> dense -> logits."""

    def __init__(self, vocabulary_size: int, embedding_dim: int, hidden_size: int, n_classes: int,
                 dropout: float) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=0)
        with torch.no_grad():  # small initial vectors (as Keras's Embedding): GRU gates start unsaturated
            nn.init.uniform_(self.embedding.weight, -0.05, 0.05)
            self.embedding.weight[0].zero_()
        self.embedding_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(embedding_dim, hidden_size, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(4 * hidden_size, 2 * hidden_size)
        self.output = nn.Linear(2 * hidden_size, n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``ids``: (batch, time) padded with 0; ``lengths``: (batch,) >= 1, on the CPU."""
        embedded = self.embedding_dropout(self.embedding(ids))
        packed = nn.utils.rnn.pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        states, _ = self.gru(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(states, batch_first=True, total_length=ids.shape[1])
        mask = (torch.arange(ids.shape[1], device=ids.device)[None, :]
                < lengths.to(ids.device)[:, None]).unsqueeze(-1)
        mean = (states * mask).sum(1) / lengths.to(states.device, states.dtype)[:, None]
        maximum = states.masked_fill(~mask, -1e4).max(1).values
        pooled = self.dropout(torch.cat([maximum, mean], dim=1))
        return self.output(self.dropout(torch.relu(self.dense(pooled))))


class MLPHead(nn.Module):
    """Dense features -> (hidden ReLU layer with dropout) -> logits; ``hidden_size=0`` is linear."""

    def __init__(self, n_inputs: int, hidden_size: int, n_classes: int, dropout: float) -> None:
        super().__init__()
        if hidden_size:
            self.net: nn.Module = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(n_inputs, hidden_size),
                                                nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_size, n_classes))
        else:
            self.net = nn.Sequential(nn.Dropout(dropout / 2), nn.Linear(n_inputs, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MeanPoolClassifier(nn.Module):
    """A transformers encoder -> token states mean-pooled over the attention mask -> dropout -> logits.

    ``bottom_states`` and ``forward_from`` split the same computation in two at an encoder
    layer, so the output of frozen bottom layers can be computed once and reused.
    """

    def __init__(self, encoder: nn.Module, n_classes: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(int(encoder.config.hidden_size), n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        states = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self._pool(states, attention_mask)

    def bottom_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: int) -> torch.Tensor:
        """Token states after the embeddings and the first ``layers`` encoder layers."""
        return self._layers(self.encoder.embeddings(input_ids=input_ids), attention_mask, 0, layers)

    def forward_from(self, states: torch.Tensor, attention_mask: torch.Tensor, start: int) -> torch.Tensor:
        """Logits from the token states that :meth:`bottom_states` gave for ``layers=start``."""
        return self._pool(self._layers(states, attention_mask, start, None), attention_mask)

    def _layers(self, states: torch.Tensor, attention_mask: torch.Tensor, start: int, stop: int | None) -> torch.Tensor:
        from transformers.masking_utils import create_bidirectional_mask

        mask = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=states,
                                         attention_mask=attention_mask)
        for layer in self.encoder.encoder.layer[start:stop]:
            states = layer(states, attention_mask=mask)
        return states

    def _pool(self, states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.output(self.dropout(pooled))
