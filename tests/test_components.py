"""The component contract: typed specs checked at preset load, the registry, and a component
added from outside prodcat (this module) trained through a preset given as data."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import make_pipeline

from prodcat.components import (
    ComponentSpec,
    TextReadingComponent,
    check,
    registered_kinds,
    register_component,
)
from prodcat.data.sample import build_demo_table
from prodcat.errors import ModelError
from prodcat.predictor import ProductClassifier
from prodcat.presets import PRESETS, PresetSpec, load_preset


@dataclass(frozen=True)
class WordCountSpec(ComponentSpec):
    """A toy: word counts of the designation -> multinomial naive Bayes with smoothing ``alpha``."""

    kind: str = "test_word_counts"
    alpha: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.alpha > 0, "alpha", f"must be positive, got {self.alpha!r}")


class _DesignationNB:
    """Reads the products frame's designation column (what a text-reading component gets)."""

    def __init__(self, alpha: float) -> None:
        self.pipeline = make_pipeline(CountVectorizer(), MultinomialNB(alpha=alpha))

    def fit(self, products: pd.DataFrame, y: np.ndarray) -> "_DesignationNB":
        self.pipeline.fit(products["designation"], y)
        self.classes_ = self.pipeline.classes_
        return self

    def predict_proba(self, products: pd.DataFrame) -> np.ndarray:
        return self.pipeline.predict_proba(products["designation"])


@register_component("test_word_counts")
class WordCountComponent(TextReadingComponent):
    spec_class = WordCountSpec
    trusted = (_DesignationNB,)  # its fitted model may be stored in a (code-free) bundle

    def build(self, time_limit: float | None) -> Any:
        return _DesignationNB(self.spec.alpha)


TOY_PRESET = {
    "name": "toy",
    "components": [{"name": "counts", "kind": "test_word_counts", "alpha": 0.5},
                   {"name": "text", "kind": "text", "model": "linear"}],
    "fusion": {"method": "blend", "folds": 2},
}


@pytest.fixture(scope="module")
def split() -> tuple[pd.DataFrame, pd.DataFrame]:
    table = build_demo_table(n_train=300, n_test=80, seed=7)
    return table[table["split"] == "train"], table[table["split"] == "test"]


def test_a_component_registered_here_trains_through_a_preset_given_as_data(split, tmp_path: Path) -> None:
    train, test = split
    assert "test_word_counts" in registered_kinds()
    model = ProductClassifier(TOY_PRESET, progress=False).fit(train, train["prdtypecode"])
    assert model.component_names == ["counts", "text"]
    assert model.component_kinds == {"counts": "test_word_counts", "text": "text"}
    assert not model.reads_images and model.reads_text
    proba = model.predict_proba(test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    board = model.leaderboard(test, test["prdtypecode"])
    counts = board.loc[board["model"] == "counts (test_word_counts)", "weighted_f1"].item()
    assert counts > 0.3  # 27 classes: chance is under 0.1
    model.save(tmp_path / "bundle")
    loaded = ProductClassifier.load(tmp_path / "bundle")
    np.testing.assert_allclose(loaded.predict_proba(test), proba)
    assert loaded.spec == model.spec


def test_presets_load_as_typed_specs() -> None:
    for name in PRESETS:
        spec = load_preset(name)
        assert isinstance(spec, PresetSpec) and spec.name == name
        assert load_preset(spec.to_dict()) == spec  # plain data round trip
    assert load_preset("balanced").reads_images and not load_preset("fast").reads_images


@pytest.mark.parametrize(("change", "message"), [
    (lambda p: p["components"][0].update(alpah=2.0), r"preset 'toy', component 'counts': alpah: unknown key"),
    (lambda p: p["components"][0].update(alpha=-1.0), r"preset 'toy', component 'counts': alpha: must be positive"),
    (lambda p: p["components"][1].update(model="linaer"), r"component 'text': model: unknown text model 'linaer'"),
    (lambda p: p["components"][1].update(kind="txet"), r"component 'text': unknown component kind 'txet'"),
    (lambda p: p["components"][1].update(budget=3), r"budget: must be a fraction"),
    (lambda p: p["components"][1].pop("name"), r"name: missing"),
    (lambda p: p.update(fusoin=None), r"preset 'toy': fusoin: unknown key"),
    (lambda p: p["fusion"].update(kind="stack"), r"preset 'toy': fusion.kind: unknown key"),
    (lambda p: p["fusion"].update(method="vote"), r"fusion.method: must be one of auto, classwise, stack, blend"),
    (lambda p: p["fusion"].update(refit=["nope"]), r"fusion.refit: names no component: nope"),
    (lambda p: p["components"].append({"name": "text", "kind": "text"}), r"text repeats"),
    (lambda p: p["components"].append({"name": "photo", "kind": "image"}), r"backbone: components read images"),
    (lambda p: p["components"].append({"name": "deep", "kind": "deep_text", "params": {"epoch": 2}}),
     r"params.epoch: not a parameter"),
])
def test_bad_presets_name_the_preset_and_the_key(change, message: str) -> None:
    preset = json.loads(json.dumps(TOY_PRESET))
    change(preset)
    with pytest.raises(ModelError, match=message):
        load_preset(preset)


def test_unknown_override_is_refused_before_training(split) -> None:
    train, _ = split
    with pytest.raises(ModelError, match="unknown text model 'nope'"):
        ProductClassifier("fast", text_model="nope", progress=False).fit(train, train["prdtypecode"])


def test_the_estimator_face_survives_clone_and_grid_search(split) -> None:
    train, _ = split
    model = ProductClassifier(TOY_PRESET, progress=False)
    assert clone(model).get_params()["preset"] == TOY_PRESET
    search = GridSearchCV(ProductClassifier("fast", progress=False),
                          {"text_model": ["linear_svc", "logistic_regression"]}, cv=2, scoring="f1_weighted")
    search.fit(train, train["prdtypecode"])
    assert search.best_params_["text_model"] in ("linear_svc", "logistic_regression")
    assert search.best_score_ > 0.3


def test_image_heads_read_one_network_of_a_composite_backbone() -> None:
    from prodcat.components import Inputs, make_component
    from prodcat.image.backbone import network_columns

    spec = load_preset("image")
    assert spec.backbone == "lite1-ms+lite2-ms"
    heads = {c.name: c for c in spec.components if c.kind == "image"}
    assert {c.network for c in heads.values()} == {"lite1-ms", "lite2-ms"}
    vectors = np.arange(2 * 3632, dtype=np.float32).reshape(2, 3632)
    inputs = Inputs(pd.DataFrame({"designation": ["a", "b"]}), vectors, np.ones(2, bool), backbone=spec.backbone)
    head = make_component(heads["image_lite2"])
    np.testing.assert_array_equal(head.rows(inputs, np.array([True, False])),
                                  vectors[:1, network_columns(spec.backbone, "lite2-ms")])
    assert inputs.take(np.array([1])).backbone == spec.backbone


def test_another_backbone_turns_network_heads_into_whole_embedding_heads() -> None:
    spec = load_preset("image")
    single = spec.with_backbone("lite0")
    assert [(c.name, getattr(c, "network", None)) for c in single.components] == [("image", None), ("photo_text", None)]
    assert single.backbone == "lite0" and single.fusion is not None
    assert spec.with_backbone("lite1-ms+lite2-ms") == spec
    alone = load_preset({"name": "one", "backbone": "lite1-ms+lite2-ms", "fusion": {"method": "auto", "folds": 5},
                         "components": [{"name": "a", "kind": "image", "model": "lda", "network": "lite1-ms"},
                                        {"name": "b", "kind": "image", "model": "lda", "network": "lite2-ms"}]})
    assert alone.with_backbone("lite0").fusion is None  # one head left: nothing to fuse
    with pytest.raises(ModelError, match=r"components.a.network: .*no network 'lite1-ms'"):
        load_preset({"name": "bad", "backbone": "lite0",
                     "components": [{"name": "a", "kind": "image", "model": "lda", "network": "lite1-ms"}]})
