"""Text printed on product photos (book covers, game boxes, packaging), read by OCR.

RapidOCR (``rapidocr-onnxruntime``: PP-OCR detection and recognition models shipped inside the
package, run with onnxruntime; nothing is downloaded) reads each photo once, about 0.3 s a photo
on 2 cores. The text is kept in the cache folder (``ocr/index.sqlite``), keyed by the file's
absolute path, size and modification time (an in-memory image by a hash of its bytes) and by the
OCR package's version, so later fits and predictions on the same photos read it back. Each batch
of photos is committed as it is read: an interrupted run keeps what it has read.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from prodcat.errors import ModelError
from prodcat.image.cache import FileId
from prodcat.image.cachedir import default_cache_dir

OCR_PACKAGE = "rapidocr-onnxruntime"
_SCHEMA = """CREATE TABLE IF NOT EXISTS texts (
    tag TEXT NOT NULL, key TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    text TEXT NOT NULL, PRIMARY KEY (tag, key))"""
_COMMIT_EVERY = 16  # photos read between two commits
_DECODE_LIMIT = (1600, 1600)  # larger JPEGs are decoded at a reduced scale, never below this


def _engine() -> Any:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as exc:  # the package, or OpenCV's system libraries (libGL, GLib) on slim images
        raise ModelError(f"reading the text on photos needs {OCR_PACKAGE} ({exc}): pip install 'prodcat[image]'; "
                         "on a slim Linux image also apt-get install libgl1 libglib2.0-0") from None
    return RapidOCR()


def _identity(image: str | os.PathLike[str] | bytes) -> tuple[str, int, int]:
    """(key, size, mtime_ns) of a file, or of in-memory bytes (keyed by their hash)."""
    if isinstance(image, (bytes, bytearray)):
        return "sha256:" + hashlib.sha256(image).hexdigest(), len(image), 0
    file = FileId.of(image)
    return file.path, file.size, file.mtime_ns


class PhotoTextReader:
    """Reads the text on photos with OCR, through a cache in ``cache_dir``/ocr (default: prodcat's
    cache folder). ``progress``: a tqdm bar while photos are being read."""

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, *, progress: bool = False) -> None:
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.progress = progress
        try:
            self.tag = f"{OCR_PACKAGE}-{importlib.metadata.version(OCR_PACKAGE)}"
        except importlib.metadata.PackageNotFoundError:
            self.tag = OCR_PACKAGE
        self._ocr: Any = None

    def _connect(self) -> sqlite3.Connection:
        folder = self.root / "ocr"
        folder.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(folder / "index.sqlite", timeout=60)
        connection.execute(_SCHEMA)
        return connection

    def read_one(self, image: str | os.PathLike[str] | bytes) -> str:
        """The text on one photo (space-separated lines), without the cache; "" when it has none."""
        from prodcat.image.io import load_rgb

        if self._ocr is None:
            self._ocr = _engine()
        pixels = np.ascontiguousarray(np.asarray(load_rgb(image, draft=_DECODE_LIMIT))[:, :, ::-1])  # BGR
        found, _ = self._ocr(pixels)
        return " ".join(str(line[1]) for line in found or [])

    def read(self, images: Sequence[str | os.PathLike[str] | bytes]) -> list[str]:
        """The text on each photo, from the cache or read now; "" for a photo that cannot be decoded
        (the image embedder reports those)."""
        from tqdm.auto import tqdm

        from prodcat.image.io import ImageError

        keys: list[tuple[str, int, int] | None] = []
        for image in images:
            try:
                keys.append(_identity(image))
            except OSError:
                keys.append(None)
        out = [""] * len(images)
        todo: dict[str, list[int]] = {}
        with closing(self._connect()) as connection, connection:
            for i, key in enumerate(keys):
                if key is None:
                    continue
                row = connection.execute("SELECT size, mtime_ns, text FROM texts WHERE tag = ? AND key = ?",
                                         (self.tag, key[0])).fetchone()
                if row is not None and (row[0], row[1]) == key[1:]:
                    out[i] = row[2]
                else:
                    todo.setdefault(key[0], []).append(i)
            with tqdm(total=len(todo), desc="text on photos (OCR)", unit="img", disable=not (self.progress and todo),
                      leave=False) as bar:
                for done, positions in enumerate(todo.values(), start=1):
                    try:
                        text = self.read_one(images[positions[0]])
                    except ImageError:
                        text = ""
                    for i in positions:
                        out[i] = text
                    key = keys[positions[0]]
                    assert key is not None
                    connection.execute("INSERT OR REPLACE INTO texts VALUES (?, ?, ?, ?, ?)", (self.tag, *key, text))
                    if done % _COMMIT_EVERY == 0:
                        connection.commit()
                    bar.update(1)
        return out
