"""Base class of the deep text models: the scikit-learn API around a lazily built torch network.

Subclasses implement ``_fit_texts(texts, codes, budget)`` (learn ``weights_`` and friends from
merged texts and class indices within a :class:`~prodcat.models.torch_utils.TimeBudget`),
``_new_net()`` (the untrained network of the fitted shapes) and ``_logits(texts)``.
:class:`TorchWeights` is the one way torch models keep their fitted weights: NumPy arrays in
``weights_``, the network rebuilt on first use; objects that are expensive to build (networks,
tokenizers, encoders) live in ``_cache_*`` attributes, left out of pickles and safe bundles
(and never read back from them), so a fitted model holds NumPy arrays and parameters only.
torch is imported inside methods, never at module import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from prodcat.text.clean import texts_from


_TRANSIENT = ("_cache", "_midfit")
"""Attribute prefixes never saved: caches, and where the next fit keeps its mid-fit checkpoints."""


class TorchWeights:
    """Fitted torch weights kept as NumPy arrays (``weights_``, a name -> array dict) and the
    network rebuilt from them on first use; objects expensive to build live in ``_cache_*``
    attributes, left out of pickles. Subclasses define ``_new_net()`` and the ``device`` parameter."""

    device: str

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        return {k: v for k, v in state.items() if not k.startswith(_TRANSIENT)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Caches are never read back from a saved state: they are rebuilt from the installed packages."""
        super().__setstate__({k: v for k, v in state.items() if not k.startswith(_TRANSIENT)})  # type: ignore[misc]

    def _cached(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()`` once, then the same object on every call (never pickled)."""
        key = f"_cache_{name}"
        if self.__dict__.get(key) is None:
            self.__dict__[key] = build()
        return self.__dict__[key]

    def _clear_cache(self) -> None:
        for key in [k for k in self.__dict__ if k.startswith("_cache")]:
            del self.__dict__[key]

    def _net(self) -> Any:
        """The fitted network, in eval mode on ``device``: built from ``weights_`` on first use."""
        from prodcat.models import torch_utils as tu

        return self._cached("net", lambda: tu.load_numpy_state(self._new_net(), self.weights_)
                            .to(tu.inference_device(self.device)).eval())

    def _keep_best(self, best: Any, net: Any, valid: np.ndarray) -> None:
        """Store what training kept: the best checkpoint's weights (already restored in ``net``),
        its validation rows and probabilities (used by stacking) and the evaluation history."""
        from prodcat.models import torch_utils as tu

        self.validation_index_ = valid
        self.validation_proba_ = best.validation_proba(len(valid), len(self.classes_))
        self.history_ = best.history
        self.weights_ = tu.state_to_numpy(net)

    def _new_net(self) -> Any:
        raise NotImplementedError


class TorchTextClassifier(TorchWeights, ClassifierMixin, BaseEstimator):
    """Shared ``fit`` / ``predict_proba`` / ``predict`` and pickling for the deep text models.

    Subclasses define the parameters ``seed``, ``time_limit``, ``progress``, ``device`` and
    ``n_threads`` (CPU threads for torch; None: every available core).
    """

    seed: int
    time_limit: float | None
    progress: bool
    device: str
    n_threads: int | None

    def fit(self, X: Any, y: Sequence[int]) -> "TorchTextClassifier":
        """Train on products (DataFrame or texts) and integer codes; returns ``self``."""
        texts = texts_from(X)
        labels = np.asarray(y)
        if len(texts) != len(labels):
            raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
        from prodcat.models import torch_utils as tu

        budget = tu.TimeBudget(self.time_limit)
        self._clear_cache()
        self.classes_, codes = tu.encode_labels(labels)
        with tu.torch_threads(self.n_threads):
            self._fit_texts(texts, codes, budget)
        self.fit_seconds_ = budget.elapsed()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, columns in ``classes_`` order."""
        check_is_fitted(self, "weights_")
        texts = texts_from(X)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        from prodcat.models import torch_utils as tu

        with tu.torch_threads(self.n_threads):
            return tu.softmax(self._logits(texts))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable code of each product."""
        proba = self.predict_proba(X)
        return self.classes_[proba.argmax(axis=1)]

    # -- for subclasses --------------------------------------------------------------------------
    def _fit_texts(self, texts: list[str], codes: np.ndarray, budget: Any) -> None:
        raise NotImplementedError

    def _logits(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError
