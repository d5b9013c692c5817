"""What an engine does: batch prediction, image embedding and independent tasks (``map``)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Sequence, TypeVar

import pandas as pd

from prodcat.engines.batch import OutputSpec
from prodcat.engines.source import ProductSource

T = TypeVar("T")
R = TypeVar("R")

#: ``shared`` left out of :meth:`Engine.map`.
NOTHING: Any = object()

#: Rows per chunk the local engine reads and predicts at once (tens of MB of text).
DEFAULT_CHUNK_ROWS = 20_000


@dataclass
class PredictStats:
    """What one batch prediction did."""

    path: Path
    n_rows: int
    n_review: int | None  # products flagged needs_review (None: no table or no threshold)
    n_shards: int
    seconds: float
    engine: str
    n_images_found: int | None = None  # products whose photo exists (None: no images folder, or Ray)
    n_unusable_photos: int | None = None  # photos the model could not use (None: not counted, Ray)
    unusable_photos: list[tuple[str, str]] = field(default_factory=list)  # the first few (path, reason)

    @property
    def rows_per_second(self) -> float:
        return self.n_rows / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """One line for people."""
        return (f"Wrote {self.n_rows:,} predictions to {self.path} ({self.engine} engine, {self.n_shards} shard(s), "
                f"{self.seconds:.1f} s, {self.rows_per_second:,.0f} products/s)")


def count_review(rows: pd.DataFrame) -> int | None:
    """Products flagged ``needs_review`` in a chunk of output rows (None when there is no flag)."""
    if "needs_review" not in rows.columns or rows["needs_review"].isna().all():
        return None
    return int(rows["needs_review"].fillna(False).astype(bool).sum())


class Engine:
    """Base class: an engine is a context manager (``with get_engine(...) as engine``)."""

    name = "engine"

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release what the engine started."""

    def predict(self, model_dir: str | Path, source: ProductSource, out: str | Path, *,
                output: OutputSpec = OutputSpec(), chunk_rows: int = DEFAULT_CHUNK_ROWS,
                cache_dir: str | None = None) -> PredictStats:
        """Predict every product of ``source`` and write one CSV at ``out`` (shards, then one file);
        ``cache_dir``: the image embedding cache of the model's image components."""
        raise NotImplementedError

    def embed(self, paths: Sequence[str], *, cache_dir: str | None = None, backbone: str = "lite0",
              workers: int | None = None):
        """Fill the embedding cache for ``paths``; returns :class:`~prodcat.image.embed.EmbedStats`."""
        raise NotImplementedError

    def map(self, fn: Callable[..., R], tasks: Iterable[T], shared: Any = NOTHING) -> list[R]:
        """``[fn(task) for task in tasks]`` (``fn(task, shared)`` when ``shared`` is given), possibly in
        parallel; results in task order. ``shared`` (e.g. the training inputs of every fold fit) is
        sent to the workers once, not with each task; ``fn`` must be picklable (a module-level function,
        or a closure over small objects) for Ray."""
        raise NotImplementedError


class Timer:
    """Seconds since creation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def add_review(total: int | None, rows: pd.DataFrame) -> int | None:
    """Running ``needs_review`` count."""
    count = count_review(rows)
    return total if count is None else (total or 0) + count

