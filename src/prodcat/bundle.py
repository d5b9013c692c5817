"""Model bundles: save, read and version-gate a fitted :class:`~prodcat.predictor.ProductClassifier`.

A bundle is one directory: ``state-<id>.npz`` (the fitted estimators of the components, the
fusers, the class prior, in :mod:`prodcat.persist`'s code-free format) and ``prodcat.json``
(format, library versions, parameters, recipe, classes, training fingerprint, metrics, the state
file's name and checksum). This module decides what goes in them; :mod:`prodcat.safe_bundle`
writes them atomically and checks them on the way back. Loading never runs code from the bundle,
and refuses a bundle made with another prodcat or scikit-learn minor version, another format, or
an edited or damaged one, with a message saying why and how to retrain.
"""

from __future__ import annotations

import copy
import platform
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import sklearn

import prodcat
from prodcat import safe_bundle
from prodcat.components import make_component
from prodcat.errors import ModelError, ProdcatError
from prodcat.presets import PresetSpec, load_preset
from prodcat.safe_bundle import BUNDLE_FORMAT

if TYPE_CHECKING:
    from prodcat.predictor import ProductClassifier

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
    params = {**model.get_params(), "cache_dir": None}  # where to cache is the user's choice, not the bundle's
    for key in ("engine", "address"):  # nor where the model was trained
        del params[key]
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
                     "fit_seconds": round(model.fit_seconds_, 2), "image_failures": len(model.image_failures_),
                     "text_only_reason": model.text_only_reason_},
        "metrics": model.metrics_,
    }


def save_bundle(model: "ProductClassifier", path: str | Path) -> Path:
    """Write the bundle directory of a fitted model atomically (see :mod:`prodcat.safe_bundle`)."""
    state = {"components": {n: c.model for n, c in model.components_.items()}, "prior": model.prior_,
             "fuser": model.fuser_, "blend": model.blend_, "fit_times": model.fit_times_}
    return safe_bundle.write_bundle(path, state, manifest_of(model))


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The bundle's manifest (config, versions, metrics) without loading the model."""
    return safe_bundle.read_manifest(path)


def check_compatible(path: str | Path, manifest: dict[str, Any]) -> None:
    """Refuse bundles of another format or another prodcat / scikit-learn minor version."""
    safe_bundle.check_format(manifest, path)
    saved, current = manifest.get("versions") or {}, library_versions()
    for library in ("prodcat", "scikit-learn"):
        if _minor(saved.get(library)) != _minor(current[library]):
            raise ModelError(
                f"{path}: saved with {library} {saved.get(library)}, this is {current[library]}; "
                f"retrain the model or install {library}=={saved.get(library)}"
            )


def load_bundle(cls: type["ProductClassifier"], path: str | Path, *, cache_dir: str | None = None
                ) -> "ProductClassifier":
    """A fitted ``cls`` from a bundle written by :func:`save_bundle`. ``cache_dir``: the image
    embedding cache to use (a bundle never chooses where prodcat writes)."""
    manifest = read_manifest(path)
    check_compatible(path, manifest)
    params = safe_bundle.check_params(manifest.get("params"), cls._get_param_names(), path)
    classes = safe_bundle.check_classes(manifest, path)
    try:
        params = {**params, "cache_dir": cache_dir}
        if not isinstance(params.get("preset"), str):
            params["preset"] = upgrade_spec(params["preset"])
        spec = recipe_of(manifest)
    except (KeyError, TypeError, AttributeError, ProdcatError) as error:
        raise ModelError(f"{path}: the bundle's recipe is not understood ({error}); {RETRAIN}") from None
    state = safe_bundle.read_state(path, manifest)
    safe_bundle.check_state_classes(state, classes, manifest.get("components"), path)
    try:
        model = cls(**params)
    except TypeError as error:
        raise ModelError(f"{path}: the manifest's params are invalid ({error})") from None
    training = manifest.get("training") or {}
    model._set_fitted(
        spec=spec, classes=classes.astype(int), prior=state["prior"],
        components={n: make_component(spec.component(n), seed=model.seed, model=m)
                    for n, m in state["components"].items()},
        stack=state.get("fuser"), blend=state.get("blend"), fit_times=state.get("fit_times", {}),
        n_train=training.get("n"), fingerprint=training.get("fingerprint"),
        fit_seconds=training.get("fit_seconds", 0.0), metrics=manifest.get("metrics", {}),
        text_only_reason=training.get("text_only_reason"),
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
