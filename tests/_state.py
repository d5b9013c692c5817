"""Test helpers for code-free state files (:mod:`prodcat.persist`)."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from prodcat.persist import TRUSTED_TYPES, load_state, save_state


def assert_no_pickle(path: Path) -> None:
    """Every member of the npz is a plain ``.npy`` array (no object dtype, hence no pickle), every
    array reads with ``allow_pickle=False``, and the structure names only trusted classes."""
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            assert member.endswith(".npy"), member
            with archive.open(member) as handle:
                major, _ = np.lib.format.read_magic(handle)
                read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
                _, _, dtype = read_header(handle)
            assert not dtype.hasobject, f"{member} holds pickled objects ({dtype})"
    with np.load(path, allow_pickle=False) as arrays:
        for name in arrays.files:
            assert arrays[name].dtype.kind != "O"
        structure = arrays["__structure__"].tobytes().decode("utf-8")
    named = {node["cls"] for node in _nodes(json.loads(structure)) if node.get("t") == "obj"}
    assert named and named <= TRUSTED_TYPES, named - TRUSTED_TYPES


def _nodes(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _nodes(value)


def state_round_trip(model: Any, path: Path) -> Any:
    """``model`` saved with :func:`save_state` (checked free of pickle) and loaded back."""
    save_state(model, path)
    assert_no_pickle(path)
    loaded = load_state(path)
    assert type(loaded) is type(model)
    assert not any(k.startswith("_cache") for k in vars(loaded))
    return loaded
