"""Stage checkpoints of a fit, so that an interrupted fit resumes instead of restarting.

A :class:`CheckpointStore` is a folder. As each component fit of a plan finishes, the plan saves
it under its stage key (``holdout/text``, ``fold2/neural_simple``, ``final/minilm``): the fitted
estimator (when the plan keeps it), the probabilities it gave the held-out rows (when it scored
some) and its fit seconds, in :mod:`prodcat.persist`'s code-free format (one ``.npz`` per key,
written atomically: temporary sibling + rename). Loading never runs code from it. The folder's
``identity.json`` ties it to one training set (fingerprint), recipe and seed: a store opened for
anything else is refused, so a checkpoint is never mixed into another fit.

A component that can save its state mid-way (``minilm``) is handed :meth:`CheckpointStore.partial_dir`,
``partial/<quoted key>/``, for its own mid-fit checkpoints; once that fit finishes and is saved
under its key, the partial folder is deleted (:meth:`CheckpointStore.drop_partial`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from prodcat.errors import ModelError
from prodcat.persist import atomic_write, load_state, save_state

IDENTITY_FILE = "identity.json"
PARTIAL_DIR = "partial"


@dataclass
class Checkpoint:
    """What one finished component fit left: its estimator (or None), held-out probabilities (or None), seconds."""

    model: Any
    proba: np.ndarray | None
    seconds: float


class CheckpointStore:
    """The checkpoints of one fit in ``folder``; ``identity`` (plain JSON data) names the data, recipe
    and seed they belong to. Opening a folder written for another identity raises :class:`ModelError`."""

    def __init__(self, folder: str | os.PathLike[str], identity: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / IDENTITY_FILE
        identity = json.loads(json.dumps(identity))  # plain data, as it reads back
        if path.exists():
            try:
                saved = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as error:
                raise ModelError(f"{path}: unreadable ({error}); delete the folder to start over") from None
            if saved != identity:
                differs = sorted(k for k in set(saved) | set(identity) if saved.get(k) != identity.get(k))
                raise ModelError(f"the checkpoints in {self.folder} belong to another fit ({', '.join(differs)} "
                                 "differ): resume with the same data and settings")
        else:
            atomic_write(path, lambda tmp: tmp.write_text(json.dumps(identity, indent=2), encoding="utf-8"))

    def _path(self, key: str) -> Path:
        return self.folder / f"{quote(key, safe='')}.npz"

    def has(self, key: str) -> bool:
        """True when the fit ``key`` finished and was saved."""
        return self._path(key).is_file()

    def keys(self) -> list[str]:
        """The saved keys (for messages and tests)."""
        from urllib.parse import unquote

        return sorted(unquote(p.name[:-4]) for p in self.folder.glob("*.npz"))

    def partial_dir(self, key: str) -> Path:
        """The folder (not created here) where the fit ``key`` may keep mid-fit checkpoints."""
        return self.folder / PARTIAL_DIR / quote(key, safe="")

    def drop_partial(self, key: str) -> None:
        """Delete the mid-fit checkpoints of ``key`` (superseded by its saved fit)."""
        shutil.rmtree(self.partial_dir(key), ignore_errors=True)

    def save(self, key: str, *, model: Any, proba: np.ndarray | None, seconds: float) -> None:
        """Save the fit ``key`` (atomically)."""
        state = {"model": model, "proba": None if proba is None else np.asarray(proba), "seconds": float(seconds)}
        atomic_write(self._path(key), lambda tmp: save_state(state, tmp))

    def load(self, key: str) -> Checkpoint:
        """The fit ``key`` as saved (code-free load; a damaged file raises :class:`ModelError`)."""
        state = load_state(self._path(key))
        if not isinstance(state, dict) or not {"model", "proba", "seconds"} <= set(state):
            raise ModelError(f"{self._path(key)}: not a checkpoint; delete it to refit that stage")
        return Checkpoint(state["model"], state["proba"], float(state["seconds"]))

