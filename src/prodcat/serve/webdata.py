"""What the web demonstrator shows, computed without Streamlit (so it is testable on its own).

The app's settings travel in environment variables (set by :func:`prodcat.serve.launch.run_webapp`);
this module finds the model's evaluation report, loads example products from a dataset CSV
(with their photos and labels when they can be found) and shapes predictions into chart data.
"""

from __future__ import annotations

import base64
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from prodcat.errors import DataError
from prodcat.image.io import DEFAULT_MAX_PIXELS

ENV_MODEL = "PRODCAT_APP_MODEL"
ENV_DATA = "PRODCAT_APP_DATA"
ENV_REPORT = "PRODCAT_APP_REPORT"
REPORT_NAME = "report.html"
SOURCES = ("combined", "text", "image")
SOURCE_COLOURS = ("#1f4e79", "#4f9bd9", "#f0a030")


@dataclass(frozen=True)
class AppConfig:
    """The demonstrator's settings: model bundle, optional dataset CSV, optional report page."""

    model_dir: str
    data: str | None = None
    report: str | None = None

    @classmethod
    def from_environment(cls) -> "AppConfig":
        model_dir = os.environ.get(ENV_MODEL, "")
        return cls(model_dir, os.environ.get(ENV_DATA) or None, os.environ.get(ENV_REPORT) or None)

    def environment(self) -> dict[str, str]:
        """The variables that hand these settings to the Streamlit script."""
        env = {ENV_MODEL: str(Path(self.model_dir).resolve())}
        if self.data:
            env[ENV_DATA] = str(Path(self.data).resolve())
        if self.report:
            env[ENV_REPORT] = str(Path(self.report).resolve())
        return env


def report_candidates(model_dir: str | Path) -> list[Path]:
    """Where a model's evaluation report may be: a run folder keeps the bundle in ``run/model``
    and the report in ``run/validation``; a ``prodcat demo`` folder keeps its bundle in
    ``demo/model`` and the test-set evaluation in ``demo/evaluation``."""
    model_dir = Path(model_dir)
    return [model_dir.parent / "validation" / REPORT_NAME, model_dir.parent / "evaluation" / REPORT_NAME,
            model_dir / "validation" / REPORT_NAME, model_dir / REPORT_NAME]


def find_report(model_dir: str | Path, report: str | Path | None = None) -> Path | None:
    """The report to show: ``report`` when given (must exist), else the first existing candidate."""
    if report is not None:
        path = Path(report)
        if not path.is_file():
            raise DataError("evaluation report not found", path=path)
        return path
    return next((p for p in report_candidates(model_dir) if p.is_file()), None)


def _split_of(x_path: Path) -> str | None:
    match = re.search(r"(train|test|valid)", x_path.stem, re.IGNORECASE)
    return match.group(1).lower() if match else None


def guess_images_dir(x_path: str | Path) -> Path | None:
    """The photo folder of an official-format CSV: ``images/image_train`` or ``image_train`` beside it."""
    x_path = Path(x_path)
    split = _split_of(x_path)
    if split is None:
        return None
    for folder in (x_path.parent / "images" / f"image_{split}", x_path.parent / f"image_{split}"):
        if folder.is_dir():
            return folder
    return None


def guess_labels_path(x_path: str | Path) -> Path | None:
    """The label file of an ``X_*.csv``: ``Y_*`` with the same suffix, or the only ``Y_{split}*.csv``."""
    x_path = Path(x_path)
    if not x_path.name.startswith("X_"):
        return None
    same = x_path.with_name("Y_" + x_path.name[2:])
    if same.is_file():
        return same
    split = _split_of(x_path)
    matches = sorted(x_path.parent.glob(f"Y_{split}*.csv")) if split else []
    return matches[0] if len(matches) == 1 else None


@dataclass
class Examples:
    """The first products of a dataset, their labels (None when unknown) and where they came from."""

    products: pd.DataFrame
    labels: pd.Series | None
    source: Path
    images_dir: Path | None


def load_examples(path: str | Path, n: int = 5) -> Examples:
    """The first ``n`` products of an official ``X_*.csv`` (or a CSV with ``designation``/``text``),
    loaded and validated by :mod:`prodcat.data.io`, with photos and labels found beside it."""
    from prodcat.data.io import load_generic_csv, load_official

    path = Path(path)
    header = pd.read_csv(path, nrows=0).columns if path.is_file() else []
    images_dir = guess_images_dir(path)
    if {"designation", "productid", "imageid"} <= set(header):
        dataset = load_official(path, guess_labels_path(path), images_dir)
    elif "designation" in header or "text" in header:
        text_col = "designation" if "designation" in header else "text"
        dataset = load_generic_csv(path, text_col, "prdtypecode" if "prdtypecode" in header else None,
                                   description_col="description" if "description" in header else None)
        images_dir = None
    elif not path.is_file():
        raise DataError("dataset file not found", path=path)
    else:
        raise DataError("expected an official X_*.csv (designation, description, productid, imageid) or a CSV "
                        "with a designation or text column", path=path)
    labels = dataset.y.iloc[:n] if dataset.y is not None else None
    return Examples(dataset.X.iloc[:n], labels, path, images_dir)


def read_image(path: object) -> bytes | None:
    """The bytes of a product photo, None when there is none or it cannot be read."""
    if not isinstance(path, str) or not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError:
        return None


def thumbnail_uri(data: bytes | None, size: int = 96) -> str | None:
    """A small JPEG of a photo as a ``data:`` URI (for image columns in tables); None if unreadable."""
    if not data:
        return None
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > DEFAULT_MAX_PIXELS:
                return None
            img.draft("RGB", (size, size))
            small = img.convert("RGB")
            small.thumbnail((size, size))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def chart_frame(answer: dict[str, Any]) -> pd.DataFrame:
    """Long table for the top-k bar chart: one row per (class, source) with its probability.

    ``source`` is ``combined`` (the model's answer) and each modality the model used.
    """
    rows = []
    for rank, item in enumerate(answer["top"], start=1):
        label = f"{item['name']} ({item['code']})"
        rows.append({"rank": rank, "label": label, "source": "combined", "probability": item["probability"]})
        for modality, p in item["by_modality"].items():
            rows.append({"rank": rank, "label": label, "source": modality, "probability": p})
    return pd.DataFrame(rows, columns=["rank", "label", "source", "probability"])


def top_table(answer: dict[str, Any]) -> pd.DataFrame:
    """The top-k as a table: code, name, probability and one column per modality."""
    modalities = list(answer["modalities"])
    rows = [{"code": item["code"], "name": item["name"], "probability": item["probability"],
             **{m: item["by_modality"].get(m) for m in modalities}} for item in answer["top"]]
    return pd.DataFrame(rows, columns=["code", "name", "probability", *modalities])


def metrics_source(metrics: dict[str, Any]) -> str:
    """Where the headline metrics were measured, in words: the split and its number of rows."""
    if isinstance(metrics.get("validation"), dict):
        n = metrics["validation"].get("n")
        rows = f"{n:,} products" if isinstance(n, int) else "products"
        if isinstance(metrics.get("refit"), dict):
            return (f"measured on the validation split ({rows}) before the model was refitted on all the data, "
                    f"validation included")
        return f"measured on the validation split: {rows} held out from training"
    return "measured at training (split not recorded)" if headline_metrics(metrics) else "no metrics recorded"


def headline_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Weighted F1, macro F1 and accuracy recorded at training (validation first), when present."""
    source = metrics.get("validation") if isinstance(metrics.get("validation"), dict) else metrics
    out = {}
    for key in ("weighted_f1", "macro_f1", "accuracy"):
        value = source.get(key) if isinstance(source, dict) else None
        if isinstance(value, (int, float)):
            out[key] = float(value)
    return out
