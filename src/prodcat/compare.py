"""Leaderboard across models: train each named model on one split and score it on the other.

A model name is a preset (``fast``, ``image``, ``balanced``, ``best``), a text model
(``linear_svc``, ``logistic_regression``, ``neural_embedding``, ``hierarchical`` ...: trained
text-only), ``image:logreg`` / ``image:mlp`` / ``image:lda`` (one head on the ``image`` preset's first network's
embeddings) or ``image:pixels`` (the seeds' colour-histogram baseline), each alone. Multi-component models also report each of their
components and both fusers, so one run shows whether fusion beats the single modalities.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from prodcat.components import image_component_spec, text_model_names
from prodcat.data.io import Dataset
from prodcat.data.split import stratified_split
from prodcat.errors import ProdcatError
from prodcat.evaluation import evaluate_predictions
from prodcat.predictor import ProductClassifier
from prodcat.presets import PRESETS, PresetSpec, load_preset

COLUMNS = ["model", "modality", "weighted_f1", "macro_f1", "accuracy", "fit_s", "predict_ms_per_1000"]


def model_names() -> list[str]:
    """Every name :func:`build_model` accepts."""
    return [*PRESETS, *text_model_names(), "image:logreg", "image:mlp", "image:lda", "image:pixels"]


def build_model(name: str, *, seed: int = 42, cache_dir: str | None = None, time_limit: float | None = None,
                progress: bool = False, engine: str = "local", address: str | None = None) -> ProductClassifier:
    """An unfitted :class:`ProductClassifier` for a leaderboard name (``engine``, ``address``: its)."""
    common = dict(seed=seed, cache_dir=cache_dir, time_limit=time_limit, progress=progress, engine=engine,
                  address=address)
    if name in PRESETS:
        return ProductClassifier(name, **common)
    if name in text_model_names():
        return ProductClassifier("fast", text_model=name, **common)
    if name.startswith("image:"):  # one image model alone, on the image preset's first network
        image = load_preset("image")
        backbone = getattr(image.component("image"), "network", None) or image.backbone
        single = PresetSpec(name=name, components=(image_component_spec("image", name.split(":", 1)[1]),),
                            backbone=backbone)
        return ProductClassifier(single, **common)
    raise ProdcatError(f"unknown model {name!r}; choose from {', '.join(model_names())}")


def compare_models(dataset: Dataset, names: list[str], *, test_size: float = 0.2, seed: int = 42,
                   cache_dir: str | None = None, time_limit: float | None = None,
                   echo: Callable[[str], None] | None = None, engine: str = "local",
                   address: str | None = None) -> pd.DataFrame:
    """Train every model on the same stratified split; one row per model (and per component and
    fuser of multi-component models), best weighted F1 first. ``engine``, ``address``: where the
    independent fits of multi-component models run (see :class:`~prodcat.predictor.ProductClassifier`)."""
    from prodcat.engines import check_engine

    check_engine(engine, address)
    if dataset.y is None:
        raise ProdcatError("comparing models needs labels")
    unknown = [n for n in names if n not in model_names()]
    if unknown:
        raise ProdcatError(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(model_names())}")
    y = dataset.y.to_numpy()
    split = stratified_split(y, valid_size=0.0, test_size=test_size, seed=seed)
    train_X, train_y = dataset.X.iloc[split.train], y[split.train]
    test_X, test_y = dataset.X.iloc[split.test], y[split.test]
    if len(test_y) == 0 or len(np.unique(train_y)) < 2:
        raise ProdcatError(f"comparing models needs a training part with at least two product codes and a "
                           f"non-empty test part; {len(y)} labelled products with --test-size {test_size} give "
                           f"{len(train_y)} to train on and {len(test_y)} to test on")
    rows = []
    for name in names:
        if echo:
            echo(f"Training {name} on {len(train_y):,} products")
        model = build_model(name, seed=seed, cache_dir=cache_dir, time_limit=time_limit, engine=engine,
                            address=address)
        started = time.perf_counter()
        model.fit(train_X, train_y)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        predicted = model.predict(test_X)
        predict_ms = (time.perf_counter() - started) / max(len(test_y), 1) * 1e6
        e = evaluate_predictions(test_y, predicted, classes=model.classes_)
        modality = "+".join(sorted(set(model.component_reads.values())))
        rows.append({"model": name, "modality": modality, "weighted_f1": e.weighted_f1, "macro_f1": e.macro_f1,
                     "accuracy": e.accuracy, "fit_s": fit_seconds, "predict_ms_per_1000": predict_ms})
        if len(model.component_names) > 1:
            board = model.leaderboard(test_X, test_y)
            board["model"] = name + " / " + board["model"]
            rows.extend(board[COLUMNS].to_dict("records"))
        if echo:
            echo(f"  {name}: weighted F1 {e.weighted_f1:.4f} (fit {fit_seconds:.1f} s)")
    return pd.DataFrame(rows, columns=COLUMNS).sort_values("weighted_f1", ascending=False, ignore_index=True)


def to_markdown(board: pd.DataFrame) -> str:
    """The leaderboard as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in board.itertuples(index=False):
        lines.append(f"| {row.model} | {row.modality} | {row.weighted_f1:.4f} | {row.macro_f1:.4f} | "
                     f"{row.accuracy:.4f} | {row.fit_s:.1f} | {row.predict_ms_per_1000:.0f} |")
    return "\n".join(lines)


def save_leaderboard(board: pd.DataFrame, out: str | Path) -> list[Path]:
    """Write leaderboard.csv and leaderboard.md into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv, md = out / "leaderboard.csv", out / "leaderboard.md"
    board.to_csv(csv, index=False, float_format="%.4f")
    md.write_text(to_markdown(board) + "\n", encoding="utf-8")
    return [csv, md]
