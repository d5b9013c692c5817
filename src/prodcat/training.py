"""Train-and-save and evaluate-to-folder workflows shared by the CLI, the demo and the API.

``train_and_save`` holds out a stratified validation share, fits, evaluates on it (metrics +
``report.html``), by default refits the same recipe on all the rows (validation included), and
writes everything into a fresh run folder that never overwrites another:
``config.json``, ``metrics.json``, ``validation/`` (report) and ``model/`` (the bundle). A copy of
the bundle also goes to ``out`` when given (hard links when possible, so it costs no space).
The run folder is created when training starts and holds the checkpoints of the finished
component fits until the run is complete, so that an interrupted run resumes (``resume``).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prodcat.data.io import Dataset
from prodcat.data.split import stratified_split
from prodcat.evaluation import Evaluation, evaluate_predictions, fusion_warnings
from prodcat.predictor import ProductClassifier
from prodcat.presets import DEFAULT_PRESET, PRESETS
from prodcat.review import review_thresholds


def default_preset(dataset: Dataset) -> str:
    """``balanced`` (text + image) when the data has images and that preset exists, else ``fast``."""
    has_images = "image_path" in dataset.X and dataset.X["image_path"].notna().any()
    return "balanced" if has_images and "balanced" in PRESETS else DEFAULT_PRESET


def subset(dataset: Dataset, positions: np.ndarray) -> Dataset:
    """The rows of ``dataset`` at ``positions`` (same load report)."""
    y = dataset.y.iloc[positions] if dataset.y is not None else None
    return Dataset(X=dataset.X.iloc[positions], y=y, report=dataset.report)


@dataclass
class EvaluationResult:
    """What :func:`evaluate_to_dir` computed and wrote."""

    evaluation: Evaluation
    components: dict[str, Evaluation]
    out: Path
    files: list[Path]
    review: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        e = self.evaluation
        lines = [f"Evaluated {e.n:,} products: weighted F1 {e.weighted_f1:.4f}, macro F1 {e.macro_f1:.4f}, "
                 f"accuracy {e.accuracy:.4f}"]
        for name, m in self.components.items():
            lines.append(f"  {name:>7} alone: weighted F1 {m.weighted_f1:.4f}")
        lines += [f"  warning: {w}" for w in self.warnings]
        weakest = e.per_class.sort_values("f1").head(3)
        lines.append("  weakest classes: " + ", ".join(f"{r.code} {r.name} (F1 {r.f1:.2f})"
                                                        for r in weakest.itertuples()))
        lines += [f"  wrote {path}" for path in self.files]
        return "\n".join(lines)

    def metrics(self) -> dict[str, Any]:
        """Headline metrics plus each component's own headlines and the review thresholds, for JSON."""
        return {**self.evaluation.headline(), "components": {m: e.headline() for m, e in self.components.items()},
                "review": self.review, "warnings": self.warnings}


def evaluate_to_dir(model: ProductClassifier, dataset: Dataset, out: str | Path, *, report: bool = True,
                    title: str = "prodcat evaluation") -> EvaluationResult:
    """Score ``model`` on a labelled dataset and write metrics.json, per_class.csv,
    confusion_matrix.csv, predictions.csv and (with ``report``) the self-contained report.html."""
    if dataset.y is None:
        raise ValueError("evaluation needs labels")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    y_true = dataset.y.to_numpy().astype(int)
    scores = model.component_proba(dataset.X)
    proba = model.fused_proba(scores)
    y_pred = model.classes_[proba.argmax(axis=1)]
    evaluation = evaluate_predictions(y_true, y_pred, classes=model.classes_)
    components = {name: evaluate_predictions(y_true, model.classes_[p.argmax(axis=1)], classes=model.classes_)
                  for name, p in scores.probas.items()} if len(scores.probas) > 1 else {}
    result = EvaluationResult(evaluation, components, out, [],
                              review_thresholds(proba.max(axis=1), y_pred == y_true), fusion_warnings(evaluation, components))
    metrics = {**result.metrics(), "products_with_image": int(scores.has_image.sum())}
    files = [out / "metrics.json", out / "per_class.csv", out / "confusion_matrix.csv", out / "predictions.csv"]
    files[0].write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    evaluation.per_class.to_csv(files[1], index=False, float_format="%.4f")
    evaluation.confusion.to_csv(files[2])
    predictions = dataset.X[[]].copy()
    predictions["true"] = y_true
    predictions["predicted"] = y_pred
    predictions["confidence"] = np.round(proba.max(axis=1), 4)
    predictions.to_csv(files[3])
    if report:
        from prodcat.reports.evaluation_report import write_evaluation_report

        files.append(write_evaluation_report(
            out, evaluation, y_true=y_true, y_pred=y_pred, proba=proba, classes=model.classes_,
            products=dataset.X, components={**components, "combined": evaluation} if components else None,
            title=title, model_info=model.describe(), warnings=result.warnings))
    result.files = files
    return result


@dataclass
class TrainResult:
    """What :func:`train_and_save` did."""

    model: ProductClassifier
    run_dir: Path
    model_dir: Path
    preset: str
    n_train: int
    n_valid: int
    seconds: float
    validation: EvaluationResult | None = None
    copies: list[Path] = field(default_factory=list)
    refitted: bool = False

    def summary(self) -> str:
        lines = [f"Trained preset '{self.preset}' on {self.n_train:,} products in {self.seconds:.1f} s "
                 f"(components: {', '.join(sorted(self.model.component_names))})"]
        if self.refitted:
            lines.append(f"  refitted on all {self.n_train + self.n_valid:,} products after validation: the "
                         f"validation figures below are those of the model fitted without the validation rows")
        if self.model.image_failures_:
            path, reason = self.model.image_failures_[0]
            lines.append(f"  {len(self.model.image_failures_):,} images unusable (text used instead), "
                         f"e.g. {path}: {reason}")
        if self.validation:
            v = self.validation.evaluation
            lines.append(f"Validation ({self.n_valid:,} products): weighted F1 {v.weighted_f1:.4f}, "
                         f"macro F1 {v.macro_f1:.4f}, accuracy {v.accuracy:.4f}")
            lines += [f"  {name:>7} alone: weighted F1 {m.weighted_f1:.4f}"
                      for name, m in self.validation.components.items()]
            lines += [f"  warning: {w}" for w in self.validation.warnings]
        lines.append(f"Run folder: {self.run_dir}")
        lines += [f"Model bundle: {path}" for path in [self.model_dir, *self.copies]]
        return "\n".join(lines)


RUNNING, COMPLETE = "running", "complete"
CHECKPOINTS = "checkpoints"
_OPTIONS = ("preset", "text_model", "valid_size", "seed", "fusion", "text_backbone", "device", "time_limit", "refit")


def train_and_save(dataset: Dataset, out: str | Path | None = None, *, preset: str | None = None,
                   text_model: str | None = None, valid_size: float = 0.1, seed: int = 42,
                   cache_dir: str | None = None, runs_root: str | Path = "runs", run_name: str | None = None,
                   mlflow_uri: str | None = None, time_limit: float | None = None, fusion: str | None = None,
                   text_backbone: str | None = None, device: str | None = None, progress: bool = True,
                   report: bool = True, refit: bool | None = None, engine: str = "local",
                   address: str | None = None, resume: str | Path | None = None) -> TrainResult:
    """Hold out ``valid_size`` (stratified), fit the preset, evaluate, refit, and save a run folder.

    ``refit``: after validation, fit the same recipe again on all the rows and save that model
    (its recorded metrics and review thresholds stay those measured on the validation split).
    ``None`` (default) refits unless a time budget applies (``time_limit`` or the preset's own),
    where it would double the fit's time.
    The run folder (under ``runs_root``) is created first, with a config.json saying ``"status":
    "running"``; each finished component fit is checkpointed in its ``checkpoints/`` folder. At the
    end it gets config.json (``"status": "complete"``), metrics.json, validation/ and model/, and the
    checkpoints are removed. ``out``, when given, receives a copy of the model bundle.
    ``resume``: an unfinished run folder (a path, or a name under ``runs_root``): its saved options
    are used (``preset``, when given, must be the saved one; the data must be the same), its
    finished component fits are loaded instead of fitted again, and ``time_limit`` (default: the
    saved one) bounds the work left, counted from now.
    ``text_backbone``, ``device``, ``engine`` and ``address`` are :class:`~prodcat.predictor.ProductClassifier`'s.
    """
    from prodcat.predictor import data_fingerprint
    from prodcat.presets import load_preset
    from prodcat.runs import log_to_mlflow, new_run_dir, write_run_files

    if dataset.y is None:
        raise ValueError("training needs labels")
    if out is not None:  # refuse a bad --out before hours of training, not after
        from prodcat.safe_bundle import check_bundle_target

        check_bundle_target(out)
    started = time.perf_counter()
    y = dataset.y.to_numpy()
    fingerprint = data_fingerprint(dataset.X, y)
    if resume is not None:
        run_dir, options = _resumable(resume, runs_root, fingerprint, preset)
        if time_limit is not None:
            options["time_limit"] = time_limit
        if progress:
            print(f"Resuming run {run_dir}", flush=True)
    else:
        preset = preset or default_preset(dataset)
        if refit is None:
            refit = time_limit is None and load_preset(preset).time_limit is None
        options = {"preset": preset, "text_model": text_model, "valid_size": valid_size, "seed": seed,
                   "fusion": fusion, "text_backbone": text_backbone, "device": device, "time_limit": time_limit,
                   "refit": bool(refit)}
        run_dir = None
    preset, valid_size, seed = options["preset"], options["valid_size"], options["seed"]
    split = stratified_split(y, valid_size=valid_size, test_size=0.0, seed=seed)

    def new_model() -> ProductClassifier:
        return ProductClassifier(preset, text_model=options["text_model"], cache_dir=cache_dir, seed=seed,
                                 progress=progress, time_limit=options["time_limit"], fusion=options["fusion"],
                                 text_backbone=options["text_backbone"], device=options["device"],
                                 engine=engine, address=address)

    model = new_model()
    model.resolved_spec()  # a bad recipe (backbone, device...) is refused before the run folder exists
    if run_dir is None:
        run_dir = new_run_dir(runs_root, run_name)
    start_config = {"preset": preset, "status": RUNNING, "options": options, "data_fingerprint": fingerprint,
                    "data": dataset.report.to_dict()}
    write_run_files(run_dir, config=start_config, metrics={})
    train = subset(dataset, split.train)
    model.fit(train.X, train.y.to_numpy(), checkpoints=run_dir / CHECKPOINTS / "fit")
    validation = None
    if len(split.valid):
        validation = evaluate_to_dir(model, subset(dataset, split.valid), run_dir / "validation", report=report,
                                     title=f"prodcat validation: preset {preset}")
        model.metrics_["validation"] = validation.metrics()
    refitted = bool(options["refit"] and len(split.valid))
    if refitted:
        measured = model.metrics_
        model = new_model()
        model.fit(dataset.X, y, checkpoints=run_dir / CHECKPOINTS / "refit")
        model.metrics_ = {**measured, "refit": {"n_train": len(y)}}
    model_dir = model.save(run_dir / "model")
    seconds = time.perf_counter() - started
    config = {**start_config, "status": COMPLETE, "params": model.manifest["params"], "spec": model.spec.to_dict(),
              "valid_size": valid_size, "n_train": len(split.train), "n_valid": len(split.valid),
              "refitted_on_all": refitted, "fingerprint": model.fingerprint_, "seconds": round(seconds, 2)}
    write_run_files(run_dir, config=config, metrics=model.metrics_.get("validation", {}))
    shutil.rmtree(run_dir / CHECKPOINTS, ignore_errors=True)  # this run's own files, useless once it is complete
    copies = [copy_bundle(model_dir, Path(out))] if out is not None else []
    if mlflow_uri is not None:
        log_to_mlflow(mlflow_uri, run_name=run_dir.name, params={"preset": preset, **model.get_params()},
                      metrics={k: v for k, v in model.metrics_.get("validation", {}).items()
                               if isinstance(v, (int, float))}, artifacts_dir=run_dir)
    return TrainResult(model, run_dir, model_dir, preset, len(split.train), len(split.valid), seconds,
                       validation, copies, refitted)


def _resumable(run: str | Path, runs_root: str | Path, fingerprint: str, preset: str | None
               ) -> tuple[Path, dict[str, Any]]:
    """(the run folder, its saved options) of an unfinished run that this data can resume; else a
    :class:`~prodcat.errors.ProdcatError` saying why not."""
    from prodcat.errors import ProdcatError
    from prodcat.runs import CONFIG_FILE

    run_dir = Path(run)
    if not run_dir.is_dir() and not run_dir.is_absolute() and (Path(runs_root) / run_dir).is_dir():
        run_dir = Path(runs_root) / run_dir
    if not run_dir.is_dir():
        raise ProdcatError(f"--resume {run}: no such run folder (give its path, or its name under {runs_root})")
    try:
        config = json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))
        config = config if isinstance(config, dict) else {}
    except (OSError, ValueError):
        raise ProdcatError(f"--resume {run}: {run_dir / CONFIG_FILE} is missing or unreadable: not a run folder "
                           "that can be resumed") from None
    options = config.get("options")
    if config.get("status") == COMPLETE:
        raise ProdcatError(f"--resume {run}: that run is complete, nothing to resume (its model is in {run_dir / 'model'})")
    if config.get("status") != RUNNING or not isinstance(options, dict) or set(options) != set(_OPTIONS):
        raise ProdcatError(f"--resume {run}: {run_dir} was not written by a resumable `prodcat train`")
    if config.get("data_fingerprint") != fingerprint:
        raise ProdcatError(f"--resume {run}: the data differ from the run's (fingerprint "
                           f"{str(config.get('data_fingerprint'))[:12]}, these are {fingerprint[:12]}); "
                           "resume with the same files")
    if preset is not None and preset != options["preset"]:
        raise ProdcatError(f"--resume {run}: the run trains preset {options['preset']!r}, not {preset!r}; "
                           "leave --preset out (the run's options are used)")
    return run_dir, dict(options)


def copy_bundle(source: Path, target: Path) -> Path:
    """Install a copy of a bundle atomically, hard-linking its state file when possible; files of
    ``target`` that are not bundle files are kept (see :mod:`prodcat.safe_bundle`)."""
    from prodcat.safe_bundle import copy_bundle as install

    return install(source, target)
