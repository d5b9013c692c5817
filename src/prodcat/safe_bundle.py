"""Model bundle files on disk: atomic writes, a checksummed code-free state, manifest checks.

A bundle is a directory holding ``prodcat.json`` (the manifest: config, classes, versions,
metrics, and the name and SHA-256 of the state file) and ``state-<id>.npz`` (the fitted
components in :mod:`prodcat.persist`'s code-free format). Other files in the directory (notes,
evaluation folders) are the user's and are never touched.

Writing is atomic. A new bundle is written into a temporary sibling directory renamed into
place. An existing bundle is updated by writing the new state file under a new name, then
replacing the manifest (``os.replace``, the commit point), then removing the old state file:
a kill at any moment leaves either the old or the new bundle, complete. A target that is a
file, or a non-empty directory that is not a bundle, is refused before anything is written
(:func:`check_bundle_target`, also called before training).

Loading checks the manifest before reading the state (format, known parameters, sorted unique
classes, state file name and checksum), then checks that the components' own classes agree
with the manifest's, so an edited or damaged bundle fails with a reason instead of a wrong
answer or a traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from prodcat.errors import ModelError, ProdcatError
from prodcat.persist import file_sha256, load_state, save_state

if TYPE_CHECKING:
    from prodcat.presets import PresetSpec

BUNDLE_FORMAT = 2
BUNDLE_MANIFEST = "prodcat.json"
LEGACY_COMPONENTS = "components.joblib"
_STATE_NAME = re.compile(r"^state-[0-9a-f]{8,32}\.npz$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def unsavable_components(spec: "PresetSpec") -> list[str]:
    """Names of the recipe's components the code-free format cannot store yet (torch-based ones:
    deep text models and early fusion), so training can refuse them before it starts."""
    return [c.name for c in spec.components if c.kind in ("deep_text", "early_fusion")]


def check_savable(spec: "PresetSpec", what: str) -> None:
    """Raise before training when a bundle of ``spec`` could not be saved safely."""
    names = unsavable_components(spec)
    if names:
        raise ProdcatError(f"{what}: the component(s) {', '.join(names)} keep torch weights, which the safe "
                           "bundle format cannot store yet; choose a preset without them (fast, image, balanced)")


def check_bundle_target(target: str | os.PathLike[str]) -> Path:
    """Raise :class:`~prodcat.errors.ProdcatError` unless ``target`` can receive a bundle: absent,
    an empty directory, or an existing bundle (its other files are kept)."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise ProdcatError(f"{target}: exists and is a file, not a model bundle folder; choose another --out")
    if target.is_dir() and any(target.iterdir()) and not (target / BUNDLE_MANIFEST).is_file():
        raise ProdcatError(f"{target}: exists, is not empty and is not a prodcat model bundle; refusing to "
                           "write into it (choose a new or empty folder)")
    return target


def _previous_state_files(folder: Path) -> list[Path]:
    """The state files an existing bundle's manifest names (and a legacy pickle), to remove after commit."""
    old = []
    try:
        manifest = json.loads((folder / BUNDLE_MANIFEST).read_text(encoding="utf-8"))
        name = (manifest.get("state") or {}).get("file") if isinstance(manifest, dict) else None
        if isinstance(name, str) and _STATE_NAME.match(name):
            old.append(folder / name)
    except (OSError, ValueError, AttributeError):
        pass
    if (folder / LEGACY_COMPONENTS).is_file():
        old.append(folder / LEGACY_COMPONENTS)
    return old


def _commit(folder: Path, put_state: Callable[[Path], str], manifest: dict[str, Any]) -> None:
    """Write a state file under a fresh name, then the manifest naming it (atomic replace)."""
    name = f"state-{uuid.uuid4().hex[:16]}.npz"
    tmp_state = folder / f".{name}.tmp"
    try:
        digest = put_state(tmp_state)
        os.replace(tmp_state, folder / name)
    finally:
        tmp_state.unlink(missing_ok=True)
    manifest = {**manifest, "state": {"file": name, "sha256": digest}}
    tmp_manifest = folder / f".{BUNDLE_MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        tmp_manifest.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp_manifest, folder / BUNDLE_MANIFEST)
    except BaseException:
        tmp_manifest.unlink(missing_ok=True)
        (folder / name).unlink(missing_ok=True)
        raise


def _publish(target: str | os.PathLike[str], put_state: Callable[[Path], str], manifest: dict[str, Any]) -> Path:
    target = check_bundle_target(target)
    if target.is_dir() and any(target.iterdir()):  # an existing bundle: the manifest is the commit point
        old = _previous_state_files(target)
        _commit(target, put_state, manifest)
        for path in old:
            path.unlink(missing_ok=True)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        _commit(staging, put_state, manifest)
        if target.is_dir():
            target.rmdir()  # empty (checked above); fails rather than lose a file created meanwhile
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def write_bundle(target: str | os.PathLike[str], state: Any, manifest: dict[str, Any]) -> Path:
    """Atomically write a bundle (``state`` in the code-free format, ``manifest`` as JSON)."""
    return _publish(target, lambda path: save_state(state, path), manifest)


def copy_bundle(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Atomically install a copy of the bundle in ``source`` at ``target`` (hard link when possible)."""
    source = Path(source)
    manifest = read_manifest(source)
    state_file = source / check_manifest_state(manifest, source)["file"]

    def put_state(path: Path) -> str:
        try:
            os.link(state_file, path)
        except OSError:
            shutil.copyfile(state_file, path)
        return file_sha256(path)

    return _publish(target, put_state, {k: v for k, v in manifest.items() if k != "state"})


# --- reading and checking ---------------------------------------------------------------------


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The bundle's manifest (config, versions, metrics) without loading the model."""
    manifest_path = Path(path) / BUNDLE_MANIFEST
    if not manifest_path.is_file():
        raise ModelError(f"{path}: not a prodcat model bundle (no {BUNDLE_MANIFEST})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelError(f"{manifest_path}: unreadable manifest ({error})") from error
    if not isinstance(manifest, dict):
        raise ModelError(f"{manifest_path}: unreadable manifest (not a JSON object)")
    return manifest


def check_format(manifest: dict[str, Any], path: object) -> None:
    """Refuse bundles of another format; format 1 (pickle) gets a message saying how to retrain."""
    found = manifest.get("format")
    if found == 1:
        raise ModelError(f"{path}: bundle format 1 stores pickled components, which could run code when "
                         f"loaded; this prodcat only loads format {BUNDLE_FORMAT}. Retrain the model "
                         "(prodcat train ... --out DIR) to get a safe bundle")
    if found != BUNDLE_FORMAT:
        raise ModelError(f"{path}: bundle format {found!r} is not supported (this prodcat reads format "
                         f"{BUNDLE_FORMAT})")


def check_manifest_state(manifest: dict[str, Any], path: object) -> dict[str, str]:
    """The manifest's ``state`` entry (file name and SHA-256), checked."""
    state = manifest.get("state")
    if (not isinstance(state, dict) or not isinstance(state.get("file"), str) or not _STATE_NAME.match(state["file"])
            or not isinstance(state.get("sha256"), str) or not _SHA256.match(state["sha256"])):
        raise ModelError(f"{path}: the manifest does not name a valid state file and checksum")
    return state


def check_params(params: Any, allowed: Iterable[str], path: object) -> dict[str, Any]:
    """The constructor parameters of the manifest; unknown names are an error."""
    if not isinstance(params, dict):
        raise ModelError(f"{path}: the manifest's params are not an object")
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ModelError(f"{path}: the manifest has unknown parameter(s) {', '.join(map(repr, unknown))}; "
                         "it was edited or made by another prodcat")
    return params


def check_classes(manifest: dict[str, Any], path: object) -> np.ndarray:
    """The manifest's classes: integers, unique and in increasing order (as ``np.unique`` gives)."""
    classes = manifest.get("classes")
    if (not isinstance(classes, list) or len(classes) < 2
            or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes)):
        raise ModelError(f"{path}: the manifest's classes are not a list of at least two integer codes")
    array = np.asarray(classes, dtype=np.int64)
    if not (np.diff(array) > 0).all():
        raise ModelError(f"{path}: the manifest's classes are not unique and in increasing order "
                         "(edited or damaged bundle)")
    return array


def read_state(path: str | os.PathLike[str], manifest: dict[str, Any]) -> dict[str, Any]:
    """The bundle's state, after checking the file against the manifest's checksum."""
    entry = check_manifest_state(manifest, path)
    state_path = Path(path) / entry["file"]
    if not state_path.is_file():
        raise ModelError(f"{path}: the state file {entry['file']} named by the manifest is missing")
    try:
        digest = file_sha256(state_path)
    except OSError as error:
        raise ModelError(f"{path}: cannot read {entry['file']} ({error.strerror or error})") from None
    if digest != entry["sha256"]:
        raise ModelError(f"{path}: {entry['file']} does not match the manifest's checksum (truncated, damaged or "
                         "edited); retrain or restore the bundle")
    state = load_state(state_path)
    if not isinstance(state, dict) or not isinstance(state.get("components"), dict) or not state["components"]:
        raise ModelError(f"{path}: {entry['file']} holds no components")
    return state


def check_state_classes(state: dict[str, Any], classes: np.ndarray, component_names: Any, path: object) -> None:
    """The components' and fusers' own classes agree with the manifest's classes."""
    if list(component_names or []) != list(state["components"]):
        raise ModelError(f"{path}: the manifest lists components {component_names!r}, the state holds "
                         f"{list(state['components'])}")
    seen: set[int] = set()
    for name, model in state["components"].items():
        own = np.asarray(getattr(model, "classes_", []))
        if own.size == 0 or not np.isin(own, classes).all():
            raise ModelError(f"{path}: component {name!r} predicts classes the manifest does not list "
                             "(edited or damaged bundle)")
        seen.update(int(c) for c in own)
    for fuser in ("fuser", "blend"):
        model = state.get(fuser)
        if model is not None and not np.array_equal(np.asarray(model.classes_), classes):
            raise ModelError(f"{path}: the {fuser}'s classes differ from the manifest's (edited or damaged bundle)")
    if state.get("fuser") is None and seen != {int(c) for c in classes}:
        raise ModelError(f"{path}: the manifest's classes differ from the components' (edited or damaged bundle)")
    prior = np.asarray(state.get("prior", []))
    if prior.shape != (len(classes),):
        raise ModelError(f"{path}: the class prior does not match the manifest's {len(classes)} classes")
