"""Where prodcat keeps what it can rebuild: exported ONNX models and image features."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "PRODCAT_CACHE_DIR"


def default_cache_dir() -> Path:
    """``$PRODCAT_CACHE_DIR`` when set, else the user cache directory (e.g. ``~/.cache/prodcat``)."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("prodcat", appauthor=False))
