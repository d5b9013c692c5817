"""Early fusion, as in the seeds: concatenate text and image features, train dense layers on top.

Text features are the TF-IDF (word + character n-grams) of the cleaned text reduced by truncated
SVD; image features are the backbone embeddings, standardised, with zeros and a "no image" flag
for products without a usable image. A small PyTorch MLP (seeded) is trained by the shared loop
(:func:`~prodcat.models.torch_utils.train_loop`) with early stopping on the validation loss of a
stratified validation share; its weights are kept as NumPy arrays.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import TruncatedSVD
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from prodcat.models.deep_base import TorchWeights
from prodcat.models.text import TextClassifier


class EarlyFusionClassifier(TorchWeights, ClassifierMixin, BaseEstimator):
    """MLP on [SVD(TF-IDF text), standardised image embedding, has-image flag].

    ``fit(products, y, vectors=..., has_image=...)``: ``vectors`` are the image embeddings (rows
    of products without an image are ignored), ``has_image`` the mask of usable images.
    Training stops after ``epochs``, when the validation loss has not improved for more than
    ``patience`` epochs, or when ``time_limit`` seconds are spent.
    """

    def __init__(self, *, text_dim: int = 256, hidden_size: int = 512, dropout: float = 0.3, epochs: int = 40,
                 patience: int = 3, batch_size: int = 128, learning_rate: float = 1e-3, weight_decay: float = 1e-4,
                 validation_fraction: float = 0.1, time_limit: float | None = None, seed: int = 42,
                 progress: bool = False, device: str = "auto", n_threads: int | None = None) -> None:
        self.text_dim = text_dim
        self.hidden_size = hidden_size
        self.dropout = dropout
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.validation_fraction = validation_fraction
        self.time_limit = time_limit
        self.seed = seed
        self.progress = progress
        self.device = device
        self.n_threads = n_threads

    # -- features -------------------------------------------------------------------------
    def _fit_features(self, products: Any, vectors: np.ndarray, has_image: np.ndarray) -> None:
        vectorizer = TextClassifier(seed=self.seed)
        sparse = vectorizer.fit_vectorizers(vectorizer.clean(products))
        self.text_features_ = vectorizer
        n_components = int(max(2, min(self.text_dim, sparse.shape[1] - 1, sparse.shape[0] - 1)))
        self.svd_ = TruncatedSVD(n_components, random_state=self.seed).fit(sparse)
        self.text_scaler_ = StandardScaler().fit(self.svd_.transform(sparse))
        self.image_dim_ = int(vectors.shape[1]) if vectors.ndim == 2 else 0
        self.image_scaler_ = StandardScaler().fit(vectors[has_image] if has_image.any()
                                                  else np.zeros((1, self.image_dim_), np.float32))

    def _features(self, products: Any, vectors: np.ndarray, has_image: np.ndarray) -> np.ndarray:
        sparse = self.text_features_.vectorize(self.text_features_.clean(products))
        text = self.text_scaler_.transform(self.svd_.transform(sparse).astype(np.float32))
        image = np.zeros((len(has_image), self.image_dim_), np.float32)
        if has_image.any():
            image[has_image] = self.image_scaler_.transform(vectors[has_image])
        return np.hstack([text, image, has_image[:, None].astype(np.float32)]).astype(np.float32)

    def _new_net(self) -> Any:
        import torch

        return torch.nn.Sequential(
            torch.nn.Linear(self.n_features_, self.hidden_size), torch.nn.ReLU(), torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden_size, len(self.classes_)),
        )

    # -- estimator API --------------------------------------------------------------------
    def fit(self, products: Any, y: Sequence[int], *, vectors: np.ndarray, has_image: np.ndarray
            ) -> "EarlyFusionClassifier":
        """Fit the text reducer, the scalers and the MLP; returns ``self``."""
        from prodcat.models import torch_utils as tu

        budget = tu.TimeBudget(self.time_limit)
        self._clear_cache()
        self.classes_, codes = tu.encode_labels(y)
        has_image = np.asarray(has_image, bool)
        self._fit_features(products, vectors, has_image)
        features = self._features(products, vectors, has_image)
        self.n_features_ = features.shape[1]
        with tu.torch_threads(self.n_threads):
            self._fit_network(features, codes, budget)
        self.fit_seconds_ = budget.elapsed()
        return self

    def _fit_network(self, features: np.ndarray, codes: np.ndarray, budget: Any) -> None:
        from prodcat.models import torch_utils as tu

        net, best, valid = tu.fit_dense(
            self._new_net, features, codes, budget, seed=self.seed, device=self.device,
            validation_fraction=self.validation_fraction, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, epochs=self.epochs, patience=self.patience,
            batch_size=self.batch_size, desc="early fusion", progress=self.progress, score=tu.negative_log_loss)
        self._keep_best(best, net, valid)
        self.best_epoch_ = best.best_step + 1

    def predict_proba(self, products: Any, *, vectors: np.ndarray, has_image: np.ndarray) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        import torch

        from prodcat.models import torch_utils as tu

        check_is_fitted(self, "weights_")
        features = self._features(products, vectors, np.asarray(has_image, bool))
        net = self._net()
        device = next(net.parameters()).device
        with tu.torch_threads(self.n_threads):
            return tu.softmax(tu.predict_logits(lambda rows: net(torch.from_numpy(features[rows]).to(device)),
                                                len(features), 8192))

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Also reads early-fusion models pickled before weights were NumPy arrays."""
        blob = state.pop("_network_state", None)
        if blob is not None:
            import io

            import torch

            weights = torch.load(io.BytesIO(blob), weights_only=True)
            state["weights_"] = {k: v.numpy() for k, v in weights.items()}
            state["n_features_"] = int(state.pop("_network_shape")[0])
            state["hidden_size"] = state.pop("hidden")
            state["learning_rate"] = state.pop("lr")
            state["patience"] = state["patience"] - 1  # was "stop after this many epochs without progress"
            state.update(validation_fraction=0.1, progress=False, device="cpu", n_threads=None)
        super().__setstate__(state)
