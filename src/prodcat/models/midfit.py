"""Mid-fit checkpoints of a torch training run, so that an interrupted fit continues from its last step.

One file per folder, :data:`MIDFIT_FILE`: a safetensors file whose tensors are NumPy arrays
(weights, optimiser moments, random states) and whose header carries one JSON document (the
rest: counters, schedule, history). It is written to a temporary sibling then renamed over the
previous one, so a reader sees the last complete checkpoint or none. Reading it runs no code:
safetensors holds raw arrays only, and the JSON is plain data (never pickle, never ``torch.load``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from prodcat.errors import ModelError
from prodcat.persist import atomic_write

MIDFIT_FILE = "midfit.safetensors"
MIDFIT_FORMAT = "prodcat-midfit/1"
_HEADER_KEY = "prodcat"


class MidFitError(ModelError):
    """A mid-fit checkpoint that cannot be read (damaged, or not one of ours)."""


def save_midfit(folder: str | os.PathLike[str], tensors: dict[str, np.ndarray], document: dict[str, Any]) -> Path:
    """Write ``tensors`` and ``document`` (JSON data) as the checkpoint of ``folder`` (atomically); its path."""
    from safetensors.numpy import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MIDFIT_FILE
    header = json.dumps({"format": MIDFIT_FORMAT, **document})
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(arrays, str(tmp), metadata={_HEADER_KEY: header}))
    return path


def load_midfit(folder: str | os.PathLike[str]) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """(tensors, document) of the checkpoint in ``folder``; None when there is none. A file that is
    not a readable checkpoint raises :class:`MidFitError` (nothing in it is executed)."""
    from safetensors import safe_open

    path = Path(folder) / MIDFIT_FILE
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="np") as handle:
            header = (handle.metadata() or {}).get(_HEADER_KEY)
            if not isinstance(header, str):
                raise MidFitError(f"{path}: not a prodcat mid-fit checkpoint (no header)")
            document = json.loads(header)
            if not isinstance(document, dict) or document.get("format") != MIDFIT_FORMAT:
                raise MidFitError(f"{path}: not a {MIDFIT_FORMAT} checkpoint")
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except MidFitError:
        raise
    except Exception as error:  # safetensors' own errors, JSON errors, truncated files
        raise MidFitError(f"{path}: unreadable ({type(error).__name__}: {error or 'no detail'})") from None
    return tensors, document
