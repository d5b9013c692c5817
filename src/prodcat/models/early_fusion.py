"""Early fusion, as in the seeds: concatenate text and image features, train dense layers on top.

Text features are the TF-IDF (word + character n-grams) of the cleaned text reduced by truncated
SVD; image features are the backbone embeddings, standardised, with zeros and a "no image" flag
for products without a usable image. A small PyTorch MLP (CPU-trainable, seeded) is trained
with early stopping on a stratified validation share.
"""

from __future__ import annotations

import copy
import io
import time
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import TruncatedSVD
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from prodcat.models.text import TextClassifier


class EarlyFusionClassifier(ClassifierMixin, BaseEstimator):
    """MLP on [SVD(TF-IDF text), standardised image embedding, has-image flag].

    ``fit(products, y, vectors=..., has_image=...)``: ``vectors`` are the image embeddings (rows
    of products without an image are ignored), ``has_image`` the mask of usable images.
    """

    def __init__(self, *, text_dim: int = 256, hidden: int = 512, dropout: float = 0.3, epochs: int = 40,
                 patience: int = 4, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-4,
                 time_limit: float | None = None, seed: int = 42) -> None:
        self.text_dim = text_dim
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.time_limit = time_limit
        self.seed = seed

    # -- features -------------------------------------------------------------------------
    def _text_features(self, products: Any) -> np.ndarray:
        sparse = self.text_features_._transform_clean(self.text_features_.clean(products))
        return self.svd_.transform(sparse).astype(np.float32)

    def _features(self, products: Any, vectors: np.ndarray, has_image: np.ndarray) -> np.ndarray:
        text = self.text_scaler_.transform(self._text_features(products))
        image = np.zeros((len(has_image), self.image_dim_), np.float32)
        if has_image.any():
            image[has_image] = self.image_scaler_.transform(vectors[has_image])
        return np.hstack([text, image, has_image[:, None].astype(np.float32)]).astype(np.float32)

    def _network(self, n_in: int, n_out: int):
        import torch

        return torch.nn.Sequential(
            torch.nn.Linear(n_in, self.hidden), torch.nn.ReLU(), torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, n_out),
        )

    # -- estimator API --------------------------------------------------------------------
    def fit(self, products: Any, y: Sequence[int], *, vectors: np.ndarray, has_image: np.ndarray
            ) -> "EarlyFusionClassifier":
        """Fit the text reducer, the scalers and the MLP; returns ``self``."""
        import torch

        started = time.perf_counter()
        y = np.asarray(y).astype(int)
        has_image = np.asarray(has_image, bool)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        vectorizer = TextClassifier(seed=self.seed)
        cleaned = vectorizer.clean(products)
        vectorizer.vectorizers_ = vectorizer._vectorizers()
        import scipy.sparse as sp

        sparse = sp.hstack([v.fit_transform(cleaned) for v in vectorizer.vectorizers_], format="csr")
        self.text_features_ = vectorizer
        n_components = int(max(2, min(self.text_dim, sparse.shape[1] - 1, sparse.shape[0] - 1)))
        self.svd_ = TruncatedSVD(n_components, random_state=self.seed).fit(sparse)
        self.text_scaler_ = StandardScaler().fit(self.svd_.transform(sparse))
        self.image_dim_ = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        self.image_scaler_ = StandardScaler().fit(vectors[has_image] if has_image.any()
                                                  else np.zeros((1, self.image_dim_), np.float32))
        features = self._features(products, vectors, has_image)

        torch.manual_seed(self.seed)
        counts = np.bincount(y_index)
        stratify = y_index if counts.min() >= 2 else None
        train, valid = train_test_split(np.arange(len(y)), test_size=0.1, random_state=self.seed, stratify=stratify)
        network = self._network(features.shape[1], len(self.classes_))
        optimiser = torch.optim.AdamW(network.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        x_all, y_all = torch.from_numpy(features), torch.from_numpy(y_index.astype(np.int64))
        generator = np.random.default_rng(self.seed)
        best_loss, best_state, stale = np.inf, None, 0
        self.epochs_run_ = 0
        for _ in range(self.epochs):
            network.train()
            order = generator.permutation(train)
            for start in range(0, len(order), self.batch_size):
                batch = order[start:start + self.batch_size]
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(network(x_all[batch]), y_all[batch])
                loss.backward()
                optimiser.step()
            network.eval()
            with torch.no_grad():
                valid_loss = float(torch.nn.functional.cross_entropy(network(x_all[valid]), y_all[valid]))
            self.epochs_run_ += 1
            if valid_loss < best_loss - 1e-4:
                best_loss, best_state, stale = valid_loss, copy.deepcopy(network.state_dict()), 0
            else:
                stale += 1
            if stale >= self.patience or (self.time_limit and time.perf_counter() - started > self.time_limit):
                break
        network.load_state_dict(best_state)
        self.network_ = network.eval()
        self.valid_loss_ = best_loss
        return self

    def predict_proba(self, products: Any, *, vectors: np.ndarray, has_image: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        import torch

        features = torch.from_numpy(self._features(products, vectors, np.asarray(has_image, bool)))
        with torch.no_grad():
            return torch.softmax(self.network_(features), dim=1).numpy().astype(np.float64)

    # -- pickling: keep the torch module as a state dict ----------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if "network_" in state:
            import torch

            buffer = io.BytesIO()
            torch.save(state.pop("network_").state_dict(), buffer)
            state["_network_state"] = buffer.getvalue()
            state["_network_shape"] = (self.network_[0].in_features, len(self.classes_))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.pop("_network_state", None)
        shape = state.pop("_network_shape", None)
        self.__dict__.update(state)
        if blob is not None:
            import torch

            network = self._network(*shape)
            network.load_state_dict(torch.load(io.BytesIO(blob), weights_only=True))
            self.network_ = network.eval()
