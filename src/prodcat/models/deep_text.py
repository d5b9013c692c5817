"""The seeds' deep text models, in PyTorch, plus sentence embeddings and a fine-tuned transformer.

=====================  ===============================  ============================================
name                   class                            model
=====================  ===============================  ============================================
``neural_simple``      :class:`NeuralTfidfClassifier`   word + char TF-IDF -> dense layer (sparse
                                                        input) -> softmax
``neural_embedding``   :class:`GRUTextClassifier`       stemmed tokens -> embedding -> BiGRU ->
                                                        pooling -> dense -> softmax
``use``                :class:`~prodcat.models.sentence.SentenceEmbeddingClassifier`
                                                        Universal Sentence Encoder (multilingual,
                                                        bundled) -> small head
``minilm``             :class:`~prodcat.models.transformer.TransformerTextClassifier`
                                                        all-MiniLM-L6-v2 (bundled) fine-tuned
=====================  ===============================  ============================================

Every model is a scikit-learn classifier taking a products DataFrame (``designation``,
``description``) or a list of strings, with ``seed``, ``time_limit`` (seconds for ``fit``;
None: no limit), ``progress`` (tqdm bars) and ``device`` (``"auto"``: the GPU when present).
Training holds out a stratified validation split, keeps the best checkpoint and stops early.
After ``fit``, ``validation_index_`` (positions of the held-out rows in the training input)
and ``validation_proba_`` (the kept checkpoint's probabilities for them, ``classes_`` order)
let a stacker learn from predictions on rows the model did not train on.
Fitted models pickle without torch modules: weights are kept as NumPy arrays and the network
is rebuilt on the first prediction. torch is imported only when a model is fitted or used.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.utils.validation import check_is_fitted

from prodcat.data.split import validation_split
from prodcat.models.deep_base import TorchTextClassifier
from prodcat.models.sentence import SentenceEmbeddingClassifier, encode_sentences
from prodcat.models.transformer import TransformerTextClassifier
from prodcat.text.clean import CleaningConfig, clean_texts, texts_from

__all__ = [
    "DEEP_TEXT_MODELS",
    "GRUTextClassifier",
    "NeuralTfidfClassifier",
    "SentenceEmbeddingClassifier",
    "TransformerTextClassifier",
    "encode_sentences",
]

LIGHT_CLEANING = CleaningConfig(stopwords=False, stem=False, numbers=False)
"""Cleaning for TF-IDF models: words kept whole (as :mod:`prodcat.models.text` does)."""

SEEDS_CLEANING = CleaningConfig()
"""The seeds' full cleaning: stop words dropped, words stemmed in the text's language."""


# --- neural_simple ---------------------------------------------------------------------------


class NeuralTfidfClassifier(TorchTextClassifier):
    """``neural_simple``: word 1-2-gram + char_wb 1-5-gram TF-IDF -> dense ReLU layer -> softmax.

    The hidden layer multiplies the sparse TF-IDF rows by an ``(n_features, hidden_size)``
    weight with ``torch.sparse.mm`` (the input is never densified); training updates only the
    weight rows each batch touches (lazy Adam). Early stopping on a stratified
    ``validation_fraction`` of the training rows (weighted F1), best epoch kept.
    ``time_limit`` is checked before every batch; cleaning and vectorising come first and are
    not interrupted (about 15 s for 38,000 short texts).
    """

    def __init__(
        self,
        *,
        hidden_size: int = 256,
        dropout: float = 0.7,
        epochs: int = 8,
        batch_size: int = 256,
        learning_rate: float = 2e-3,
        patience: int = 1,
        validation_fraction: float = 0.1,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] | None = (1, 5),
        min_df: int = 2,
        max_features: int | None = 200_000,
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
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.min_df = min_df
        self.max_features = max_features
        self.seed = seed
        self.time_limit = time_limit
        self.progress = progress
        self.device = device
        self.n_threads = n_threads

    def clean(self, X: Any) -> list[str]:
        """The model's input text: merged and lightly cleaned (see :data:`LIGHT_CLEANING`)."""
        return clean_texts(texts_from(X), LIGHT_CLEANING)

    def _vectorizers(self, n_texts: int) -> list[TfidfVectorizer]:
        common = dict(sublinear_tf=True, lowercase=False, dtype=np.float32, max_features=self.max_features,
                      min_df=self.min_df if n_texts >= 50 * self.min_df else 1)
        vectorizers = [TfidfVectorizer(ngram_range=tuple(self.word_ngrams), token_pattern=r"(?u)\b\w+\b", **common)]
        if self.char_ngrams:
            vectorizers.append(TfidfVectorizer(analyzer="char_wb", ngram_range=tuple(self.char_ngrams), **common))
        return vectorizers

    def _features(self, cleaned: Sequence[str]) -> sp.csr_matrix:
        return sp.hstack([v.transform(cleaned) for v in self.vectorizers_], format="csr", dtype=np.float32)

    def _new_net(self) -> Any:
        from prodcat.models import torch_utils as tu

        return tu.SparseHiddenNet(self.n_features_, self.hidden_size, len(self.classes_), self.dropout)

    def _fit_texts(self, texts: list[str], codes: np.ndarray, budget: Any) -> None:
        import torch

        from prodcat.models import torch_utils as tu

        rng = tu.seed_everything(self.seed)
        device = tu.resolve_device(self.device)
        cleaned = clean_texts(texts, LIGHT_CLEANING, progress=self.progress or None)
        self.vectorizers_ = self._vectorizers(len(cleaned))
        features = sp.hstack([v.fit_transform(cleaned) for v in self.vectorizers_], format="csr", dtype=np.float32)
        features.sort_indices()
        self.n_features_ = features.shape[1]
        train, valid = validation_split(codes, self.validation_fraction, self.seed)
        net = self._new_net().to(device)
        dense_params = [p for name, p in net.named_parameters() if name != "hidden_weight"]
        optimizer = torch.optim.Adam(dense_params, lr=self.learning_rate)
        lazy = tu.LazyAdamRows(net.hidden_weight.data, lr=self.learning_rate)
        targets = torch.from_numpy(codes).to(device)
        x_train, x_valid = features[train], features[valid]

        def step(rows: np.ndarray) -> float:
            """One batch; only the hidden-weight rows of the batch's features are updated."""
            batch = x_train[rows]
            columns, local = np.unique(batch.indices, return_inverse=True)
            x_local = sp.csr_matrix((batch.data, local.ravel(), batch.indptr), shape=(len(rows), len(columns)))
            column_ids = torch.from_numpy(columns.astype(np.int64)).to(device)
            weight_rows = net.hidden_weight.detach().index_select(0, column_ids).requires_grad_()
            loss = torch.nn.functional.cross_entropy(net.forward_rows(x_local, weight_rows), targets[train[rows]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            lazy.step(column_ids, weight_rows.grad)
            return loss.item()

        best = tu.train_loop(
            net, epochs=self.epochs, patience=self.patience, budget=budget, desc="neural_simple",
            progress=self.progress, batches=lambda: tu.batches(len(train), self.batch_size, rng), step=step,
            validate=lambda: tu.predict_logits(lambda rows: net(x_valid[rows]), len(valid), 4096),
            valid_codes=codes[valid])
        self._keep_best(best, net, valid)
        self.best_epoch_ = best.best_step + 1

    def _logits(self, texts: list[str]) -> np.ndarray:
        from prodcat.models import torch_utils as tu

        features = self._features(clean_texts(texts, LIGHT_CLEANING))
        net = self._net()
        return tu.predict_logits(lambda rows: net(features[rows]), len(texts), 4096)


# --- neural_embedding ------------------------------------------------------------------------

PAD, UNKNOWN = 0, 1


class GRUTextClassifier(TorchTextClassifier):
    """``neural_embedding``: the seeds' best text model, token embedding + bidirectional GRU.

    Text gets the seeds' full cleaning (stop words dropped, stems); words seen at least
    ``min_count`` times form the vocabulary (the rest map to an unknown id); each text keeps
    its first ``max_length`` tokens, padded per batch. Embedding -> BiGRU -> max + mean pooling
    -> dense ReLU -> softmax, Adam, batches of similar lengths, early stopping on validation
    weighted F1. ``time_limit`` is checked before every batch (cleaning comes first).
    """

    def __init__(
        self,
        *,
        embedding_dim: int = 128,
        hidden_size: int = 96,
        max_length: int = 64,
        min_count: int = 2,
        max_vocabulary: int = 100_000,
        cleaning: dict[str, bool] | None = None,
        dropout: float = 0.3,
        epochs: int = 8,
        batch_size: int = 128,
        learning_rate: float = 3e-3,
        patience: int = 1,
        validation_fraction: float = 0.1,
        seed: int = 42,
        time_limit: float | None = None,
        progress: bool = False,
        device: str = "auto",
        n_threads: int | None = None,
    ) -> None:
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.max_length = max_length
        self.min_count = min_count
        self.max_vocabulary = max_vocabulary
        self.cleaning = cleaning
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.time_limit = time_limit
        self.progress = progress
        self.device = device
        self.n_threads = n_threads

    def _config(self) -> CleaningConfig:
        return replace(SEEDS_CLEANING, **(self.cleaning or {}))

    def clean(self, X: Any) -> list[str]:
        """The model's input text: the seeds' full cleaning (:data:`SEEDS_CLEANING`), with the
        ``cleaning`` overrides (CleaningConfig field -> bool)."""
        return clean_texts(texts_from(X), self._config())

    def token_ids(self, cleaned: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, lengths): ``(n, max_length)`` int64 ids padded with 0, and each text's length (>= 1)."""
        check_is_fitted(self, "vocabulary_")
        vocabulary = self.vocabulary_
        ids = np.zeros((len(cleaned), self.max_length), dtype=np.int64)
        lengths = np.ones(len(cleaned), dtype=np.int64)
        for row, text in enumerate(cleaned):
            tokens = text.split()[: self.max_length]
            if tokens:
                ids[row, : len(tokens)] = [vocabulary.get(t, UNKNOWN) for t in tokens]
                lengths[row] = len(tokens)
        return ids, lengths

    def _build_vocabulary(self, cleaned: Sequence[str]) -> dict[str, int]:
        counts = Counter(t for text in cleaned for t in text.split()[: self.max_length])
        kept = [w for w, c in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0])) if c >= self.min_count]
        return {w: i + 2 for i, w in enumerate(kept[: self.max_vocabulary])}

    def _new_net(self) -> Any:
        from prodcat.models import torch_utils as tu

        return tu.BiGRUNet(len(self.vocabulary_) + 2, self.embedding_dim, self.hidden_size, len(self.classes_),
                           self.dropout)

    @staticmethod
    def _forward(net: Any, ids: np.ndarray, lengths: np.ndarray, rows: np.ndarray, device: Any) -> Any:
        import torch

        batch_lengths = lengths[rows]
        width = int(batch_lengths.max())
        return net(torch.from_numpy(ids[rows, :width]).to(device), torch.from_numpy(batch_lengths))

    def _fit_texts(self, texts: list[str], codes: np.ndarray, budget: Any) -> None:
        import torch

        from prodcat.models import torch_utils as tu

        rng = tu.seed_everything(self.seed)
        device = tu.resolve_device(self.device)
        cleaned = clean_texts(texts, self._config(), progress=self.progress or None)
        train, valid = validation_split(codes, self.validation_fraction, self.seed)
        self.vocabulary_ = self._build_vocabulary([cleaned[i] for i in train])
        ids, lengths = self.token_ids(cleaned)
        net = self._new_net().to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate)
        targets = torch.from_numpy(codes).to(device)

        def step(rows: np.ndarray) -> float:
            loss = torch.nn.functional.cross_entropy(self._forward(net, ids, lengths, train[rows], device),
                                                     targets[train[rows]])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            optimizer.step()
            return loss.item()

        best = tu.train_loop(
            net, epochs=self.epochs, patience=self.patience, budget=budget, desc="neural_embedding",
            progress=self.progress, batches=lambda: tu.length_grouped_batches(lengths[train], self.batch_size, rng),
            step=step, valid_codes=codes[valid],
            validate=lambda: tu.predict_logits_by_length(
                lambda rows: self._forward(net, ids, lengths, valid[rows], device), lengths[valid], 1024))
        self._keep_best(best, net, valid)
        self.best_epoch_ = best.best_step + 1

    def _logits(self, texts: list[str]) -> np.ndarray:
        from prodcat.models import torch_utils as tu

        ids, lengths = self.token_ids(clean_texts(texts, self._config()))
        net = self._net()
        device = next(net.parameters()).device
        return tu.predict_logits_by_length(lambda rows: self._forward(net, ids, lengths, rows, device), lengths, 1024)


DEEP_TEXT_MODELS: dict[str, type] = {
    "neural_simple": NeuralTfidfClassifier,
    "neural_embedding": GRUTextClassifier,
    "use": SentenceEmbeddingClassifier,
    "minilm": TransformerTextClassifier,
}
"""Deep text models by name (see the module docstring)."""
