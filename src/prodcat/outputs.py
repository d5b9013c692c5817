"""Checks on output paths, run before any work, so nothing a user already has is lost.

The CLI calls these before loading data or training: a wrong ``--out`` fails in a second with
one clear line, never after an hour of training, and never by overwriting an input.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from prodcat.errors import ProdcatError


def check_output_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """``path`` may become a report folder: absent, or an existing empty folder (reports never
    overwrite what a user already has)."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise ProdcatError(f"{out}: exists and is a file; {option} must name a folder (new or empty)")
    if out.is_dir() and any(out.iterdir()):
        raise ProdcatError(f"{out}: already holds files; {option} must name a new or empty folder "
                           "(prodcat never overwrites earlier reports)")
    return out


def check_output_file(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None],
                      option: str = "--out") -> Path:
    """``path`` may receive a file: not a folder, and not one of the ``inputs`` (same file on disk)."""
    out = Path(path)
    if out.is_dir():
        raise ProdcatError(f"{out}: is a folder; {option} must name a file")
    if out.exists():
        for source in inputs:
            if source is not None and Path(source).exists() and os.path.samefile(out, source):
                raise ProdcatError(f"{out}: is also an input file ({source}); refusing to overwrite it, "
                                   f"choose another {option}")
    return out
