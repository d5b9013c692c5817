"""The evaluation report: report.html with its sections, numbers and PNGs, self-contained."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodcat.evaluation import evaluate_predictions
from prodcat.reports.evaluation_report import describe_confusion, write_evaluation_report
from prodcat.taxonomy import CODES


def synthetic_predictions(n: int, seed: int = 0):
    """Labels over the 27 codes, noisy probabilities and argmax predictions (~70% accurate)."""
    rng = np.random.default_rng(seed)
    codes = np.array(CODES)
    y = codes[np.arange(n) % len(codes)]
    logits = rng.normal(size=(n, len(codes)))
    logits[np.arange(n), np.searchsorted(codes, y)] += rng.normal(2.5, 1.0, size=n)
    logits[y == 2705, np.searchsorted(codes, 10)] += 2.5  # a confusable pair
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    return y, codes[proba.argmax(axis=1)], proba, codes


def assert_self_contained(html: str) -> None:
    assert 'src="http' not in html and "src='http" not in html
    assert 'href="http' not in html and "url(http" not in html
    assert "<link" not in html and "<script" not in html
    assert "@import" not in html and "@font-face" not in html


def write_jpeg(path: Path, color=(200, 40, 40)) -> str:
    Image.new("RGB", (60, 40), color).save(path, format="JPEG")
    return str(path)


@pytest.fixture(scope="module")
def sample():
    y, pred, proba, codes = synthetic_predictions(540)
    return y, pred, proba, codes, evaluate_predictions(y, pred, classes=codes)


@pytest.fixture(scope="module")
def full_report(sample, tmp_path_factory):
    """One report with every section (27 classes), written once for the module."""
    y, pred, proba, codes, ev = sample
    folder = tmp_path_factory.mktemp("report")
    image = write_jpeg(folder / "one.jpg")
    products = pd.DataFrame({
        "designation": [f"Produit <{i}> & co" for i in range(len(y))],
        "image_path": [image if i % 2 else None for i in range(len(y))],
    })
    text_ev = evaluate_predictions(y, np.where(np.arange(len(y)) % 5 == 0, 10, pred), classes=codes)
    path = write_evaluation_report(
        folder / "out", ev, y_true=y, y_pred=pred, proba=proba, classes=codes, products=products,
        components={"text": text_ev, "fusion": ev}, model_info={"preset": "fast"},
    )
    return path, text_ev


def test_report_holds_sections_numbers_and_pngs(full_report, sample):
    y, pred, proba, codes, ev = sample
    path, text_ev = full_report
    assert path.name == "report.html"
    html = path.read_text(encoding="utf-8")
    for png in ("confusion_matrix.png", "reliability.png", "coverage.png"):
        data = (path.parent / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
    for section in ("Headline metrics", "Per component", "Per class", "Most confused pairs", "Misclassified products",
                    "Calibration", "Coverage with human review"):
        assert section in html
    assert f"{ev.weighted_f1:.4f}" in html and f"{ev.macro_f1:.4f}" in html and f"{ev.accuracy:.4f}" in html
    assert f"{text_ev.weighted_f1:.4f}" in html
    assert "Livre neuf" in html and "Déguisement" in html  # French names, UTF-8
    true, predicted, count, share = ev.top_confusions(1)[0]
    assert describe_confusion(true, predicted, count, share).replace("'", "&#x27;") in html
    assert "95% accuracy" in html and "98% accuracy" in html
    assert html.count('class="tile"') == min(24, int((y != pred).sum()))
    assert "data:image/jpeg;base64," in html and "no image" in html
    assert "Produit &lt;" in html and "<1>" not in html  # titles are escaped
    assert html.count("data:image/png;base64,") == 3
    assert_self_contained(html)


def test_weakest_classes_are_highlighted_first(full_report, sample):
    ev = sample[-1]
    html = full_report[0].read_text(encoding="utf-8")
    weakest = ev.per_class.sort_values("f1", kind="stable").iloc[0]
    rows = re.findall(r'<tr class="weak"><td class="num">(\d+)</td>', html)
    assert len(rows) == 5 and int(rows[0]) == weakest["code"]


def test_report_without_proba_or_products(tmp_path):
    y, pred, _, _ = synthetic_predictions(200)
    keep = np.isin(y, [10, 40, 50, 60, 2705]) & np.isin(pred, [10, 40, 50, 60, 2705])
    ev = evaluate_predictions(y[keep], pred[keep])
    html = write_evaluation_report(tmp_path, ev, y_true=y[keep], y_pred=pred[keep]).read_text(encoding="utf-8")
    assert "No class probabilities were given" in html
    assert "Calibration" not in html and not (tmp_path / "coverage.png").exists()
    assert (tmp_path / "confusion_matrix.png").exists()
    gallery = html.split('id="gallery"')[1].split('id="confidence"')[0]
    assert "product #" in gallery and "confidence" not in gallery
    assert_self_contained(html)


def test_perfect_predictions(tmp_path):
    y = np.array([10, 40, 50, 10])
    ev = evaluate_predictions(y, y)
    proba = np.eye(3)[[0, 1, 2, 0]]
    html = write_evaluation_report(tmp_path, ev, y_true=y, y_pred=y, proba=proba).read_text(encoding="utf-8")
    assert "Every product was classified correctly." in html
    assert "No misclassified products." in html
    assert "1.0000" in html


def test_unreachable_accuracy_is_said_in_words(tmp_path):
    y = np.array([10, 40, 10, 40])
    pred = np.array([40, 10, 10, 10])  # 25% accurate, the correct one is the least confident
    proba = np.array([[0.1, 0.9], [0.8, 0.2], [0.6, 0.4], [0.7, 0.3]])
    ev = evaluate_predictions(y, pred)
    html = write_evaluation_report(tmp_path, ev, y_true=y, y_pred=pred, proba=proba).read_text(encoding="utf-8")
    assert "95% accuracy: not reachable" in html and "98% accuracy: not reachable" in html


def test_bad_inputs_are_refused(tmp_path, sample):
    y, pred, proba, codes, ev = sample
    with pytest.raises(ValueError, match="predictions"):
        write_evaluation_report(tmp_path, ev, y_true=y, y_pred=pred[:-1])
    with pytest.raises(ValueError, match="products has 3 rows"):
        write_evaluation_report(tmp_path, ev, y_true=y, y_pred=pred, products=pd.DataFrame({"designation": ["a"] * 3}))
    with pytest.raises(ValueError, match="columns"):
        write_evaluation_report(tmp_path, ev, y_true=y, y_pred=pred, proba=proba[:, :5])


def test_report_on_27_classes_and_10000_rows(tmp_path):
    y, pred, proba, codes = synthetic_predictions(10_000, seed=1)
    ev = evaluate_predictions(y, pred, classes=codes)
    products = pd.DataFrame({"designation": [f"produit {i}" for i in range(len(y))], "image_path": None})
    html = write_evaluation_report(tmp_path, ev, y_true=y, y_pred=pred, proba=proba, classes=codes,
                                   products=products).read_text(encoding="utf-8")
    assert f"{ev.weighted_f1:.4f}"[:5] in html and "10,000" in html
