"""Matplotlib figures for the reports, drawn with the Agg canvas (no pyplot, no display needed)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from prodcat.taxonomy import label

BLUE = "#2f6fb0"
RED = "#cf222e"
GREY = "#8c959f"


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on an Agg canvas."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Figure, path: str | Path | None = None, *, dpi: int = 100) -> bytes:
    """Render ``fig`` to PNG bytes, also writing them to ``path`` when given."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    data = buffer.getvalue()
    if path is not None:
        Path(path).write_bytes(data)
    return data


def confusion_heatmap(
    confusion: pd.DataFrame, *, title: str = "Confusion matrix, % of each true class (rows: true class (support), columns: predicted)"
) -> Figure:
    """Row-normalised confusion matrix with ``code - name`` labels and percentages in the cells.

    Margins are computed from the label lengths instead of a layout engine: with 27 classes and
    hundreds of cell labels, constrained layout would double the drawing time.
    """
    counts = confusion.to_numpy().astype(float)
    support = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, support, out=np.zeros_like(counts), where=support > 0)
    n = len(confusion)
    font = 9 if n <= 30 else 7
    x_labels = [label(c) for c in confusion.columns]
    y_labels = [f"{label(c)} ({int(s)})" for c, s in zip(confusion.index, support[:, 0])]
    char = font * 0.62 / 72  # average glyph width in inches
    left = 0.3 + char * max(len(t) for t in y_labels)
    bottom = 0.4 + char * max(len(t) for t in x_labels) * np.sin(np.radians(60))
    top, right = 0.55, 1.0
    side = max(3.0, 0.34 * n)  # 27 classes: ~12.7 in wide, shown 1:1 at 90 dpi in a ~1220 px page
    width, height = left + side + right, bottom + side + top
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / width, bottom / height, side / width, side / height))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest", aspect="auto")
    ax.set_xticks(range(n), x_labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=font)
    ax.set_yticks(range(n), y_labels, fontsize=font)
    ax.set_title(title, fontsize=font + 2)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="#e6e6e6", linewidth=0.5)
    ax.tick_params(which="minor", length=0)
    cell_font = max(6, font - 2)
    for i, j in zip(*np.nonzero(share >= 0.01)):
        value = share[i, j]
        ax.text(j, i, f"{100 * value:.0f}", ha="center", va="center", fontsize=cell_font,
                color="white" if value > 0.55 else "black")
    bar_axes = fig.add_axes(((left + side + 0.2) / width, (bottom + side * 0.25) / height, 0.18 / width,
                             side * 0.5 / height))
    colorbar = fig.colorbar(image, cax=bar_axes, format=lambda v, _: f"{100 * v:.0f}%")
    colorbar.ax.tick_params(labelsize=font)
    return fig


def reliability_diagram(table: pd.DataFrame, ece: float) -> Figure:
    """Accuracy per confidence bin against the diagonal, with bin counts underneath."""
    fig = new_figure(6.5, 6.0)
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    filled = table[table["count"] > 0]
    width = float((table["bin_high"] - table["bin_low"]).iloc[0]) if len(table) else 0.1
    top.plot([0, 1], [0, 1], linestyle="--", color=GREY, label="perfect calibration")
    top.bar(filled["bin_low"], filled["accuracy"], width=width, align="edge", color=BLUE, alpha=0.8,
            edgecolor="white", label="accuracy in bin")
    top.plot(filled["mean_confidence"], filled["accuracy"], "o-", color=RED, markersize=4,
             label="accuracy vs mean confidence")
    top.set_ylim(0, 1)
    top.set_xlim(0, 1)
    top.set_ylabel("accuracy")
    top.set_title(f"Reliability (ECE = {ece:.3f})")
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(filled["bin_low"], filled["count"], width=width, align="edge", color=GREY, edgecolor="white")
    bottom.set_ylabel("products")
    bottom.set_xlabel("confidence of the predicted class")
    return fig


def coverage_plot(curve: pd.DataFrame, targets: dict[float, dict | None]) -> Figure:
    """Accuracy of auto-classified products against the share auto-classified."""
    fig = new_figure(7.0, 5.0)
    ax = fig.add_subplot()
    ax.plot(100 * curve["coverage"], 100 * curve["accuracy"], color=BLUE, linewidth=2)
    for target, hit in targets.items():
        ax.axhline(100 * target, color=GREY, linestyle=":", linewidth=1)
        if hit is not None:
            ax.plot(100 * hit["coverage"], 100 * hit["accuracy"], "o", color=RED)
            ax.annotate(f"{100 * target:.0f}%: threshold {hit['threshold']:.2f}, {100 * hit['coverage']:.0f}% auto",
                        (100 * hit["coverage"], 100 * hit["accuracy"]), textcoords="offset points",
                        xytext=(8, -14), fontsize=8)
    ax.set_xlim(0, 100)
    low = float(curve["accuracy"].min()) if len(curve) else 0.0
    ax.set_ylim(max(0.0, 100 * low - 5), 100.5)
    ax.set_xlabel("products auto-classified (%)  - the rest go to human review")
    ax.set_ylabel("accuracy of auto-classified products (%)")
    ax.set_title("Coverage: accuracy vs share auto-classified")
    ax.grid(alpha=0.3)
    return fig


def class_distribution(counts: pd.Series, expected_share: dict[int, float] | None = None) -> Figure:
    """Horizontal bars of products per class (``code - name``), optional expected share as ticks."""
    counts = counts.sort_values()
    total = max(int(counts.sum()), 1)
    fig = new_figure(9.0, max(3.0, 0.32 * len(counts) + 1.2))
    ax = fig.add_subplot()
    positions = np.arange(len(counts))
    ax.barh(positions, counts.to_numpy(), color=BLUE)
    ax.set_yticks(positions, [label(c) for c in counts.index], fontsize=9)
    for pos, value in zip(positions, counts.to_numpy()):
        ax.text(value, pos, f" {int(value)} ({100 * value / total:.1f}%)", va="center", fontsize=8)
    if expected_share:
        expected = [expected_share.get(int(c), np.nan) * total for c in counts.index]
        ax.plot(expected, positions, "|", color=RED, markersize=12, markeredgewidth=2,
                label="official training distribution")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlim(0, counts.max() * 1.25 if len(counts) else 1)
    ax.set_xlabel("products")
    ax.set_title("Products per class")
    return fig


def histogram(values: Sequence[float] | np.ndarray, *, title: str, xlabel: str, bins: int = 50,
              clip_quantile: float | None = 0.99) -> Figure:
    """Histogram of ``values``; the long tail above ``clip_quantile`` is folded into the last bin.

    Integer values spanning fewer than ``bins`` distinct numbers get one bar per integer.
    """
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    fig = new_figure(6.0, 3.6)
    ax = fig.add_subplot()
    note = ""
    integer = bool(len(values)) and np.all(values == np.round(values))
    if len(values) and clip_quantile is not None:
        cap = float(np.quantile(values, clip_quantile))
        cap = float(np.ceil(cap)) if integer else cap
        if cap < values.max():
            note = f"\n(values above {cap:g} counted in the last bar)"
            values = np.minimum(values, cap)
    edges: int | np.ndarray = bins
    if integer and values.max() - values.min() + 1 <= bins:
        edges = np.arange(values.min(), values.max() + 2) - 0.5
    ax.hist(values, bins=edges, color=BLUE, edgecolor="white", linewidth=0.3)
    ax.set_title(title + note, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("products")
    ax.grid(alpha=0.3)
    return fig


def barh(values: pd.Series, *, title: str, xlabel: str, as_percent: bool = False) -> Figure:
    """Horizontal bars of a labelled series (largest on top)."""
    values = values.sort_values()
    fig = new_figure(6.5, max(2.5, 0.3 * len(values) + 1.2))
    ax = fig.add_subplot()
    positions = np.arange(len(values))
    shown = values.to_numpy() * (100 if as_percent else 1)
    ax.barh(positions, shown, color=BLUE)
    ax.set_yticks(positions, [str(i) for i in values.index], fontsize=9)
    for pos, value in zip(positions, shown):
        ax.text(value, pos, f" {value:.1f}%" if as_percent else f" {value:g}", va="center", fontsize=8)
    ax.set_xlim(0, max(shown.max(), 1e-9) * 1.2 if len(shown) else 1)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    return fig


def image_grid(rows: Sequence[tuple[str, Sequence[np.ndarray | None]]], *, title: str,
               thumb_inches: float = 1.0, label_inches: float = 2.4) -> Figure:
    """One row per ``(row_label, images)``, labels on the left; ``None`` images are drawn as grey tiles."""
    ncols = max((len(images) for _, images in rows), default=1) or 1
    nrows = max(len(rows), 1)
    gap, top = 0.08, 0.45
    width = label_inches + ncols * (thumb_inches + gap) + gap
    height = top + nrows * (thumb_inches + gap) + gap
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.text(0.5, 1 - 0.5 * top / height, title, ha="center", va="center", fontsize=11)
    for r, (row_label, images) in enumerate(rows):
        bottom = height - top - (r + 1) * (thumb_inches + gap)
        fig.text((label_inches - 0.1) / width, (bottom + thumb_inches / 2) / height, row_label,
                 ha="right", va="center", fontsize=9)
        for c, image in enumerate(images):
            left = label_inches + c * (thumb_inches + gap)
            ax = fig.add_axes((left / width, bottom / height, thumb_inches / width, thumb_inches / height))
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color("#d0d7de")
            if image is None:
                ax.add_patch(Rectangle((0, 0), 1, 1, transform=ax.transAxes, color="#eaeef2"))
                ax.text(0.5, 0.5, "unreadable", ha="center", va="center", fontsize=7, color="#57606a",
                        transform=ax.transAxes)
            else:
                ax.imshow(image, interpolation="antialiased")
    return fig
