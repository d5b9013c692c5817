"""Export a model bundle for other platforms: an MLflow pyfunc model directory.

``export_mlflow(bundle, out)`` writes, without needing mlflow installed::

    out/MLmodel              python_function flavor, loader_module prodcat.mlflow_model, signature
    out/artifacts/model/     the bundle, copied as it is
    out/requirements.txt     prodcat, with the image extra when the model reads photos and the
                             deep extra when it has a deep text component
    out/python_env.yaml, out/conda.yaml

``mlflow.pyfunc.load_model(out)`` then imports :mod:`prodcat.mlflow_model` and predicts a table
(``prdtypecode``, ``name``, ``probability``, ``needs_review``) for a frame of products.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Sequence

import prodcat
from prodcat.errors import ProdcatError

MLMODEL_FILE = "MLmodel"
BUNDLE_ARTIFACT = "artifacts/model"
LOADER_MODULE = "prodcat.mlflow_model"

INPUT_SCHEMA = [
    {"type": "string", "name": "designation", "required": True},
    {"type": "string", "name": "description", "required": False},
    {"type": "string", "name": "image_path", "required": False},
]
OUTPUT_SCHEMA = [
    {"type": "long", "name": "prdtypecode", "required": True},
    {"type": "string", "name": "name", "required": True},
    {"type": "double", "name": "probability", "required": True},
    {"type": "boolean", "name": "needs_review", "required": False},
]
PARAMS_SCHEMA = [
    {"name": "top", "type": "long", "default": 1, "shape": None},
    {"name": "review_target", "type": "double", "default": 0.95, "shape": None},
]


def _quoted(value: str) -> str:
    """A YAML scalar in single quotes (safe for JSON text and any punctuation)."""
    return "'" + value.replace("'", "''") + "'"


def mlmodel_text(*, python_version: str, created: str, model_uuid: str) -> str:
    """The ``MLmodel`` YAML of an exported bundle."""
    return "\n".join([
        "flavors:",
        "  python_function:",
        f"    loader_module: {LOADER_MODULE}",
        f"    data: {BUNDLE_ARTIFACT}",
        "    env:",
        "      conda: conda.yaml",
        "      virtualenv: python_env.yaml",
        f"    python_version: {python_version}",
        "  prodcat:",
        f"    prodcat_version: {prodcat.__version__}",
        f"    bundle: {BUNDLE_ARTIFACT}",
        f"model_uuid: {model_uuid}",
        "signature:",
        f"  inputs: {_quoted(json.dumps(INPUT_SCHEMA))}",
        f"  outputs: {_quoted(json.dumps(OUTPUT_SCHEMA))}",
        f"  params: {_quoted(json.dumps(PARAMS_SCHEMA))}",
        f"utc_time_created: {_quoted(created)}",
        "",
    ])


def requirement(extras: Sequence[str] = ()) -> str:
    """The pip requirement that serves a bundle needing these prodcat ``extras``."""
    return f"prodcat{'[' + ','.join(sorted(extras)) + ']' if extras else ''}=={prodcat.__version__}"


def bundle_extras(manifest: dict) -> list[str]:
    """The prodcat extras a bundle needs: ``image`` when it reads photos, ``deep`` when it has a
    deep text component (torch, transformers, the bundled MiniLM and USE)."""
    from prodcat.bundle import recipe_of

    recipe = recipe_of(manifest)
    extras = ["image"] if recipe.reads_images else []
    return extras + (["deep"] if any(c.kind == "deep_text" for c in recipe.components) else [])


def export_mlflow(model_dir: str | Path, out: str | Path) -> Path:
    """Write the MLflow pyfunc model directory ``out`` for the bundle in ``model_dir``.

    ``out`` must not exist yet (nothing is overwritten); it appears whole or not at all (written
    in a temporary sibling, then renamed).
    """
    from prodcat.predictor import ProductClassifier

    source, target = Path(model_dir), Path(out)
    manifest = ProductClassifier.read_manifest(source)
    if target.exists():
        raise ProdcatError(f"{target}: already exists; choose a new directory (nothing is overwritten)")
    target.parent.mkdir(parents=True, exist_ok=True)
    extras = bundle_extras(manifest)
    python_version = platform.python_version()
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        shutil.copytree(source, staging / BUNDLE_ARTIFACT)
        created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        mlmodel = mlmodel_text(python_version=python_version, created=created, model_uuid=uuid.uuid4().hex)
        (staging / MLMODEL_FILE).write_text(mlmodel, encoding="utf-8")
        wanted = requirement(extras)
        (staging / "requirements.txt").write_text(
            "# prodcat is not on a public index: install it from your wheel or source tree\n" + wanted + "\n",
            encoding="utf-8")
        (staging / "python_env.yaml").write_text(
            f"python: {python_version}\nbuild_dependencies:\n  - pip\ndependencies:\n  - -r requirements.txt\n",
            encoding="utf-8")
        (staging / "conda.yaml").write_text(
            f"name: prodcat-model\nchannels:\n  - conda-forge\ndependencies:\n  - python={python_version}\n"
            f"  - pip\n  - pip:\n    - {wanted}\n", encoding="utf-8")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
