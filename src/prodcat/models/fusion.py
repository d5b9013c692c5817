"""Late fusion: combine per-component class probabilities into one distribution.

The fusers learn from held-out probabilities: every training product is scored by components
that never saw it (out-of-fold or holdout, see :mod:`prodcat.plan`), so the fuser learns how
much to trust each component on unseen data, without leakage.

- :class:`StackingFuser`: a multinomial logistic regression on the components' standardised
  probabilities, its regularisation chosen by 3-fold cross-validation. (Measured on demo data:
  standardised probabilities beat log-probabilities by 2-5 points of weighted F1.)
  Two meta-learners are kept: one over every component, for products with a usable image, and
  one over the text components only, for products without (a clean fall-back to text).
- :class:`BlendFuser`: a weighted average of the components' probabilities, weights on the simplex
  fitted by minimising log-loss (again separately for products with and without an image).
- :class:`ClasswiseFuser`: weighted log-probabilities, one weight per component and one bias per
  class, so each class's fused score depends only on that class's component scores.

:func:`choose_fuser` picks one by its own out-of-fold log-loss and guards it with
:func:`keep_to_candidates` (a fuser cannot promote a class that no component ranks in its own top
3); :func:`text_only_reason` says when there are too few photos to fuse at all.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

EPS = 1e-6


STACK_CS = (0.01, 0.03, 0.1, 0.3, 1.0)


class _Stack:
    """Standardised probabilities of some components -> multinomial logistic regression."""

    def __init__(self, names: list[str], classes: np.ndarray, seed: int) -> None:
        self.names, self.classes, self.seed = names, classes, seed

    def _features(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        return np.hstack([probas[n] for n in self.names])

    def fit(self, probas: dict[str, np.ndarray], y: np.ndarray) -> "_Stack":
        counts = np.bincount(np.unique(y, return_inverse=True)[1])
        folds = int(min(3, counts.min()))
        head = (LogisticRegressionCV(Cs=list(STACK_CS), cv=folds, max_iter=2000, random_state=self.seed,
                                     scoring="neg_log_loss", l1_ratios=(0.0,), use_legacy_attributes=False)
                if folds >= 2 else LogisticRegression(C=0.1, max_iter=2000, random_state=self.seed))
        with warnings.catch_warnings():  # few held-out rows per class (small data) is expected here
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            self.model: Pipeline = make_pipeline(StandardScaler(), head).fit(self._features(probas), y)
        return self

    def predict_proba(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        out = np.zeros((len(next(iter(probas.values()))), len(self.classes)))
        out[:, np.searchsorted(self.classes, self.model.classes_)] = self.model.predict_proba(self._features(probas))
        return out


class _Blend:
    """Weighted average of component probabilities; weights on the simplex minimise log-loss."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    def fit(self, probas: dict[str, np.ndarray], y_index: np.ndarray) -> "_Blend":
        stacked = np.stack([probas[n] for n in self.names])  # (components, n, classes)
        truth = stacked[:, np.arange(stacked.shape[1]), y_index]  # (components, n)

        def loss(logits: np.ndarray) -> float:
            w = np.exp(logits - logits.max())
            w /= w.sum()
            return float(-np.log(np.clip(w @ truth, EPS, None)).mean())

        if len(self.names) == 1:
            self.weights = np.ones(1)
        else:
            result = minimize(loss, np.zeros(len(self.names)), method="Nelder-Mead",
                              options={"xatol": 1e-4, "fatol": 1e-6, "maxiter": 2000})
            w = np.exp(result.x - result.x.max())
            self.weights = w / w.sum()
        return self

    def predict_proba(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        return sum(w * probas[n] for w, n in zip(self.weights, self.names))


class _Fuser:
    """Shared logic: one sub-model for products with an image, one for products without."""

    def __init__(self, text_components: list[str], image_components: list[str]) -> None:
        self.text_components = list(text_components)
        self.image_components = list(image_components)

    def _make(self, names: list[str]):  # pragma: no cover - overridden
        raise NotImplementedError

    def _fit_one(self, model, probas: dict[str, np.ndarray], y: np.ndarray):
        return model.fit(probas, y)

    def fit(self, probas: dict[str, np.ndarray], y: np.ndarray, has_image: np.ndarray, classes: np.ndarray):
        """Learn from out-of-fold ``probas`` (columns = ``classes``)."""
        self.classes_ = np.asarray(classes)
        everything = self.text_components + self.image_components
        self.without_image_ = self._fit_one(self._make(self.text_components), probas, y)
        self.with_image_ = None
        if self.image_components and has_image.sum() >= 2 * len(self.classes_):
            subset = {n: p[has_image] for n, p in probas.items()}
            if len(np.unique(y[has_image])) >= 2:
                self.with_image_ = self._fit_one(self._make(everything), subset, y[has_image])
        return self

    def predict_proba(self, probas: dict[str, np.ndarray], has_image: np.ndarray) -> np.ndarray:
        out = self.without_image_.predict_proba(probas)
        if self.with_image_ is not None and has_image.any():
            out[has_image] = self.with_image_.predict_proba({n: p[has_image] for n, p in probas.items()})
        return out / out.sum(axis=1, keepdims=True)


class StackingFuser(_Fuser):
    """Meta-learner (logistic regression on standardised probabilities) trained on held-out predictions."""

    def __init__(self, text_components: list[str], image_components: list[str], *, seed: int = 42) -> None:
        super().__init__(text_components, image_components)
        self.seed = seed

    def _make(self, names: list[str]) -> _Stack:
        return _Stack(names, self.classes_, self.seed)


class BlendFuser(_Fuser):
    """Weighted average of component probabilities, weights fitted on out-of-fold predictions."""

    def _make(self, names: list[str]) -> _Blend:
        return _Blend(names)

    def _fit_one(self, model: _Blend, probas: dict[str, np.ndarray], y: np.ndarray) -> _Blend:
        return model.fit(probas, np.searchsorted(self.classes_, y))

    def weights(self) -> dict[str, dict[str, float]]:
        """Fitted weights, for products without and with an image."""
        out = {"without_image": dict(zip(self.without_image_.names, map(float, self.without_image_.weights)))}
        if self.with_image_ is not None:
            out["with_image"] = dict(zip(self.with_image_.names, map(float, self.with_image_.weights)))
        return out


PRIOR = "_prior"
"""Name of the stand-in "component" that gives the prior, when no component reads text."""


def fit_fusers(held_out: dict[str, np.ndarray], y: np.ndarray, has_image: np.ndarray, classes: np.ndarray,
               prior: np.ndarray, *, image_only: list[str], seed: int, method: str = "auto",
               ) -> tuple["ClasswiseFuser | GuardedFuser", BlendFuser]:
    """The fuser ``method`` names (``auto``: chosen by out-of-fold log-loss, see :func:`choose_fuser`)
    and the plain blend, learnt from held-out component probabilities (``classes`` columns).

    ``image_only`` names the components that only score products with an image; the others
    serve products without one (the prior stands in when there are none).
    """
    text_like = [n for n in held_out if n not in image_only]
    image_like = [n for n in held_out if n in image_only]
    if not text_like:  # only image components: products without an image get the prior
        text_like, held_out = [PRIOR], {**held_out, PRIOR: np.tile(prior, (len(y), 1))}
    chosen, _ = choose_fuser(method, text_like, image_like, held_out, y, has_image, classes, seed=seed)
    blend = BlendFuser(text_like, image_like).fit(held_out, y, has_image, classes)
    return chosen, blend


def fuse(fuser: _Fuser | None, probas: dict[str, np.ndarray], has_image: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """One distribution per product: the fuser's, or without one the only component's (or the
    plain average of several)."""
    if fuser is None:
        if len(probas) != 1:
            return np.mean(list(probas.values()), axis=0)
        return next(iter(probas.values()))
    if PRIOR in fuser.text_components:
        probas = {**probas, PRIOR: np.tile(prior, (len(has_image), 1))}
    return fuser.predict_proba(probas, has_image)


CANDIDATE_TOP_K = 3
"""The fused top class is always one that some component ranks in its own top ``CANDIDATE_TOP_K``."""


def keep_to_candidates(fused: np.ndarray, components: list[np.ndarray], top: int = CANDIDATE_TOP_K) -> np.ndarray:
    """Stop a fuser from inventing: a class that no component ranks in its own top ``top`` gets at
    most half the fused probability of the best class some component does rank there.

    ``fused`` and each of ``components`` are ``(n, classes)``; rows are renormalised.
    """
    if not components or len(fused) == 0:
        return fused
    top = min(top, fused.shape[1])
    candidate = np.zeros(fused.shape, dtype=bool)
    rows = np.arange(fused.shape[0])[:, None]
    for proba in components:
        candidate[rows, np.argpartition(-proba, top - 1, axis=1)[:, :top]] = True
    best = np.where(candidate, fused, 0.0).max(axis=1, keepdims=True)
    out = np.where(candidate, fused, np.minimum(fused, 0.5 * best))
    total = out.sum(axis=1, keepdims=True)
    degenerate = ~(np.isfinite(total) & (total > 0))[:, 0]
    if degenerate.any():  # every candidate underflowed to 0 (an over-confident component): the components' mean
        out[degenerate] = np.mean(components, axis=0)[degenerate]
        total = out.sum(axis=1, keepdims=True)
    return out / total


def _guard(fused: np.ndarray, fuser: "_Fuser", probas: dict[str, np.ndarray], has_image: np.ndarray) -> np.ndarray:
    """:func:`keep_to_candidates` with the components each product's fuser reads: image components
    only for products with an image (elsewhere they give the prior, which supports nothing)."""
    text = [probas[n] for n in fuser.text_components if n != "_prior"]
    everything = text + [probas[n] for n in fuser.image_components]
    out = fused.copy()
    without = ~has_image if fuser.with_image_ is not None else np.ones(len(fused), dtype=bool)
    if without.any() and text:
        out[without] = keep_to_candidates(fused[without], [p[without] for p in text])
    if (~without).any():
        out[~without] = keep_to_candidates(fused[~without], [p[~without] for p in everything])
    return out


class _Classwise:
    """Class-wise fusion: ``score[k] = sum_m w_m * log p_m[k] + b_k``, then a softmax.

    Each class's score depends only on that class's component probabilities (weights ``w_m >= 0``
    per component, bias ``b_k`` per class), fitted by minimising log-loss (L-BFGS-B, a small L2
    penalty on the biases).
    """

    def __init__(self, names: list[str], bias_penalty: float = 1e-2) -> None:
        self.names, self.bias_penalty = names, bias_penalty

    def _logs(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        return np.log(np.clip(np.stack([probas[n] for n in self.names]), EPS, None))  # (m, n, k)

    def fit(self, probas: dict[str, np.ndarray], y_index: np.ndarray) -> "_Classwise":
        logs = self._logs(probas)
        m, n, k = logs.shape
        truth = np.zeros((n, k))
        truth[np.arange(n), y_index] = 1.0

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = params[:m], params[m:]
            scores = np.tensordot(w, logs, axes=1) + b
            scores -= scores.max(axis=1, keepdims=True)
            log_p = scores - np.log(np.exp(scores).sum(axis=1, keepdims=True))
            value = -(truth * log_p).sum() / n + 0.5 * self.bias_penalty * float(b @ b)
            residual = (np.exp(log_p) - truth) / n
            grad_w = np.einsum("mnk,nk->m", logs, residual)
            grad_b = residual.sum(axis=0) + self.bias_penalty * b
            return value, np.concatenate([grad_w, grad_b])

        start = np.concatenate([np.full(m, 1.0 / m), np.zeros(k)])
        bounds = [(0.0, 10.0)] * m + [(None, None)] * k
        result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
        self.weights, self.biases = result.x[:m], result.x[m:]
        return self

    def predict_proba(self, probas: dict[str, np.ndarray]) -> np.ndarray:
        scores = np.tensordot(self.weights, self._logs(probas), axes=1) + self.biases
        scores -= scores.max(axis=1, keepdims=True)
        out = np.exp(scores)
        return out / out.sum(axis=1, keepdims=True)


class ClasswiseFuser(_Fuser):
    """A fuser that cannot invent: class-wise weighted log-probabilities (see :class:`_Classwise`),
    one model for products with an image, one without, then :func:`keep_to_candidates`."""

    def _make(self, names: list[str]) -> _Classwise:
        return _Classwise(names)

    def _fit_one(self, model: _Classwise, probas: dict[str, np.ndarray], y: np.ndarray) -> _Classwise:
        return model.fit(probas, np.searchsorted(self.classes_, y))

    def predict_proba(self, probas: dict[str, np.ndarray], has_image: np.ndarray) -> np.ndarray:
        return _guard(super().predict_proba(probas, has_image), self, probas, has_image)

    def weights(self) -> dict[str, dict[str, float]]:
        """Fitted component weights, for products without and with an image."""
        out = {"without_image": dict(zip(self.without_image_.names, map(float, self.without_image_.weights)))}
        if self.with_image_ is not None:
            out["with_image"] = dict(zip(self.with_image_.names, map(float, self.with_image_.weights)))
        return out

    def describe(self) -> dict[str, object]:
        return {"kind": "classwise", "weights": self.weights()}


class GuardedFuser:
    """Any fitted fuser, its probabilities passed through :func:`keep_to_candidates`."""

    def __init__(self, inner: _Fuser) -> None:
        self.inner = inner

    def __getattr__(self, name: str):  # text_components, classes_, weights ... of the inner fuser
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def predict_proba(self, probas: dict[str, np.ndarray], has_image: np.ndarray) -> np.ndarray:
        return _guard(self.inner.predict_proba(probas, has_image), self.inner, probas, has_image)

    def describe(self) -> dict[str, object]:
        kind = next(name for name, cls in FUSERS.items() if isinstance(self.inner, cls))
        out: dict[str, object] = {"kind": kind, "guard": f"top-{CANDIDATE_TOP_K} of some component"}
        if hasattr(self.inner, "weights"):
            out["weights"] = self.inner.weights()
        return out


FUSERS = {"stack": StackingFuser, "blend": BlendFuser, "classwise": ClasswiseFuser}
FUSER_CHOICE_FOLDS = 3


def _make_fuser(kind: str, text_components: list[str], image_components: list[str], seed: int) -> _Fuser:
    if kind == "stack":
        return StackingFuser(text_components, image_components, seed=seed)
    return FUSERS[kind](text_components, image_components)


def fused_log_loss(fuser, probas: dict[str, np.ndarray], y: np.ndarray, has_image: np.ndarray) -> float:
    """Mean log-loss of a fitted fuser's probabilities on labelled products."""
    proba = fuser.predict_proba(probas, has_image)
    return float(-np.log(np.clip(proba[np.arange(len(y)), np.searchsorted(fuser.classes_, y)], EPS, None)).mean())


def choose_fuser(
    kind: str,
    text_components: list[str],
    image_components: list[str],
    probas: dict[str, np.ndarray],
    y: np.ndarray,
    has_image: np.ndarray,
    classes: np.ndarray,
    *,
    seed: int = 42,
) -> tuple[ClasswiseFuser | GuardedFuser, dict[str, float]]:
    """The fuser to use, fitted on all of ``probas`` (out-of-fold component probabilities), and
    guarded so it cannot invent (:func:`keep_to_candidates`).

    ``kind`` names one of :data:`FUSERS`, or ``"auto"``: each fuser, guarded, is scored by its own
    out-of-fold log-loss (``FUSER_CHOICE_FOLDS`` stratified folds over these products) and the
    lowest wins (class-wise when there are too few products to split). Returns the fitted fuser
    and the log-loss of each candidate (empty unless ``auto``).
    """

    def fitted(name: str, rows: np.ndarray | slice) -> ClasswiseFuser | GuardedFuser:
        fuser = _make_fuser(name, text_components, image_components, seed).fit(
            {n: p[rows] for n, p in probas.items()}, y[rows], has_image[rows], classes)
        return fuser if isinstance(fuser, ClasswiseFuser) else GuardedFuser(fuser)

    if kind != "auto" and kind not in FUSERS:
        raise ValueError(f"fusion must be 'auto' or one of {', '.join(FUSERS)}, got {kind!r}")
    losses: dict[str, float] = {}
    counts = np.bincount(np.unique(y, return_inverse=True)[1])
    folds = int(min(FUSER_CHOICE_FOLDS, counts.min()))
    if kind == "auto" and folds >= 2:
        splits = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
        for name in FUSERS:
            total = 0.0
            for train, test in splits:
                total += fused_log_loss(fitted(name, train), {n: p[test] for n, p in probas.items()},
                                        y[test], has_image[test]) * len(test)
            losses[name] = total / len(y)
    best = min(losses, key=losses.__getitem__) if losses else ("classwise" if kind == "auto" else kind)
    return fitted(best, slice(None)), losses


MIN_PHOTOS_PER_CLASS = 5
"""A text + image preset trains text only when fewer training products than this many per class,
on average, have a usable photo (e.g. fewer than 135 for the 27 codes)."""


def text_only_reason(n_with_image: int, n_classes: int) -> str | None:
    """Why a text + image model should train on text alone (too few usable photos), or None."""
    needed = MIN_PHOTOS_PER_CLASS * n_classes
    if n_with_image >= needed:
        return None
    return (f"only {n_with_image:,} training products have a usable photo, fewer than {MIN_PHOTOS_PER_CLASS} per "
            f"class on average ({needed:,} for {n_classes} classes): the image components are left out and "
            "the model uses its text components only")
