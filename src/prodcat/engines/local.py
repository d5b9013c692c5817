"""The local engine (default): this process, one chunk at a time."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

from prodcat.engines.base import DEFAULT_CHUNK_ROWS, NOTHING, Engine, PredictStats, Timer, add_review
from prodcat.engines.batch import BatchPredictor, OutputSpec
from prodcat.engines.sink import ShardedOutput
from prodcat.engines.source import ProductSource, read_chunks

T = TypeVar("T")
R = TypeVar("R")


class LocalEngine(Engine):
    """Runs everything in this process; memory holds the model and one chunk."""

    name = "local"

    def __init__(self, model: object = None) -> None:
        self.model = model  # an already loaded ProductClassifier, to avoid loading the bundle twice

    def predict(self, model_dir: str | Path, source: ProductSource, out: str | Path, *,
                output: OutputSpec = OutputSpec(), chunk_rows: int = DEFAULT_CHUNK_ROWS,
                cache_dir: str | None = None) -> PredictStats:
        timer = Timer()
        predictor = BatchPredictor(str(model_dir), source, output, model=self.model, cache_dir=cache_dir)
        n_review = None
        with ShardedOutput(out) as sink:
            for raw in read_chunks(source, chunk_rows):
                rows, _ = predictor.predict(raw, first_row=sink.rows)
                sink.write(rows)
                n_review = add_review(n_review, rows)
            path = sink.finish()
            found = predictor.n_images_found if source.images_dir is not None else None
            return PredictStats(path, sink.rows, n_review, len(sink.shards), timer.seconds, self.name, found,
                                predictor.n_unusable_photos, predictor.unusable_photos)

    def embed(self, paths: Sequence[str], *, cache_dir: str | None = None, backbone: str = "lite0",
              workers: int | None = None):
        from prodcat.image.embed import ImageEmbedder

        return ImageEmbedder(backbone, cache_dir=cache_dir, workers=workers).run(paths)

    def map(self, fn: Callable[..., R], tasks: Iterable[T], shared: Any = NOTHING) -> list[R]:
        return [fn(task) if shared is NOTHING else fn(task, shared) for task in tasks]
