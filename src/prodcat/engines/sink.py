"""Prediction output written as shards, then joined into one CSV file atomically.

Each chunk of output rows becomes one shard file (no header) in a private temporary folder next
to the output; :meth:`ShardedOutput.finish` writes the header and the shards, in order, into a
temporary sibling of the output and renames it into place. Memory holds one chunk at a time; an
interrupted run leaves the output as it was and removes its shards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import pandas as pd

from prodcat.errors import DataError


class ShardedOutput:
    """``with ShardedOutput(path) as out: out.write(rows); ...; out.finish()``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.rows = 0
        self.shards: list[Path] = []
        self._columns: list[str] | None = None
        self._folder: Path | None = None

    def __enter__(self) -> "ShardedOutput":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._folder = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", suffix=".shards", dir=self.path.parent))
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None

    def write(self, rows: pd.DataFrame) -> None:
        """Add one chunk of output rows (indexed like the input) as the next shard."""
        if self._folder is None:
            raise RuntimeError("ShardedOutput.write outside its with block")
        columns = [str(c) for c in rows.columns]
        if self._columns is None:
            self._columns = columns
        elif columns != self._columns:
            raise RuntimeError(f"shard columns changed: {columns} after {self._columns}")
        shard = self._folder / f"part-{len(self.shards):06d}.csv"
        rows.rename_axis(None).to_csv(shard, header=False)
        self.shards.append(shard)
        self.rows += len(rows)

    def finish(self) -> Path:
        """Join the shards into the output file (a temporary sibling, then a rename)."""
        if self._columns is None or not self.rows:
            raise DataError("no products to predict", path=self.path)
        handle, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(("," + ",".join(self._columns) + "\n").encode("utf-8"))
                for shard in self.shards:
                    with open(shard, "rb") as part:
                        shutil.copyfileobj(part, stream, 1 << 20)
            os.chmod(tmp, 0o666 & ~_umask())  # as a plain open() would have made it
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
