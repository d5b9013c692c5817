"""On-disk store of image feature vectors, keyed by file identity and model.

Layout under ``root``::

    index.sqlite            (tag, path) -> size, mtime_ns, shard, row   and remembered failures
    shards/<uuid>.npy       float32 (k, dim) blocks, written once, renamed into place

A file's identity is its absolute path, size and modification time (ns); the ``tag`` names the
backbone export and the preprocessing version, so changing either never reuses old vectors.
Each :meth:`FeatureStore.put` writes one shard atomically and then commits its index rows in
one transaction: an interrupted run keeps every block written before the interruption, and a
crash in between leaves only an unreferenced shard (removed by :meth:`FeatureStore.prune`).
SQLite serialises concurrent writers, so two processes may share a store.

A damaged store repairs itself: an index that is not a valid SQLite database is moved aside
(``index.sqlite.damaged-<time>``) and started afresh; a shard that is missing, truncated or of the
wrong shape has its index rows dropped (and the file removed), so its vectors are computed again
instead of being reported as cached. Each repair prints one warning line on stderr.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

_SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    tag TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    shard TEXT NOT NULL, row INTEGER NOT NULL, PRIMARY KEY (tag, path));
CREATE TABLE IF NOT EXISTS failures (
    tag TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL, PRIMARY KEY (tag, path));
"""
_LOOKUP_CHUNK = 500  # paths per SELECT (SQLite limits bound parameters)
_OPEN_SHARDS = 16  # memory-mapped shards kept open while reading


@dataclass(frozen=True)
class FileId:
    """Identity of an image file: absolute path, size in bytes, modification time in ns."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: str | os.PathLike[str]) -> "FileId":
        """Stat ``path`` (raises OSError such as FileNotFoundError)."""
        absolute = os.path.abspath(os.fspath(path))
        st = os.stat(absolute)
        return cls(absolute, st.st_size, st.st_mtime_ns)


@dataclass(frozen=True)
class Hit:
    """What the store knows about a file: where its vector is, or why it could not be used."""

    shard: str | None = None
    row: int = -1
    failure: str | None = None


class FeatureStore:
    """Append-only store of float32 vectors of dimension ``dim`` for one model ``tag``."""

    def __init__(self, root: str | os.PathLike[str], *, tag: str, dim: int) -> None:
        self.root = Path(root)
        self.tag = tag
        self.dim = int(dim)
        self.shard_dir = self.root / "shards"
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self.repairs: list[str] = []
        try:
            self._db = self._connect()
        except sqlite3.DatabaseError as error:  # garbage or truncated index: keep it aside, start afresh
            self._set_aside_index(error)
            self._db = self._connect()
        self._open: OrderedDict[str, np.ndarray] = OrderedDict()
        self._checked: set[str] = set()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.root / "index.sqlite", timeout=120)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            (verdict,) = db.execute("PRAGMA quick_check").fetchone()
            if verdict != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {verdict}")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            db.commit()
        except BaseException:
            db.close()
            raise
        return db

    def _set_aside_index(self, error: Exception) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        index = self.root / "index.sqlite"
        aside = self.root / f"index.sqlite.damaged-{stamp}"
        os.replace(index, aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{index}{suffix}").unlink(missing_ok=True)
        self._warn(f"the embedding cache index {index} was damaged ({error}); moved to {aside.name} and "
                   "rebuilt: its vectors will be computed again")

    def _warn(self, message: str) -> None:
        from tqdm.auto import tqdm  # clears a progress bar on the same terminal line, then redraws it

        self.repairs.append(message)
        tqdm.write(f"warning: {message}", file=sys.stderr)

    def __enter__(self) -> "FeatureStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the index and release memory-mapped shards."""
        self._open.clear()
        self._db.close()

    def __len__(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM features WHERE tag = ?", (self.tag,)).fetchone()
        return int(n)

    def _shard_usable(self, name: str, rows: int) -> bool:
        """True when the shard file holds a ``(>= rows, dim)`` float32 array; else drop it from the
        index (its files are computed again) and say so once."""
        if name in self._checked:
            return True
        try:
            arr = self._shard(name)
            usable = arr.ndim == 2 and arr.shape[1] == self.dim and arr.shape[0] >= rows and arr.dtype == np.float32
            problem = f"shape {arr.shape}, dtype {arr.dtype}"
        except FileNotFoundError:
            usable, problem = False, "missing"
        except (OSError, ValueError, EOFError) as error:
            usable, problem = False, f"unreadable: {error}"
        if usable:
            self._checked.add(name)
            return True
        self._open.pop(name, None)
        with self._db:
            (n,) = self._db.execute("SELECT COUNT(*) FROM features WHERE shard = ?", (name,)).fetchone()
            self._db.execute("DELETE FROM features WHERE shard = ?", (name,))
        (self.shard_dir / name).unlink(missing_ok=True)
        self._warn(f"embedding cache shard {name} is damaged ({problem}); its {n} vector(s) will be computed again")
        return False

    def lookup(self, files: Sequence[FileId]) -> list[Hit | None]:
        """For each file, a :class:`Hit` when stored with the same size and mtime (in a usable
        shard), else None."""
        found: dict[str, Hit] = {}
        wanted = {f.path: f for f in files}
        paths = list(wanted)
        for start in range(0, len(paths), _LOOKUP_CHUNK):
            chunk = paths[start : start + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(chunk))
            for path, size, mtime, shard, row in self._db.execute(
                f"SELECT path, size, mtime_ns, shard, row FROM features WHERE tag = ? AND path IN ({marks})",
                (self.tag, *chunk),
            ):
                f = wanted[path]
                if (size, mtime) == (f.size, f.mtime_ns):
                    found[path] = Hit(shard=shard, row=int(row))
            needed: dict[str, int] = {}
            for hit in found.values():
                if hit.shard is not None:
                    needed[hit.shard] = max(needed.get(hit.shard, 0), hit.row + 1)
            damaged = {name for name, rows in needed.items() if not self._shard_usable(name, rows)}
            if damaged:
                found = {p: h for p, h in found.items() if h.shard not in damaged}
            for path, size, mtime, reason in self._db.execute(
                f"SELECT path, size, mtime_ns, reason FROM failures WHERE tag = ? AND path IN ({marks})",
                (self.tag, *chunk),
            ):
                f = wanted[path]
                if (size, mtime) == (f.size, f.mtime_ns) and path not in found:
                    found[path] = Hit(failure=reason)
        return [found.get(f.path) for f in files]

    def _shard(self, name: str) -> np.ndarray:
        arr = self._open.get(name)
        if arr is None:
            arr = np.load(self.shard_dir / name, mmap_mode="r")
            self._open[name] = arr
            if len(self._open) > _OPEN_SHARDS:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(name)
        return arr

    def read(self, hits: Sequence[Hit]) -> np.ndarray:
        """Vectors ``(len(hits), dim)`` for hits that point at a shard row."""
        out = np.empty((len(hits), self.dim), dtype=np.float32)
        by_shard: dict[str, list[int]] = {}
        for i, hit in enumerate(hits):
            if hit.shard is None:
                raise ValueError("cannot read a vector for a remembered failure")
            by_shard.setdefault(hit.shard, []).append(i)
        for name, positions in by_shard.items():
            rows = np.fromiter((hits[i].row for i in positions), dtype=np.int64, count=len(positions))
            out[positions] = self._shard(name)[rows]
        return out

    def put(self, files: Sequence[FileId], vectors: np.ndarray) -> None:
        """Store one block of vectors (one shard file, one index transaction)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(files), self.dim):
            raise ValueError(f"expected vectors of shape ({len(files)}, {self.dim}), got {vectors.shape}")
        if not files:
            return
        name = f"{uuid.uuid4().hex}.npy"
        tmp = self.shard_dir / f".{name}.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, vectors)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.shard_dir / name)
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO features VALUES (?, ?, ?, ?, ?, ?)",
                [(self.tag, f.path, f.size, f.mtime_ns, name, row) for row, f in enumerate(files)],
            )
            self._db.executemany(
                "DELETE FROM failures WHERE tag = ? AND path = ?", [(self.tag, f.path) for f in files]
            )

    def put_failures(self, failures: Iterable[tuple[FileId, str]]) -> None:
        """Remember files that cannot be decoded, so re-runs report them without decoding again."""
        rows = [(self.tag, f.path, f.size, f.mtime_ns, reason) for f, reason in failures]
        if rows:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?, ?)", rows)

    def prune(self, *, older_than_s: float = 3600.0) -> int:
        """Delete shard files no index row uses any more (old versions of changed images).

        Only shards older than ``older_than_s`` are touched, so a concurrent writer's fresh shard
        (renamed but not yet indexed) is safe. Returns the number of files removed.
        """
        used = {name for (name,) in self._db.execute("SELECT DISTINCT shard FROM features")}
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in os.scandir(self.shard_dir):
            if entry.name not in used and entry.stat().st_mtime < cutoff:
                self._open.pop(entry.name, None)
                os.unlink(entry.path)
                removed += 1
        return removed
