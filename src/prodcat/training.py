"""Train-and-save and evaluate-to-folder workflows shared by the CLI, the demo and the API."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prodcat.data.io import Dataset
from prodcat.data.split import stratified_split
from prodcat.evaluation import Evaluation
from prodcat.predictor import ProductClassifier
from prodcat.presets import DEFAULT_PRESET, PRESETS


def default_preset(dataset: Dataset) -> str:
    """``balanced`` (text + image) when the data has images and that preset exists, else ``fast``."""
    has_images = "image_path" in dataset.X and dataset.X["image_path"].notna().any()
    return "balanced" if has_images and "balanced" in PRESETS else DEFAULT_PRESET


@dataclass
class TrainResult:
    """What :func:`train_and_save` did."""

    model: ProductClassifier
    out: Path
    preset: str
    n_train: int
    n_valid: int
    seconds: float
    validation: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        lines = [f"Trained preset '{self.preset}' on {self.n_train:,} products in {self.seconds:.1f} s "
                 f"(components: {', '.join(sorted(self.model.components_))})"]
        if self.model.image_failures_:
            lines.append(f"  {len(self.model.image_failures_):,} images unusable (text used instead), "
                         f"e.g. {self.model.image_failures_[0][0]}: {self.model.image_failures_[0][1]}")
        if self.validation:
            v = self.validation
            lines.append(f"Validation ({self.n_valid:,} products): weighted F1 {v['weighted_f1']:.4f}, "
                         f"macro F1 {v['macro_f1']:.4f}, accuracy {v['accuracy']:.4f}")
        lines.append(f"Model bundle: {self.out}")
        return "\n".join(lines)


def train_and_save(dataset: Dataset, out: str | Path, *, preset: str | None = None, text_model: str | None = None,
                   valid_size: float = 0.1, seed: int = 42, cache_dir: str | None = None,
                   progress: bool = True) -> TrainResult:
    """Hold out ``valid_size`` (stratified), fit the preset, record validation metrics, save the bundle."""
    if dataset.y is None:
        raise ValueError("training needs labels")
    preset = preset or default_preset(dataset)
    started = time.perf_counter()
    y = dataset.y.to_numpy()
    split = stratified_split(y, valid_size=valid_size, test_size=0.0, seed=seed)
    model = ProductClassifier(preset, text_model=text_model, cache_dir=cache_dir, seed=seed, progress=progress)
    X_valid = dataset.X.iloc[split.valid] if len(split.valid) else None
    model.fit(dataset.X.iloc[split.train], y[split.train], X_valid=X_valid,
              y_valid=y[split.valid] if len(split.valid) else None)
    path = model.save(out)
    return TrainResult(model, path, preset, len(split.train), len(split.valid), time.perf_counter() - started,
                       model.metrics_.get("validation", {}))


@dataclass
class EvaluationResult:
    """What :func:`evaluate_to_dir` wrote."""

    evaluation: Evaluation
    out: Path
    files: list[Path]

    def summary(self) -> str:
        e = self.evaluation
        lines = [f"Evaluated {e.n:,} products: weighted F1 {e.weighted_f1:.4f}, macro F1 {e.macro_f1:.4f}, "
                 f"accuracy {e.accuracy:.4f}"]
        weakest = e.per_class.sort_values("f1").head(3)
        lines.append("  weakest classes: " + ", ".join(f"{r.code} {r.name} (F1 {r.f1:.2f})"
                                                        for r in weakest.itertuples()))
        lines += [f"  wrote {path}" for path in self.files]
        return "\n".join(lines)


def evaluate_to_dir(model: ProductClassifier, dataset: Dataset, out: str | Path) -> EvaluationResult:
    """Score ``model`` on a labelled dataset; write metrics.json, per_class.csv, confusion_matrix.csv,
    predictions.csv into ``out``."""
    from prodcat.evaluation import evaluate_predictions

    if dataset.y is None:
        raise ValueError("evaluation needs labels")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    y_true = dataset.y.to_numpy().astype(int)
    modalities, has_image = model.modality_proba(dataset.X)
    proba = model._combine(modalities, has_image)
    y_pred = model.classes_[proba.argmax(axis=1)]
    evaluation = evaluate_predictions(y_true, y_pred, classes=model.classes_)
    per_modality = {name: evaluate_predictions(y_true, model.classes_[p.argmax(axis=1)], classes=model.classes_)
                    for name, p in modalities.items()} if len(modalities) > 1 else {}
    metrics = {**evaluation.headline(), "modalities": {m: e.headline() for m, e in per_modality.items()},
               "products_with_image": int(has_image.sum())}
    files = [out / "metrics.json", out / "per_class.csv", out / "confusion_matrix.csv", out / "predictions.csv"]
    files[0].write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    evaluation.per_class.to_csv(files[1], index=False, float_format="%.4f")
    evaluation.confusion.to_csv(files[2])
    predictions = dataset.X[[]].copy()
    predictions["true"] = y_true
    predictions["predicted"] = y_pred
    predictions["confidence"] = np.round(proba.max(axis=1), 4)
    predictions.to_csv(files[3])
    return EvaluationResult(evaluation, out, files)
