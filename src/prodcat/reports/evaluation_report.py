"""The evaluation report: one self-contained ``report.html`` plus its PNG figures."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from prodcat.evaluation import Evaluation
from prodcat.reports import plots
from prodcat.reports.confidence import (
    coverage_curve,
    expected_calibration_error,
    prediction_confidence,
    reliability_table,
    threshold_for_accuracy,
)
from prodcat.reports.html import Page, escape, thumbnail_data_uri
from prodcat.taxonomy import name_of

GALLERY_SIZE = 24
N_WEAKEST = 5
ACCURACY_TARGETS = (0.95, 0.98)


def _pct(value: float, digits: int = 1) -> str:
    return f"{100 * value:.{digits}f}%"


def describe_confusion(true: int, pred: int, count: int, share: float) -> str:
    """A confused pair in words: ``"2705 Livre neuf predicted as 10 Livre d'occasion: 34 products, 9% of 2705"``."""
    noun = "product" if count == 1 else "products"
    return f"{true} {name_of(true)} predicted as {pred} {name_of(pred)}: {count} {noun}, {100 * share:.0f}% of {true}"


def describe_threshold(target: float, hit: dict | None) -> str:
    """The coverage threshold for an accuracy target in words."""
    if hit is None:
        return f"{_pct(target, 0)} accuracy: not reachable at any confidence threshold."
    return (
        f"{_pct(target, 0)} accuracy: auto-classify products whose confidence is at least {hit['threshold']:.3f}; "
        f"that covers {_pct(hit['coverage'])} of products ({hit['n_auto']}) at {_pct(hit['accuracy'])} accuracy, "
        f"and sends the other {_pct(1 - hit['coverage'])} to human review."
    )


def _resolve_classes(proba: np.ndarray, classes: Sequence[int] | None, evaluation: Evaluation) -> list[int]:
    if classes is not None:
        classes = [int(c) for c in classes]
    else:
        classes = [int(c) for c in evaluation.confusion.columns]
        if proba.shape[1] != len(classes):
            raise ValueError(
                f"proba has {proba.shape[1]} columns but the evaluation has {len(classes)} classes; pass classes="
            )
    if proba.shape[1] != len(classes):
        raise ValueError(f"proba has {proba.shape[1]} columns but {len(classes)} classes were given")
    return classes


def _headline_section(page: Page, evaluation: Evaluation, components: dict[str, Evaluation] | None) -> None:
    page.section("Headline metrics", "headline")
    page.cards(
        {
            "weighted F1": f"{evaluation.weighted_f1:.4f}",
            "macro F1": f"{evaluation.macro_f1:.4f}",
            "accuracy": f"{evaluation.accuracy:.4f}",
            "products (n)": f"{evaluation.n:,}",
        }
    )
    if components:
        page.heading("Per component")
        rows = pd.DataFrame(
            [
                {"model": name, "weighted F1": ev.weighted_f1, "macro F1": ev.macro_f1, "accuracy": ev.accuracy, "n": ev.n}
                for name, ev in components.items()
            ]
        )
        best = rows["weighted F1"].idxmax()
        page.table(rows, formats={c: ".4f" for c in ("weighted F1", "macro F1", "accuracy")},
                   row_classes=["best" if i == best else "" for i in rows.index])


def _per_class_section(page: Page, evaluation: Evaluation, components: dict[str, Evaluation] | None) -> None:
    page.section("Per class", "per-class")
    table = evaluation.per_class.rename(columns={"name": "name (French)", "f1": "F1"}).copy()
    if components:
        for name, ev in components.items():
            table[f"F1 {name}"] = table["code"].map(dict(zip(ev.per_class["code"], ev.per_class["f1"])))
    table = table.sort_values(["F1", "support"], ascending=[True, False], kind="stable").reset_index(drop=True)
    scored = table.index[table["support"] > 0][:N_WEAKEST]
    page.paragraph(
        f"Sorted by F1, weakest first; the {len(scored)} weakest classes are highlighted. "
        "Precision: share of products predicted in the class that belong to it; recall: share of the class found."
    )
    formats = {c: ".3f" for c in table.columns if c in ("precision", "recall") or c.startswith("F1")}
    page.table(table, formats=formats, row_classes=["weak" if i in set(scored) else "" for i in table.index])


def _confusion_section(page: Page, evaluation: Evaluation, out_dir: Path) -> None:
    page.section("Confusions", "confusions")
    fig = plots.confusion_heatmap(evaluation.confusion)
    png = plots.save_png(fig, out_dir / "confusion_matrix.png", dpi=90)
    pairs = evaluation.top_confusions(10)
    page.heading("Most confused pairs")
    if pairs:
        page.bullets([describe_confusion(*pair) for pair in pairs])
    else:
        page.paragraph("No misclassified products.")
    page.image(png, alt="normalised confusion matrix",
               caption="Each row is a true class; cells give the share of its products predicted as each column "
                       "(percentages; cells under 1% left blank).")


def _gallery_section(
    page: Page,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    products: pd.DataFrame | None,
    confidence: np.ndarray | None,
    proba_true: np.ndarray | None,
) -> None:
    page.section("Misclassified products", "gallery")
    wrong = np.flatnonzero(y_true != y_pred)
    if len(wrong) == 0:
        page.paragraph("Every product was classified correctly.")
        return
    if confidence is not None:
        wrong = wrong[np.argsort(-confidence[wrong], kind="stable")]
        order = "most confident mistakes first"
    else:
        order = "in input order"
    shown = wrong[:GALLERY_SIZE]
    page.paragraph(f"{len(shown)} of {len(wrong):,} misclassified products, {order}.")
    titles = _column(products, "designation")
    paths = _column(products, "image_path")
    tiles = []
    for i in shown:
        uri = thumbnail_data_uri(paths[i]) if paths is not None else None
        picture = (f'<img src="{uri}" alt="product image">' if uri
                   else '<div class="placeholder">no image</div>')
        title = str(titles[i]) if titles is not None and isinstance(titles[i], str) and titles[i] else f"product #{i}"
        if len(title) > 140:
            title = title[:137] + "..."
        lines = [
            picture,
            f'<div class="title">{escape(title)}</div>',
            f'<div class="true">true: {escape(y_true[i])} {escape(name_of(y_true[i]))}</div>',
            f'<div class="pred">predicted: {escape(y_pred[i])} {escape(name_of(y_pred[i]))}</div>',
        ]
        if confidence is not None:
            extra = f", p(true) {proba_true[i]:.2f}" if proba_true is not None and not np.isnan(proba_true[i]) else ""
            lines.append(f"<div>confidence {confidence[i]:.2f}{extra}</div>")
        tiles.append(f'<div class="tile">{"".join(lines)}</div>')
    page.raw(f'<div class="gallery">{"".join(tiles)}</div>')


def _confidence_section(page: Page, confidence: np.ndarray, correct: np.ndarray, out_dir: Path) -> None:
    page.section("Confidence", "confidence")
    table = reliability_table(confidence, correct)
    ece = expected_calibration_error(table)
    gap = float(np.mean(confidence) - np.mean(correct))
    tendency = "over-confident" if gap > 0.01 else "under-confident" if gap < -0.01 else "about right on average"
    page.heading("Calibration")
    page.paragraph(
        f"Expected calibration error (ECE, 10 bins): {ece:.3f}. Mean confidence {np.mean(confidence):.3f} "
        f"vs accuracy {np.mean(correct):.3f}: the model is {tendency}."
    )
    png = plots.save_png(plots.reliability_diagram(table, ece), out_dir / "reliability.png")
    page.image(png, alt="reliability curve", width=650,
               caption="Accuracy of the products in each confidence bin; a calibrated model follows the diagonal.")
    curve = coverage_curve(confidence, correct)
    hits = {target: threshold_for_accuracy(curve, target) for target in ACCURACY_TARGETS}
    page.heading("Coverage with human review")
    page.paragraph(
        "Products whose confidence is below a threshold go to human review; the rest are classified automatically."
    )
    page.bullets([describe_threshold(target, hit) for target, hit in hits.items()])
    png = plots.save_png(plots.coverage_plot(curve, hits), out_dir / "coverage.png")
    page.image(png, alt="coverage curve", width=700,
               caption="Accuracy of the auto-classified products against the share of products auto-classified.")


def _column(products: pd.DataFrame | None, name: str) -> np.ndarray | None:
    if products is None or name not in products.columns:
        return None
    return products[name].to_numpy(dtype=object)


def write_evaluation_report(
    out_dir: str | Path,
    evaluation: Evaluation,
    *,
    y_true: Sequence[int],
    y_pred: Sequence[int],
    proba: np.ndarray | None = None,
    classes: Sequence[int] | None = None,
    products: pd.DataFrame | None = None,
    components: dict[str, Evaluation] | None = None,
    title: str = "prodcat evaluation",
    model_info: dict | None = None,
    warnings: Sequence[str] = (),
) -> Path:
    """Write ``report.html`` (self-contained) and its PNGs into ``out_dir``; return the HTML path.

    ``proba`` columns follow ``classes`` (default: the evaluation's classes); without ``proba`` the
    calibration and coverage sections are left out. ``products`` rows follow ``y_true`` and may hold
    ``designation``, ``description`` and ``image_path`` for the gallery of mistakes. ``warnings``
    (e.g. from :func:`prodcat.evaluation.fusion_warnings`) are shown under the headline metrics.
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    if products is not None and len(products) != len(y_true):
        raise ValueError(f"products has {len(products)} rows but there are {len(y_true)} labels")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    confidence = proba_true = None
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        if len(proba) != len(y_true):
            raise ValueError(f"proba has {len(proba)} rows but there are {len(y_true)} labels")
        class_list = _resolve_classes(proba, classes, evaluation)
        confidence = prediction_confidence(proba, y_pred, class_list)
        column = {c: i for i, c in enumerate(class_list)}
        true_col = np.array([column.get(int(t), -1) for t in y_true])
        proba_true = np.where(true_col >= 0, proba[np.arange(len(proba)), np.maximum(true_col, 0)], np.nan)

    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    page = Page(title, subtitle=f"{evaluation.n:,} products, {len(evaluation.per_class)} classes; written {stamp}")
    if model_info:
        page.section("Model", "model")
        page.table(pd.DataFrame({"setting": list(model_info), "value": [str(v) for v in model_info.values()]}))
    _headline_section(page, evaluation, components)
    for warning in warnings:
        page.paragraph(f"Warning: {warning}.")
    _per_class_section(page, evaluation, components)
    _confusion_section(page, evaluation, out_dir)
    _gallery_section(page, y_true, y_pred, products, confidence, proba_true)
    if confidence is not None:
        _confidence_section(page, confidence, y_true == y_pred, out_dir)
    else:
        page.section("Confidence", "confidence")
        page.paragraph("No class probabilities were given: calibration and coverage are not shown.", note=True)
    return page.write(out_dir / "report.html")
