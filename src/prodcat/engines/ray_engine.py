"""The Ray engine: Ray Data for batch prediction and embedding, Ray tasks for independent fits.

Only this module imports Ray, and only when the Ray engine is asked for. With no address a local
Ray runtime starts on this machine (bound to 127.0.0.1, no dashboard, no usage statistics) and
stops when the engine closes; with an address the engine joins that cluster and leaves it
running. The model bundle, the input file and the embedding cache must be readable at the same
path on every node (a shared file system) when a cluster has more than one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np
import pandas as pd

from prodcat.engines.base import DEFAULT_CHUNK_ROWS, NOTHING, Engine, PredictStats, Timer, add_review
from prodcat.engines.batch import ERROR_FIELD, INDEX_FIELD, BatchPredictor, OutputSpec
from prodcat.engines.sink import ShardedOutput
from prodcat.engines.source import ProductSource
from prodcat.errors import ProdcatError
from prodcat.image.embed import EmbedStats

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = "pip install 'prodcat[ray]'"
#: Rows per Ray batch: small enough to spread a file over the actors and keep memory bounded.
BATCH_ROWS = 5_000
#: CPUs a read task asks for: none, so that a pool of actors holding every CPU cannot starve the reads.
READ_CPUS = 0
#: Largest block a read yields: a reader streams a file of any size in blocks of about this size.
BLOCK_BYTES = 16 * 2**20
#: Worker environment of a local runtime: two malloc arenas, as Ray's threads otherwise grow one each (memory).
WORKER_ENV = {"MALLOC_ARENA_MAX": "2"}
#: Object store of a local runtime: it only holds the batches in flight.
LOCAL_OBJECT_STORE_BYTES = 128 * 2**20


def import_ray() -> Any:
    """The ``ray`` module, or a :class:`ProdcatError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ProdcatError(f"the Ray engine needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def user_error(error: BaseException) -> ProdcatError | None:
    """The :class:`ProdcatError` a Ray task raised, found in the chain of errors Ray wraps it in."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ProdcatError):
            return current
        todo += [getattr(current, "cause", None), current.__cause__, current.__context__]
    return None


class _EmbedBatch:
    """Ray actor: one embedder per actor (the backbone loaded once); fills the shared cache."""

    def __init__(self, backbone: str, cache_dir: str | None) -> None:
        from prodcat.image.embed import ImageEmbedder

        self.embedder = ImageEmbedder(backbone, cache_dir=cache_dir, workers=0, progress=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            stats = self.embedder.run([str(p) for p in batch["path"]])
            error = ""
        except ProdcatError as failure:  # e.g. a damaged cache: the driver raises it
            stats, error = EmbedStats(0, 0, 0, 0, 0.0, 0.0), str(failure)
        failures = "\n".join(f"{path}\t{reason}" for path, reason in stats.failures)
        return {"n_images": np.array([stats.n_images]), "n_computed": np.array([stats.n_computed]),
                "n_cached": np.array([stats.n_cached]), "n_failed": np.array([stats.n_failed]),
                "failures": np.array([failures], dtype=object), ERROR_FIELD: np.array([error], dtype=object)}


class RayEngine(Engine):
    """Runs on Ray: a local runtime (``address=None``, ``workers`` CPUs) or an existing cluster."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise ProdcatError(f"--workers must be at least 1, got {workers}")
        self.ray = import_ray()
        self.address = address
        self._started = False
        if not self.ray.is_initialized():
            self._init(address, workers)
            self._started = True
        self.workers = workers or max(1, int(self.ray.cluster_resources().get("CPU", 1)))
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # no execution plans, no progress bar notices
        context = self.ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.execution_options.preserve_order = True  # output rows follow input rows
        context.target_max_block_size = BLOCK_BYTES
        # Ray Data's V2 Parquet reader lists the files in a task that asks for a CPU; when the actor pool
        # already holds every CPU (the default: one actor per CPU) that task never runs and the
        # prediction waits forever (a race: lost when the actors start first). The V1 reader samples the
        # files when the dataset is made, before any actor exists, and its read tasks ask for no CPU.
        context.use_datasource_v2 = False

    def _init(self, address: str | None, workers: int | None) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # never report usage over the network
        # the notice that a local runtime uses token authentication (it does; nothing to act on)
        logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
        options: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                                       configure_logging=False)
        try:
            if address is None:
                self.ray.init(num_cpus=workers or 2, object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                              runtime_env={"env_vars": WORKER_ENV}, **options)
            else:
                self.ray.init(address=address, **options)
        except (ConnectionError, ValueError, RuntimeError) as error:
            where = f"the Ray cluster at {address}" if address else "a local Ray runtime"
            raise ProdcatError(f"cannot start or join {where}: {error}") from None

    def close(self) -> None:
        if self._started and self.ray.is_initialized():
            self.ray.shutdown()
        self._started = False

    def _actor_pool(self, size: int) -> dict[str, Any]:
        """``map_batches`` options: a fixed pool of ``size`` one-CPU actors."""
        return dict(compute=self.ray.data.ActorPoolStrategy(size=size), num_cpus=1)

    def _read(self, source: ProductSource):
        path = str(source.check().resolve())
        if source.is_parquet:
            return self.ray.data.read_parquet(path, num_cpus=READ_CPUS)
        import pyarrow as pa
        import pyarrow.csv as pacsv

        return self.ray.data.read_csv(
            path, num_cpus=READ_CPUS, override_num_blocks=1,  # one streaming reader, not the whole file split
            read_options=pacsv.ReadOptions(encoding=source.encoding),
            parse_options=pacsv.ParseOptions(newlines_in_values=True),
            # as pandas reads it in the local engine: text columns are text, only empty fields are missing
            convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in source.text_columns},
                                                 null_values=[""], strings_can_be_null=True),
        )

    def predict(self, model_dir: str | Path, source: ProductSource, out: str | Path, *,
                output: OutputSpec = OutputSpec(), chunk_rows: int = DEFAULT_CHUNK_ROWS,
                cache_dir: str | None = None) -> PredictStats:
        timer = Timer()
        model_dir = str(Path(model_dir).resolve())
        cache_dir = None if cache_dir is None else str(Path(cache_dir).resolve())
        images = None if source.images_dir is None else str(Path(source.images_dir).resolve())
        source = ProductSource(str(Path(source.path).resolve()), source.text_col, source.description_col, images,
                               source.encoding)
        batch_rows = max(1, min(chunk_rows, BATCH_ROWS))
        predicted = self._read(source).map_batches(
            BatchPredictor, fn_constructor_args=(model_dir, source, output, None, cache_dir),
            fn_constructor_kwargs={"keep_error": True}, batch_format="pandas",
            batch_size=batch_rows, **self._actor_pool(self.workers))
        n_review = None
        with ShardedOutput(out) as sink:
            try:
                for rows in predicted.iter_batches(batch_format="pandas", batch_size=None):
                    if ERROR_FIELD in rows.columns:
                        raise ProdcatError(str(rows[ERROR_FIELD].iloc[0]))
                    if INDEX_FIELD in rows.columns:
                        rows = rows.set_index(INDEX_FIELD)
                    else:
                        rows.index = source.row_numbers(sink.rows, len(rows))
                    sink.write(rows)
                    n_review = add_review(n_review, rows)
            except Exception as error:
                raise user_error(error) or error
            path = sink.finish()
            return PredictStats(path, sink.rows, n_review, len(sink.shards), timer.seconds, self.name)

    def embed(self, paths: Sequence[str], *, cache_dir: str | None = None, backbone: str = "lite0",
              workers: int | None = None):
        from prodcat.image.embed import ImageEmbedder

        timer = Timer()
        cache_dir = None if cache_dir is None else str(Path(cache_dir).resolve())
        ImageEmbedder(backbone, cache_dir=cache_dir).model  # export the backbone once, before the actors load it
        items = pd.DataFrame({"path": [os.path.abspath(p) for p in paths]})
        parts = self.ray.data.from_pandas(items).map_batches(
            _EmbedBatch, fn_constructor_args=(backbone, cache_dir), batch_format="numpy", batch_size=256,
            **self._actor_pool(workers or self.workers))
        totals = dict(n_images=0, n_computed=0, n_cached=0, n_failed=0)
        failures: list[tuple[str, str]] = []
        try:
            for part in parts.iter_batches(batch_format="numpy", batch_size=None):
                for message in part[ERROR_FIELD]:
                    if message:
                        raise ProdcatError(str(message))
                for key in totals:
                    totals[key] += int(part[key].sum())
                for text in part["failures"]:
                    failures += [tuple(line.split("\t", 1)) for line in str(text).splitlines()]  # type: ignore[misc]
        except Exception as error:
            raise user_error(error) or error
        seconds = timer.seconds
        return EmbedStats(**totals, seconds=seconds, images_per_second=totals["n_images"] / seconds if seconds else 0.0,
                          failures=failures)

    def map(self, fn: Callable[..., R], tasks: Iterable[T], shared: Any = NOTHING) -> list[R]:
        remote = self.ray.remote(num_cpus=1)(fn)
        if shared is NOTHING:
            refs = [remote.remote(task) for task in tasks]
        else:
            stored = self.ray.put(shared)  # once in the object store; each task gets it as an argument
            refs = [remote.remote(task, stored) for task in tasks]
        try:
            return self.ray.get(refs)
        except Exception as error:
            raise user_error(error) or error
