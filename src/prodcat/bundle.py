"""Model bundles: save, read and version-gate a fitted :class:`~prodcat.predictor.ProductClassifier`.

A bundle is one directory: ``components.joblib`` (the fitted estimators of the components, the
fusers, the class prior) and ``prodcat.json`` (format, library versions, parameters, recipe,
classes, training fingerprint, metrics). This module is the only place that writes or reads
the fitted state. Loading refuses a bundle made with another prodcat or scikit-learn minor
version, or another format, with a message saying how to retrain.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import sklearn

import prodcat
from prodcat.components import make_component
from prodcat.errors import ModelError, ProdcatError
from prodcat.presets import PresetSpec, load_preset

if TYPE_CHECKING:
    from prodcat.predictor import ProductClassifier

BUNDLE_FORMAT = 1
BUNDLE_MANIFEST = "prodcat.json"
BUNDLE_COMPONENTS = "components.joblib"
RETRAIN = "retrain it with `prodcat train`"


def library_versions() -> dict[str, str]:
    """Versions that decide whether a saved bundle can be loaded."""
    return {
        "prodcat": prodcat.__version__,
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def manifest_of(model: "ProductClassifier") -> dict[str, Any]:
    """The manifest describing a fitted model (what ``prodcat.json`` holds)."""
    params = model.get_params()
    if not isinstance(params["preset"], str):
        params["preset"] = load_preset(params["preset"]).to_dict()
    return {
        "format": BUNDLE_FORMAT,
        "versions": library_versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "params": params,
        "spec": model.spec.to_dict(),
        "classes": [int(c) for c in model.classes_],
        "components": model.component_names,
        "training": {"n": model.n_train_, "fingerprint": model.fingerprint_,
                     "fit_seconds": round(model.fit_seconds_, 2), "image_failures": len(model.image_failures_)},
        "metrics": model.metrics_,
    }


def save_bundle(model: "ProductClassifier", path: str | Path) -> Path:
    """Write the bundle directory of a fitted model; each file is written atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {"components": {n: c.model for n, c in model.components_.items()}, "prior": model.prior_,
             "fuser": model.fuser_, "blend": model.blend_, "fit_times": model.fit_times_}
    _atomic(path / BUNDLE_COMPONENTS, lambda tmp: joblib.dump(state, tmp, compress=3))
    text = json.dumps(manifest_of(model), indent=2, ensure_ascii=False)
    _atomic(path / BUNDLE_MANIFEST, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _atomic(target: Path, write) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The bundle's manifest (config, versions, metrics) without loading the model."""
    manifest_path = Path(path) / BUNDLE_MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{path}: not a prodcat model bundle (no {BUNDLE_MANIFEST})")
    try:
        return json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"{manifest_path}: unreadable manifest ({error})") from error


def check_compatible(path: str | Path, manifest: dict[str, Any]) -> None:
    """Refuse bundles of another format or another prodcat / scikit-learn minor version."""
    if manifest.get("format") != BUNDLE_FORMAT:
        raise ModelError(f"{path}: bundle format {manifest.get('format')} is not supported "
                         f"(this prodcat reads format {BUNDLE_FORMAT}); {RETRAIN}")
    saved, current = manifest.get("versions", {}), library_versions()
    for library in ("prodcat", "scikit-learn"):
        if _minor(saved.get(library)) != _minor(current[library]):
            raise ModelError(
                f"{path}: saved with {library} {saved.get(library)}, this is {current[library]}; "
                f"retrain the model or install {library}=={saved.get(library)}"
            )


def load_bundle(cls: type["ProductClassifier"], path: str | Path) -> "ProductClassifier":
    """A fitted ``cls`` from a bundle written by :func:`save_bundle`."""
    manifest = read_manifest(path)
    check_compatible(path, manifest)
    try:
        params = {**manifest["params"]}
        if not isinstance(params.get("preset"), str):
            params["preset"] = upgrade_spec(params["preset"])
        spec = recipe_of(manifest)
    except (KeyError, TypeError, ProdcatError) as error:
        raise ModelError(f"{path}: the bundle's recipe is not understood ({error}); {RETRAIN}") from None
    try:
        state = joblib.load(Path(path) / BUNDLE_COMPONENTS)
    except (OSError, EOFError, ValueError, ImportError, AttributeError, KeyError) as error:
        raise ModelError(f"{path}: cannot read {BUNDLE_COMPONENTS} ({error})") from error
    model = cls(**params)
    training = manifest.get("training", {})
    model._set_fitted(
        spec=spec, classes=np.asarray(manifest["classes"], dtype=int), prior=state["prior"],
        components={n: make_component(spec.component(n), seed=model.seed, model=m)
                    for n, m in state["components"].items()},
        stack=state.get("fuser"), blend=state.get("blend"), fit_times=state.get("fit_times", {}),
        n_train=training.get("n"), fingerprint=training.get("fingerprint"),
        fit_seconds=training.get("fit_seconds", 0.0), metrics=manifest.get("metrics", {}),
    )
    model._manifest = manifest
    return model


def recipe_of(manifest: dict[str, Any]) -> PresetSpec:
    """The validated recipe of a bundle's manifest (older recipes read in today's words)."""
    if not isinstance(manifest.get("spec"), dict):
        raise ModelError(f"the bundle's manifest holds no recipe; {RETRAIN}")
    recipe = upgrade_spec(manifest["spec"])
    preset = manifest.get("params", {}).get("preset")
    recipe.setdefault("name", preset if isinstance(preset, str) else "custom")
    return load_preset(recipe)


def upgrade_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A recipe written by an older prodcat in today's words: deep text models and the pixel
    baseline were ``text`` / ``image`` components, the fusion method was its ``kind``."""
    spec = copy.deepcopy(spec)
    from prodcat.components import deep_text_models

    for entry in spec.get("components", []):
        if entry.get("kind") == "text" and entry.get("model") in deep_text_models():
            entry["kind"] = "deep_text"
        if entry.get("kind") == "image" and entry.get("model") == "pixels":
            entry["kind"] = "pixels"
            del entry["model"]
    fusion = spec.get("fusion")
    if isinstance(fusion, dict) and "kind" in fusion:
        fusion["method"] = fusion.pop("kind")
    return spec


def _minor(version: str | None) -> tuple[str, ...]:
    return tuple((version or "?").split(".")[:2])
