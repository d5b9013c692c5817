"""The class-wise fuser, the guard that stops any fuser from inventing, and the choice of fuser."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from prodcat.models.fusion import (
    CANDIDATE_TOP_K,
    ClasswiseFuser,
    GuardedFuser,
    StackingFuser,
    choose_fuser,
    keep_to_candidates,
)

CLASSES = np.arange(10, 37)  # 27 codes, like the real taxonomy


def _random_probas(rng: np.random.Generator, n: int, k: int, sharpness: float) -> np.ndarray:
    return rng.dirichlet(np.full(k, sharpness), size=n)


def _top_sets(probas: list[np.ndarray], top: int = CANDIDATE_TOP_K) -> np.ndarray:
    """(n, k) mask: classes some component ranks in its own top ``top``."""
    mask = np.zeros(probas[0].shape, dtype=bool)
    for p in probas:
        mask[np.arange(len(p))[:, None], np.argsort(-p, axis=1)[:, :top]] = True
    return mask


@pytest.mark.parametrize("seed", range(6))
def test_classwise_top_class_is_always_in_some_components_top_three(seed: int) -> None:
    """Property over random probabilities: fitted on one random draw, applied to another."""
    rng = np.random.default_rng(seed)
    n_components = int(rng.integers(2, 4))
    names = [f"c{i}" for i in range(n_components)]
    y = rng.choice(CLASSES, size=400)
    fit = {n: _random_probas(rng, 400, len(CLASSES), float(rng.uniform(0.05, 2.0))) for n in names}
    fuser = ClasswiseFuser(names[:1], names[1:]).fit(fit, y, rng.random(400) < 0.7, CLASSES)
    test = {n: _random_probas(rng, 2000, len(CLASSES), float(rng.uniform(0.05, 2.0))) for n in names}
    has_image = rng.random(2000) < 0.7
    fused = fuser.predict_proba(test, has_image)
    assert np.allclose(fused.sum(axis=1), 1.0)
    top = fused.argmax(axis=1)
    allowed = np.where(has_image[:, None], _top_sets(list(test.values())), _top_sets([test[names[0]]]))
    assert allowed[np.arange(2000), top].all()


def test_udraw_case_a_stacker_cannot_promote_a_class_no_component_supports() -> None:
    """Train a stacker where class 60's evidence is a *low* text and image score, then show it a
    product whose text and image both rank 60 last: unguarded it invents 60; guarded it never does."""
    rng = np.random.default_rng(1)
    classes = np.array([10, 40, 50, 60, 1280, 2280])
    n = 900
    y = rng.choice(classes, size=n)
    text = _random_probas(rng, n, 6, 1.0)
    image = _random_probas(rng, n, 6, 1.0)
    pattern_text, pattern_image = [0.3, 0.3, 0.2, 0.02, 0.1, 0.08], [0.25, 0.3, 0.25, 0.01, 0.1, 0.09]
    text[y == 60], image[y == 60] = pattern_text, pattern_image  # "60 at 2%" comes to mean 60
    probas = {"text": text, "image": image}
    has_image = np.ones(n, dtype=bool)
    raw = StackingFuser(["text"], ["image"]).fit(probas, y, has_image, classes)
    product = {"text": np.array([pattern_text]), "image": np.array([pattern_image])}
    assert classes[raw.predict_proba(product, np.ones(1, bool)).argmax()] == 60  # the stacker invents 60
    guarded, _ = choose_fuser("stack", ["text"], ["image"], probas, y, has_image, classes)
    assert isinstance(guarded, GuardedFuser)
    fused = guarded.predict_proba(product, np.ones(1, bool))[0]
    assert classes[fused.argmax()] in (10, 40, 50)  # some component's top 3
    assert fused[3] <= fused.max() / 2 + 1e-12
    again = pickle.loads(pickle.dumps(guarded))
    np.testing.assert_allclose(again.predict_proba(product, np.ones(1, bool))[0], fused)


@pytest.mark.parametrize("kind", ["classwise", "stack"])
def test_chosen_fusers_round_trip_through_a_safe_bundle(kind: str, tmp_path) -> None:
    from prodcat.persist import load_state, save_state

    rng = np.random.default_rng(5)
    classes = np.array([10, 40, 50, 60])
    y = rng.choice(classes, size=200)
    probas = {"text": _random_probas(rng, 200, 4, 1.0), "image": _random_probas(rng, 200, 4, 1.0)}
    has_image = rng.random(200) < 0.8
    fuser, _ = choose_fuser(kind, ["text"], ["image"], probas, y, has_image, classes)
    save_state({"fuser": fuser}, tmp_path / "state.json")
    loaded = load_state(tmp_path / "state.json")["fuser"]
    np.testing.assert_allclose(loaded.predict_proba(probas, has_image), fuser.predict_proba(probas, has_image))


def test_keep_to_candidates_caps_unsupported_classes_at_half_the_best_supported() -> None:
    fused = np.array([[0.7, 0.1, 0.1, 0.05, 0.05]])
    text = np.array([[0.01, 0.5, 0.3, 0.1, 0.09]])
    out = keep_to_candidates(fused, [text], top=2)
    assert out.argmax() == 1
    assert out[0, 0] == pytest.approx(out[0, 1] / 2)
    assert out.sum() == pytest.approx(1.0)


def test_classwise_score_of_a_class_depends_only_on_that_class() -> None:
    """Change the probabilities of other classes: the fused odds between two classes whose own
    probabilities stayed the same do not move (every class stays a candidate with 3 classes)."""
    rng = np.random.default_rng(2)
    classes = np.array([1, 2, 3])
    y = rng.choice(classes, size=300)
    probas = {"text": _random_probas(rng, 300, 3, 1.0), "image": _random_probas(rng, 300, 3, 1.0)}
    fuser = ClasswiseFuser(["text"], ["image"]).fit(probas, y, np.ones(300, bool), classes)
    a = {"text": np.array([[0.2, 0.3, 0.5]]), "image": np.array([[0.1, 0.6, 0.3]])}
    b = {"text": np.array([[0.2, 0.3, 0.1]]), "image": np.array([[0.1, 0.6, 0.05]])}
    pa, pb = (fuser.predict_proba(p, np.ones(1, bool))[0] for p in (a, b))
    assert pa[0] / pa[1] == pytest.approx(pb[0] / pb[1])


def test_classwise_learns_to_trust_the_informative_component() -> None:
    rng = np.random.default_rng(3)
    classes = np.array([10, 40, 50, 60])
    y = rng.choice(classes, size=800)
    good = _random_probas(rng, 800, 4, 1.0)
    good[np.arange(800), np.searchsorted(classes, y)] += 1.0
    good /= good.sum(axis=1, keepdims=True)
    noise = _random_probas(rng, 800, 4, 1.0)
    fuser = ClasswiseFuser(["text"], ["image"]).fit({"text": good, "image": noise}, y, np.ones(800, bool), classes)
    weights = fuser.weights()["with_image"]
    assert weights["text"] > 5 * weights["image"]


def test_auto_choice_scores_every_fuser_and_keeps_the_lowest_log_loss() -> None:
    rng = np.random.default_rng(4)
    classes = np.array([10, 40, 50])
    y = rng.choice(classes, size=600)
    text = _random_probas(rng, 600, 3, 1.0)
    text[np.arange(600), np.searchsorted(classes, y)] += 0.8
    text /= text.sum(axis=1, keepdims=True)
    probas = {"text": text, "image": _random_probas(rng, 600, 3, 1.0)}
    fuser, losses = choose_fuser("auto", ["text"], ["image"], probas, y, rng.random(600) < 0.8, classes)
    assert set(losses) == {"stack", "blend", "classwise"}
    assert fuser.describe()["kind"] == min(losses, key=losses.__getitem__)


def test_unknown_fuser_is_refused() -> None:
    with pytest.raises(ValueError, match="fusion must be"):
        choose_fuser("median", ["text"], [], {"text": np.ones((4, 2)) / 2}, np.array([1, 2, 1, 2]),
                     np.zeros(4, bool), np.array([1, 2]))


def test_keep_to_candidates_never_returns_nan_when_every_candidate_underflowed() -> None:
    text = np.array([[0.7, 0.2, 0.1, 0.0], [0.1, 0.2, 0.3, 0.4]])
    fused = np.array([[0.0, 0.0, 0.0, 1.0], [0.1, 0.2, 0.3, 0.4]])  # row 0: all mass on an unsupported class
    out = keep_to_candidates(fused, [text], top=1)
    assert np.isfinite(out).all() and np.allclose(out.sum(axis=1), 1.0)
    assert out[0].argmax() == 0  # the component's mean, not an invented class
    assert out[1].argmax() == 3
