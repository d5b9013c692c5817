"""Review thresholds: measured at training, stored in the bundle, applied by `predict --proba/--top`,
the prediction service (REST API, app) and the library."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from prodcat.cli import main
from prodcat.data.io import Dataset, LoadReport
from prodcat.data.sample import build_demo_table
from prodcat.errors import ProdcatError
from prodcat.predictor import ProductClassifier
from prodcat.review import ReviewPolicy, prediction_table, review_thresholds
from prodcat.serve.service import PredictionService, ProductInput
from prodcat.taxonomy import name_of
from prodcat.training import train_and_save


def test_thresholds_are_the_lowest_confidence_reaching_each_precision() -> None:
    confidence = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([True, True, True, False, True, False])
    review = review_thresholds(confidence, correct, targets=(0.75, 0.95, 0.999))
    assert review["n"] == 6
    # 0.75: the top 5 are 4/5 = 0.8 correct; the top 6 only 4/6
    assert review["targets"]["0.75"]["threshold"] == 0.6 and review["targets"]["0.75"]["n_auto"] == 5
    assert review["targets"]["0.95"]["threshold"] == 0.8 and review["targets"]["0.95"]["coverage"] == 0.5
    assert review["targets"]["0.999"]["threshold"] == 0.8  # the top 3 are all correct


def test_policy_reads_metrics_and_flags_low_confidence() -> None:
    metrics = {"validation": {"review": {"n": 50, "targets": {"0.95": {"threshold": 0.7}, "0.98": None}}}}
    policy = ReviewPolicy.from_metrics(metrics)
    assert policy.available and policy.threshold == 0.7 and policy.measured_on == 50 and policy.split == "validation"
    assert policy.needs_review([0.2, 0.7, 0.9]).tolist() == [True, False, False]
    strict = ReviewPolicy.from_metrics(metrics, 0.98)  # no threshold reached 98%: everything goes to review
    assert math.isinf(strict.threshold) and strict.needs_review([0.999]).tolist() == [True]
    assert "no confidence threshold reached 98%" in strict.verdict(True)
    unknown = ReviewPolicy.from_metrics({})
    assert not unknown.available and unknown.needs_review([0.1]) is None
    with pytest.raises(ProdcatError, match="0.95, 0.98, not 0.9$"):
        ReviewPolicy.from_metrics(metrics, 0.9)
    with pytest.raises(ProdcatError, match="between 0 and 1"):
        ReviewPolicy.from_metrics(metrics, 95)


def test_prediction_table_has_codes_names_probabilities_and_flags() -> None:
    proba = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    policy = ReviewPolicy(0.95, 0.6)
    table = prediction_table(proba, [10, 2583, 50], pd.Index([7, 9]), top=2, policy=policy)
    assert list(table.columns) == ["prdtypecode", "name", "probability", "needs_review", "code_2", "name_2",
                                   "probability_2"]
    assert table.index.tolist() == [7, 9]
    assert table["prdtypecode"].tolist() == [2583, 10] and table["code_2"].tolist() == [50, 2583]
    assert table["name"].tolist() == [name_of(2583), name_of(10)]
    assert table["probability"].tolist() == [0.7, 0.5] and table["needs_review"].tolist() == [False, True]
    assert prediction_table(proba, [10, 2583, 50], [0, 1])["needs_review"].isna().all()  # no policy: unknown
    with pytest.raises(ProdcatError, match="--top must be between 1 and 3"):
        prediction_table(proba, [10, 2583, 50], [0, 1], top=4)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A text model trained by train_and_save (validation share 25%) and a generic CSV to predict."""
    root = tmp_path_factory.mktemp("review")
    table = build_demo_table(n_train=400, n_test=40, seed=3)
    train, test = table[table["split"] == "train"], table[table["split"] == "test"]
    X = train[["designation", "description", "productid", "imageid"]].assign(image_path=None)
    result = train_and_save(Dataset(X, train["prdtypecode"], LoadReport(len(X))), root / "model", preset="fast",
                            valid_size=0.25, runs_root=root / "runs", progress=False, report=False)
    csv = root / "products.csv"
    test[["designation", "description"]].to_csv(csv)
    return result, csv


def test_training_stores_the_thresholds_in_the_bundle(trained) -> None:
    result, _ = trained
    model = ProductClassifier.load(result.model_dir)
    review = model.metrics_["validation"]["review"]
    assert review["n"] == result.n_valid and set(review["targets"]) == {"0.95", "0.98"}
    policy = ReviewPolicy.for_model(model)
    assert policy.measured_on == result.n_valid
    hit = review["targets"]["0.95"]
    assert policy.threshold == (hit["threshold"] if hit else math.inf)


def test_predict_top_writes_names_probabilities_and_review_flags(trained, tmp_path, capsys) -> None:
    result, csv = trained
    out = tmp_path / "shop.csv"
    assert main(["predict", "--model", str(result.model_dir), "--x", str(csv), "--text-col", "designation",
                 "--description-col", "description", "--out", str(out), "--top", "3"]) == 0
    table = pd.read_csv(out, index_col=0)
    assert list(table.columns[:4]) == ["prdtypecode", "name", "probability", "needs_review"]
    assert {"code_3", "name_3", "probability_3"} <= set(table.columns)
    assert (table["probability"] >= table["probability_2"]).all() and (table["probability_2"] >= table["probability_3"]).all()
    assert table["name"].tolist() == [name_of(c) for c in table["prdtypecode"]]
    model = ProductClassifier.load(result.model_dir)
    policy = ReviewPolicy.for_model(model)
    products = pd.read_csv(csv, index_col=0).fillna("")
    confidence = model.predict_proba(products).max(axis=1)
    assert table["needs_review"].tolist() == policy.needs_review(confidence).tolist()
    assert "need review" in capsys.readouterr().out
    # --proba alone: the best class only
    assert main(["predict", "--model", str(result.model_dir), "--x", str(csv), "--text-col", "designation",
                 "--out", str(tmp_path / "p.csv"), "--proba"]) == 0
    assert list(pd.read_csv(tmp_path / "p.csv", index_col=0).columns) == ["prdtypecode", "name", "probability",
                                                                          "needs_review"]


@pytest.mark.parametrize("extra, message", [(["--top", "0"], "--top must be between 1"),
                                            (["--proba", "--review-target", "0.9"], "not 0.9")])
def test_predict_bad_options_end_in_one_error_line(trained, tmp_path, capsys, extra, message) -> None:
    result, csv = trained
    assert main(["predict", "--model", str(result.model_dir), "--x", str(csv), "--text-col", "designation",
                 "--out", str(tmp_path / "x.csv"), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_service_answers_carry_needs_review(trained) -> None:
    result, _ = trained
    service = PredictionService.from_path(result.model_dir)
    answers = service.predict([ProductInput("Piscine tubulaire ronde"), ProductInput("objet")], k=2)
    expected = service.review.needs_review([service.model.predict_proba(pd.DataFrame(
        {"designation": [t], "description": [""]})).max() for t in ("Piscine tubulaire ronde", "objet")])
    assert [a["needs_review"] for a in answers] == expected.tolist()


def test_training_refits_on_all_rows_and_says_where_metrics_come_from(trained) -> None:
    result, _ = trained
    model = ProductClassifier.load(result.model_dir)
    assert result.refitted and model.n_train_ == result.n_train + result.n_valid
    assert model.metrics_["refit"]["n_train"] == result.n_train + result.n_valid
    assert model.metrics_["validation"]["n"] == result.n_valid  # still the validation split's figures
    assert json.loads((result.run_dir / "config.json").read_text())["refitted_on_all"] is True
    assert "refitted on all" in result.summary()


@pytest.mark.parametrize("kwargs", [{"refit": False}, {"time_limit": 600}])
def test_no_refit_when_asked_or_under_a_time_budget(kwargs, tmp_path) -> None:
    table = build_demo_table(n_train=200, n_test=20, seed=4)
    X = table[["designation", "description"]].assign(image_path=None)
    result = train_and_save(Dataset(X, table["prdtypecode"], LoadReport(len(X))), preset="fast", valid_size=0.25,
                            runs_root=tmp_path / "runs", progress=False, report=False, **kwargs)
    assert not result.refitted and result.model.n_train_ == result.n_train
    assert "refit" not in result.model.metrics_
