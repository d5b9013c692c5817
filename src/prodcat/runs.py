"""Run folders: one directory per training run that never overwrites another, and their listing.

A run folder holds ``config.json`` and ``metrics.json`` (plus whatever the caller saves there:
report, model bundle). Optionally the same is logged to MLflow when it is installed.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from prodcat.errors import ProdcatError

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
LIST_COLUMNS = ["run", "created", "preset", "weighted_f1", "macro_f1", "accuracy", "path"]
HEADLINE = ("weighted_f1", "macro_f1", "accuracy")
_MAX_ATTEMPTS = 10_000


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    if not slug:
        raise ProdcatError(f"run name {name!r} has no usable character (letters, digits, '.', '_', '-')")
    return slug[:80]


def new_run_dir(root: str | Path = "runs", name: str | None = None) -> Path:
    """Create and return a fresh run folder ``root/YYYYmmdd-HHMMSS-NNN[-name]``.

    The folder is created with ``mkdir(exist_ok=False)``: when the name is taken (another run in
    the same second, even from another process) the counter ``NNN`` goes up, so no run is ever
    overwritten.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = f"-{_slug(name)}" if name else ""
    for counter in range(1, _MAX_ATTEMPTS + 1):
        candidate = root / f"{stamp}-{counter:03d}{suffix}"
        try:
            candidate.mkdir(exist_ok=False)
        except FileExistsError:
            continue
        return candidate
    raise ProdcatError(f"could not create a new run folder in {root}: {_MAX_ATTEMPTS} names taken")


def _json_default(value: Any) -> Any:
    """Make numpy scalars/arrays, paths, sets and dates JSON-serialisable."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    return str(value)


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    """Write JSON atomically (temporary file + rename) so a reader never sees half a file."""
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=_json_default, allow_nan=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run_files(run_dir: str | Path, *, config: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
    """Write ``config.json`` and ``metrics.json`` into ``run_dir``.

    ``config`` gains a ``created`` timestamp (ISO 8601) when it has none.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ProdcatError(f"run folder {run_dir} does not exist (create it with new_run_dir)")
    config = dict(config)
    config.setdefault("created", _dt.datetime.now().isoformat(timespec="seconds"))
    _write_json(run_dir / CONFIG_FILE, config)
    _write_json(run_dir / METRICS_FILE, dict(metrics))


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        warnings.warn(f"{path}: unreadable JSON, ignored ({exc})", stacklevel=3)
        return {}
    if not isinstance(payload, dict):
        warnings.warn(f"{path}: expected a JSON object, ignored", stacklevel=3)
        return {}
    return payload


def _headline(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Headline numbers from metrics: top level first, else the first nested object holding them."""
    def pick(source: Mapping[str, Any]) -> dict[str, float]:
        found = {}
        for key in HEADLINE:
            value = source.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[key] = float(value)
        return found

    found = pick(metrics)
    if not found:
        for value in metrics.values():
            if isinstance(value, Mapping) and (found := pick(value)):
                break
    return {key: found.get(key, math.nan) for key in HEADLINE}


def list_runs(root: str | Path = "runs") -> pd.DataFrame:
    """One row per run folder under ``root`` (oldest first): name, creation time, preset, headline metrics, path.

    A folder counts as a run when it holds ``config.json`` or ``metrics.json``. Missing values are
    NaN/None; an unreadable JSON file gives a warning, not an error.
    """
    root = Path(root)
    rows = []
    if root.is_dir():
        for folder in root.iterdir():
            if not folder.is_dir():
                continue
            config_path, metrics_path = folder / CONFIG_FILE, folder / METRICS_FILE
            if not (config_path.exists() or metrics_path.exists()):
                continue
            config, metrics = _read_json(config_path), _read_json(metrics_path)
            created = config.get("created")
            if not isinstance(created, str):
                stamp = (config_path if config_path.exists() else metrics_path).stat().st_mtime
                created = _dt.datetime.fromtimestamp(stamp).isoformat(timespec="seconds")
            preset = config.get("preset")
            rows.append({
                "run": folder.name,
                "created": created,
                "preset": None if preset is None else str(preset),
                **_headline(metrics),
                "path": str(folder),
            })
    frame = pd.DataFrame(rows, columns=LIST_COLUMNS)
    return frame.sort_values(["created", "run"], kind="stable").reset_index(drop=True)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def log_to_mlflow(
    uri: str | None,
    *,
    run_name: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    artifacts_dir: str | Path | None = None,
) -> bool:
    """Log params, numeric metrics and the files of ``artifacts_dir`` to MLflow; True when logged.

    ``uri`` is the tracking URI (``None``: a local file store ``./mlruns``). MLflow is optional:
    when it is not installed this warns and returns False. Nested dicts are flattened with dots;
    non-numeric metrics are skipped.
    """
    try:
        import mlflow
    except ImportError:
        warnings.warn("mlflow is not installed (pip install mlflow): run not logged to MLflow", stacklevel=2)
        return False
    mlflow.set_tracking_uri(uri or Path("mlruns").resolve().as_uri())
    flat_params = {k: json.dumps(v, default=_json_default) if isinstance(v, (list, tuple, dict)) else v
                   for k, v in _flatten(params).items()}
    flat_metrics = {
        k: float(v) for k, v in _flatten(metrics).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))
    }
    with mlflow.start_run(run_name=run_name):
        if flat_params:
            mlflow.log_params({k: str(v)[:500] for k, v in flat_params.items()})
        if flat_metrics:
            mlflow.log_metrics(flat_metrics)
        if artifacts_dir is not None:
            mlflow.log_artifacts(str(artifacts_dir))
    return True
