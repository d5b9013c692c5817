"""Late and early fusion: fusers on synthetic probabilities, and the balanced preset on demo images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _state import assert_no_pickle, state_round_trip

from prodcat.data.io import load_official
from prodcat.data.sample import make_demo_dataset
from prodcat.models.fusion import BlendFuser, StackingFuser
from prodcat.plan import out_of_fold
from prodcat.predictor import ProductClassifier

CLASSES = np.array([10, 40, 50])


def _noisy(truth: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Probabilities that favour the true class with some strength, else random."""
    logits = rng.normal(size=(len(truth), len(CLASSES)))
    logits[np.arange(len(truth)), np.searchsorted(CLASSES, truth)] += strength
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def synthetic():
    rng = np.random.default_rng(0)
    y = rng.choice(CLASSES, size=1200)
    has_image = rng.random(1200) < 0.8
    probas = {"text": _noisy(y, 1.2, rng), "image": _noisy(y, 1.2, rng)}
    return y, has_image, probas


def _accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    return float((CLASSES[proba.argmax(axis=1)] == y).mean())


@pytest.mark.parametrize("fuser_class", [StackingFuser, BlendFuser])
def test_fusion_beats_each_component_on_complementary_signals(synthetic, fuser_class) -> None:
    y, has_image, probas = synthetic
    train, test = slice(0, 800), slice(800, None)
    fuser = fuser_class(["text"], ["image"]).fit({k: v[train] for k, v in probas.items()}, y[train],
                                                 has_image[train], CLASSES)
    fused = fuser.predict_proba({k: v[test] for k, v in probas.items()}, has_image[test])
    np.testing.assert_allclose(fused.sum(axis=1), 1.0, atol=1e-9)
    with_image = has_image[test]
    assert _accuracy(fused[with_image], y[test][with_image]) > _accuracy(probas["text"][test][with_image],
                                                                         y[test][with_image]) + 0.03


def test_products_without_image_ignore_the_image_component(synthetic) -> None:
    y, has_image, probas = synthetic
    fuser = StackingFuser(["text"], ["image"]).fit(probas, y, has_image, CLASSES)
    scrambled = {"text": probas["text"], "image": probas["image"][::-1]}
    no_image = np.zeros(len(y), bool)
    np.testing.assert_allclose(fuser.predict_proba(probas, no_image), fuser.predict_proba(scrambled, no_image))


def test_blend_weights_lie_on_the_simplex(synthetic) -> None:
    y, has_image, probas = synthetic
    weights = BlendFuser(["text"], ["image"]).fit(probas, y, has_image, CLASSES).weights()["with_image"]
    assert abs(sum(weights.values()) - 1) < 1e-9 and all(w >= 0 for w in weights.values())


def test_out_of_fold_never_scores_a_product_with_a_model_that_saw_it() -> None:
    y = np.repeat(CLASSES, 20)
    seen: list[tuple[np.ndarray, np.ndarray]] = []

    def fit_predict(train: np.ndarray, held_out: np.ndarray) -> dict[str, np.ndarray]:
        seen.append((train, held_out))
        return {"m": np.full((len(held_out), len(CLASSES)), 1 / 3)}

    out = out_of_fold(lambda splits: [fit_predict(*split) for split in splits], y, folds=4, seed=0)
    assert out["m"].shape == (len(y), len(CLASSES))
    assert all(not set(train) & set(held_out) for train, held_out in seen)
    assert sorted(np.concatenate([held_out for _, held_out in seen]).tolist()) == list(range(len(y)))


# --- the balanced preset on demo products with images ------------------------------------------


@pytest.fixture(scope="module")
def demo_images(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("fusion-demo")
    paths = make_demo_dataset(root, n_train=320, n_test=80, seed=5, progress=False)
    train = load_official(paths.x_train, paths.y_train, paths.images_train)
    test = load_official(paths.x_test, paths.y_test, paths.images_test)
    return train, test, str(tmp_path_factory.getbasetemp() / "prodcat-image-models")


@pytest.fixture(scope="module")
def balanced(demo_images) -> ProductClassifier:
    train, _, cache = demo_images
    return ProductClassifier("balanced", cache_dir=cache, progress=False).fit(train.X, train.y)


def test_balanced_leaderboard_lists_components_and_fusions(balanced, demo_images) -> None:
    _, test, _ = demo_images
    board = balanced.leaderboard(test.X, test.y)
    assert {f"fusion: {balanced.fuser_.describe()['kind']}", "fusion: blend"} <= set(board["model"])
    assert any(board["model"].str.startswith("text")) and any(board["model"].str.startswith("image"))
    assert {"weighted_f1", "macro_f1", "accuracy", "fit_s", "predict_ms_per_1000", "modality"} <= set(board.columns)
    assert board["weighted_f1"].is_monotonic_decreasing


def test_balanced_falls_back_to_text_without_images(balanced, demo_images) -> None:
    _, test, _ = demo_images
    without = test.X.assign(image_path=None)
    assert not balanced.component_proba(without).has_image.any()
    proba = balanced.predict_proba(without)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert set(balanced.explain(without.head(2))[0].components) == {"text"}


def test_image_bytes_match_image_files(balanced, demo_images) -> None:
    _, test, _ = demo_images
    rows = test.X[test.X["image_path"].notna()].head(3)
    from_files = balanced.predict_proba(rows)
    in_memory = rows.assign(image_bytes=[Path(p).read_bytes() for p in rows["image_path"]], image_path=None)
    np.testing.assert_allclose(balanced.predict_proba(in_memory), from_files, atol=1e-5)


def test_bad_image_bytes_fall_back_to_text(balanced, demo_images) -> None:
    _, test, _ = demo_images
    rows = test.X.head(2).assign(image_path=None, image_bytes=[b"not an image", None])
    assert not balanced.component_proba(rows).has_image.any()


def test_balanced_round_trips_through_a_bundle(balanced, demo_images, tmp_path: Path) -> None:
    _, test, _ = demo_images
    balanced.save(tmp_path / "bundle")
    loaded = ProductClassifier.load(tmp_path / "bundle")
    np.testing.assert_allclose(loaded.predict_proba(test.X), balanced.predict_proba(test.X))


def test_compare_shows_fusion_and_pixel_baseline(demo_images, tmp_path: Path) -> None:
    from prodcat.compare import compare_models, save_leaderboard

    train, _, cache = demo_images
    board = compare_models(train, ["fast", "image:pixels", "balanced"], cache_dir=cache)
    assert {"fast", "image:pixels", "balanced"} <= set(board["model"])
    assert any(board["model"].str.startswith("balanced / fusion: "))
    assert board.loc[board["model"] == "image:pixels", "modality"].item() == "image"
    csv, md = save_leaderboard(board, tmp_path)
    assert csv.exists() and "| balanced |" in md.read_text()


def test_early_fusion_uses_both_modalities_and_saves(tmp_path: Path) -> None:
    import joblib

    from prodcat.data.sample import build_demo_table
    from prodcat.models.early_fusion import EarlyFusionClassifier

    table = build_demo_table(n_train=300, n_test=60, seed=2)
    rng = np.random.default_rng(0)
    codes = np.unique(table["prdtypecode"])
    centres = rng.normal(size=(len(codes), 32))
    vectors = (centres[np.searchsorted(codes, table["image_code"])] + rng.normal(0, 0.5, (len(table), 32))
               ).astype(np.float32)
    has_image = table["has_image"].to_numpy()
    train = (table["split"] == "train").to_numpy()
    model = EarlyFusionClassifier(text_dim=32, hidden_size=64, epochs=5, seed=0).fit(
        table[train], table["prdtypecode"][train], vectors=vectors[train], has_image=has_image[train])
    proba = model.predict_proba(table[~train], vectors=vectors[~train], has_image=has_image[~train])
    assert proba.shape == (int((~train).sum()), len(model.classes_))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    joblib.dump(model, tmp_path / "m.joblib")
    again = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_allclose(again.predict_proba(table[~train], vectors=vectors[~train],
                                                   has_image=has_image[~train]), proba, atol=1e-6)
    safe = state_round_trip(model, tmp_path / "state.npz")  # the code-free format of bundles
    np.testing.assert_allclose(safe.predict_proba(table[~train], vectors=vectors[~train],
                                                  has_image=has_image[~train]), proba, atol=1e-6)


def test_hierarchical_predicts_through_groups() -> None:
    from prodcat.data.sample import build_demo_table
    from prodcat.models.hierarchical import HierarchicalTextClassifier
    from prodcat.taxonomy import group_of

    table = build_demo_table(n_train=400, n_test=80, seed=4)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    model = HierarchicalTextClassifier().fit(train, train["prdtypecode"])
    proba = model.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    predicted = model.predict(test)
    assert (predicted == test["prdtypecode"].to_numpy()).mean() > 0.5
    groups_right = np.mean([group_of(p) == group_of(t) for p, t in zip(predicted, test["prdtypecode"])])
    assert groups_right >= (predicted == test["prdtypecode"].to_numpy()).mean()
    assert model.top_terms(model.clean(test.head(1))[0], int(predicted[0]))


def test_holdout_fusion_refits_only_the_named_components(demo_images, monkeypatch) -> None:
    from prodcat import presets
    from prodcat.components import ImageHeadComponent, TfidfTextComponent
    from prodcat.data.split import validation_split

    train, test, cache = demo_images
    monkeypatch.setitem(presets.PRESETS, "holdout_refit", {
        "description": "test preset", "backbone": "lite0",
        "components": [{"name": "text", "kind": "text", "model": "linear"},
                       {"name": "image", "kind": "image", "model": "logreg"}],
        "fusion": {"method": "stack", "folds": 0, "holdout": 0.25, "refit": ["text"]},
    })
    calls: list[tuple[str, int]] = []
    for component_class in (TfidfTextComponent, ImageHeadComponent):
        def spy(self, inputs, y, *, time_limit=None, real=component_class.fit):
            calls.append((self.name, len(y)))
            return real(self, inputs, y, time_limit=time_limit)

        monkeypatch.setattr(component_class, "fit", spy)
    model = ProductClassifier("holdout_refit", cache_dir=cache, progress=False).fit(train.X, train.y)
    n, part = len(train.y), len(validation_split(train.y, 0.25, seed=42)[0])
    assert 0.7 * n < part < 0.8 * n
    assert calls == [("text", part), ("image", part), ("text", n)]
    assert len(model.component_names) == 2
    board = model.leaderboard(test.X, test.y)
    assert board.loc[board["model"] == "fusion: stack", "modality"].item() == "text+image"


@pytest.mark.slow
def test_best_preset_trains_every_component_within_its_budget(demo_images) -> None:
    train, test, cache = demo_images
    model = ProductClassifier("best", cache_dir=cache, time_limit=60, progress=False).fit(train.X, train.y)
    assert set(model.component_names) == {"text", "neural_simple", "minilm", "image", "early_fusion"}
    assert model.fit_seconds_ < 60 + 90  # budgets bound the deep components; TF-IDF and image heads are quick
    board = model.leaderboard(test.X, test.y)
    fused = board.loc[board["model"] == f"fusion: {model.fuser_.describe()['kind']}"]
    assert fused["weighted_f1"].item() > 0.5  # chance is about 0.04 on 27 classes
    assert fused["modality"].item() == "text+image"


def test_a_best_like_preset_saves_a_code_free_bundle_that_predicts_the_same(demo_images, tmp_path) -> None:
    """Every torch-based component of ``best`` (and use and neural_embedding), tiny and in one epoch, saved
    in a bundle free of pickle and loaded back with the same probabilities."""
    import copy
    import json

    from prodcat.presets import PRESETS

    tiny = {"neural_simple": {"hidden_size": 16, "epochs": 1},
            "minilm": {"epochs": 1, "max_length": 16, "batch_size": 32, "frozen_layers": 5, "evaluations": 1},
            "use": {"hidden_size": 16, "epochs": 2, "max_chars": 60},
            "early_fusion": {"hidden_size": 16, "text_dim": 16, "epochs": 2}}
    preset = {"name": "best-tiny", **copy.deepcopy(PRESETS["best"]), "time_limit": None}
    for component in preset["components"]:
        if component["name"] in tiny:
            component["params"] = tiny[component["name"]]
    preset["components"].append({"name": "neural_embedding", "kind": "deep_text", "model": "neural_embedding",
                                 "params": {"embedding_dim": 8, "hidden_size": 4, "epochs": 1}})
    preset["components"].append({"name": "use", "kind": "deep_text", "model": "use", "params": tiny["use"]})
    train, test, cache = demo_images
    model = ProductClassifier(preset, cache_dir=cache, progress=False).fit(train.X, train.y)
    assert set(model.component_names) == {"text", "neural_simple", "minilm", "use", "image", "early_fusion",
                                          "neural_embedding"}
    products = test.X.head(40)
    proba = model.component_proba(products)
    assert proba.has_image.any() and not proba.has_image.all()
    fused = model.fused_proba(proba)
    bundle = model.save(tmp_path / "bundle")
    manifest = json.loads((bundle / "prodcat.json").read_text())
    assert_no_pickle(bundle / manifest["state"]["file"])
    loaded = ProductClassifier.load(bundle, cache_dir=cache)
    again = loaded.component_proba(products)
    for name in model.component_names:
        np.testing.assert_allclose(again.probas[name], proba.probas[name], rtol=1e-5, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(loaded.fused_proba(again), fused, rtol=1e-5, atol=1e-6)
