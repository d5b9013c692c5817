"""Embed product photos with the backbone, through the on-disk feature cache.

Pipeline: stat + cache lookup (main process) -> decode and preprocess (worker processes, a
bounded number of batches in flight) -> onnxruntime (main process, while workers decode the next
batches) -> a block of vectors written to the store every ``flush_every`` images. Memory stays
bounded by the batches in flight and one block, whatever the number of images; an interrupted
run keeps every block already written and the next run only computes the rest.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from prodcat.errors import DataError, ProdcatError
from prodcat.data.missing import is_missing as _is_missing
from prodcat.image.backbone import Backbone, CompositeBackbone, _available_cpus, open_backbone
from prodcat.image.cache import FeatureStore, FileId, Hit
from prodcat.image.cachedir import default_cache_dir
from prodcat.image.io import IN_MEMORY, PREPROCESS_VERSION, ImageError, decode_batch, preprocess

__all__ = ["EmbedStats", "EmbeddingResult", "IMAGE_SUFFIXES", "ImageEmbedder", "default_cache_dir", "embed_folder",
           "image_files"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
_LOOKUP_CHUNK = 2048  # files per cache-lookup round


@dataclass
class EmbedStats:
    """What one embedding run did."""

    n_images: int
    n_computed: int
    n_cached: int
    n_failed: int
    seconds: float
    images_per_second: float
    failures: list[tuple[str, str]] = field(default_factory=list)  # (path, reason), one per file

    def summary(self) -> str:
        """One line for people."""
        return (
            f"{self.n_images} images: {self.n_computed} computed, {self.n_cached} from cache, "
            f"{self.n_failed} failed, in {self.seconds:.1f} s ({self.images_per_second:.0f} img/s)"
        )


@dataclass
class EmbeddingResult:
    """Vectors aligned with the input paths; ``ok`` is False where there is no usable image."""

    vectors: np.ndarray
    ok: np.ndarray
    failures: list[tuple[str, str]]
    stats: EmbedStats | None = None


_PR_SET_PDEATHSIG = 1


def _init_worker(parent: int) -> None:
    """Decoding worker set-up: Ctrl-C is handled by the main process; the worker dies with its
    parent, even when the parent is killed with SIGKILL (Linux ``prctl(PR_SET_PDEATHSIG)``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the CLI's handler inherited through fork
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the parent-watch thread below still applies
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    import threading

    def watch_parent() -> None:  # other platforms (and belt and braces): exit when orphaned
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch_parent, name="prodcat-parent-watch", daemon=True).start()


def _worker_context():
    """fork on Linux: workers start instantly and never re-import the caller's ``__main__``.

    (forkserver/spawn re-run a script that lacks an ``if __name__ == "__main__"`` guard.) The
    forked workers only run Pillow and numpy, never onnxruntime, so its threads are harmless.
    macOS and Windows use spawn, where scripts need the guard.
    """
    if sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


class _Pending:
    """Files that need computing: identities and, for each, the input positions that use it."""

    def __init__(self) -> None:
        self.files: list[FileId] = []
        self.positions: list[list[int]] = []


class ImageEmbedder:
    """Turn image paths into backbone embeddings, reusing and filling the feature cache.

    ``backbone`` is a name from :data:`~prodcat.image.backbone.BACKBONES` or a
    :class:`~prodcat.image.backbone.Backbone`. ``workers`` decoding processes (default: one per
    4 CPUs, at least one: decoding a photo costs about a quarter of embedding it; 0 decodes
    in-process). ``tta``: average each photo's embedding with its mirror image's (see
    :class:`~prodcat.image.backbone.Backbone`; ignored when ``backbone`` is an instance). Vectors go to
    ``cache_dir/features`` (default :func:`default_cache_dir`), flushed every ``flush_every``.
    """

    inline_below = 128
    """With fewer images to compute than this, decode in-process (no worker start-up cost)."""

    def __init__(
        self,
        backbone: str | Backbone | CompositeBackbone = "lite0",
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        workers: int | None = None,
        batch_size: int = 64,
        progress: bool = True,
        flush_every: int = 1024,
        tta: bool = False,
    ) -> None:
        self.backbone = backbone
        self.tta = tta
        self.cache_dir = cache_dir
        self.workers = workers
        self.batch_size = batch_size
        self.progress = progress
        self.flush_every = flush_every
        self._model = backbone if isinstance(backbone, (Backbone, CompositeBackbone)) else None

    @property
    def model(self) -> Backbone | CompositeBackbone:
        """The loaded backbone (exported to ONNX on first use)."""
        if self._model is None:
            self._model = open_backbone(str(self.backbone), cache_dir=self._cache_root(), tta=self.tta)
        return self._model

    def _cache_root(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()

    def _store(self) -> FeatureStore:
        model = self.model
        tag = f"{model.tag}-{model.input_size}px-p{PREPROCESS_VERSION}"
        return FeatureStore(self._cache_root() / "features", tag=tag, dim=model.dim)

    def _n_workers(self) -> int:
        if self.workers is not None:
            if self.workers < 0:
                raise ValueError(f"workers must be >= 0, got {self.workers}")
            return self.workers
        return max(1, math.ceil(_available_cpus() / 4))  # decoding costs ~1/4 of the model's CPU

    def embed(self, paths: Sequence[str | os.PathLike[str] | bytes | None]) -> EmbeddingResult:
        """Embeddings for each path (None or empty = the product has no image).

        An item may also be the encoded image itself (``bytes``, e.g. an upload): it is decoded in
        this process and never cached. Unusable images get a zero vector, ``ok=False`` and a
        ``(path, reason)`` in ``failures``.
        """
        model = self.model
        vectors = np.zeros((len(paths), model.dim), dtype=np.float32)
        ok = np.zeros(len(paths), dtype=bool)

        def deliver(positions: list[list[int]], block: np.ndarray) -> None:
            for where, vector in zip(positions, block):
                vectors[where] = vector
                ok[where] = True

        in_memory = [i for i, p in enumerate(paths) if isinstance(p, (bytes, bytearray))]
        files = [None if isinstance(p, (bytes, bytearray)) else p for p in paths] if in_memory else paths
        stats = self._run(files, deliver)
        if in_memory:
            stats.failures.extend(self._embed_in_memory([paths[i] for i in in_memory], in_memory, deliver))
        return EmbeddingResult(vectors=vectors, ok=ok, failures=stats.failures, stats=stats)

    def _embed_in_memory(self, images: list[bytes], positions: list[int],
                         deliver: Callable[[list[list[int]], np.ndarray], None]) -> list[tuple[str, str]]:
        """Decode encoded images in-process and embed them; returns their failures."""
        decoded, done, failures = [], [], []
        for position, data in zip(positions, images):
            try:
                decoded.append(preprocess(data, self.model.input_size))
                done.append([position])
            except ImageError as exc:
                failures.append((f"{IN_MEMORY} (product {position})", exc.reason))
        if decoded:
            deliver(done, self.model.embed(np.stack(decoded)))
        return failures

    def run(self, paths: Sequence[str | os.PathLike[str] | None]) -> EmbedStats:
        """Fill the cache for ``paths`` without keeping vectors in memory."""
        return self._run(paths, None)

    def _run(
        self,
        paths: Sequence[str | os.PathLike[str] | None],
        deliver: Callable[[list[list[int]], np.ndarray], None] | None,
    ) -> EmbedStats:
        from tqdm.auto import tqdm

        start = time.perf_counter()
        model = self.model
        failures: list[tuple[str, str]] = []
        n_images = n_cached = n_computed = n_failed = 0
        with self._store() as store:
            # 1. one entry per distinct file: its identity and the input positions that use it
            entries: dict[str, tuple[FileId, list[int]]] = {}
            for i, raw in enumerate(paths):
                if _is_missing(raw):
                    continue
                n_images += 1
                absolute = os.path.abspath(os.fspath(raw))  # type: ignore[arg-type]
                if absolute in entries:  # the same image for several products: computed once
                    entries[absolute][1].append(i)
                    continue
                try:
                    entries[absolute] = (FileId.of(absolute), [i])
                except OSError as exc:
                    reason = "missing file" if isinstance(exc, FileNotFoundError) else f"cannot read file: {exc.strerror or exc}"
                    failures.append((absolute, reason))
                    n_failed += 1
            bar = tqdm(
                total=n_images, unit="img", desc=f"image embeddings ({model.name})", disable=not self.progress, smoothing=0.1
            )
            try:
                bar.update(n_failed)
                # 2. cache lookups, in chunks
                pending = _Pending()
                unique = list(entries.values())
                del entries
                for start_at in range(0, len(unique), _LOOKUP_CHUNK):
                    chunk = unique[start_at : start_at + _LOOKUP_CHUNK]
                    cached: list[tuple[list[int], Hit]] = []
                    for (fid, where), hit in zip(chunk, store.lookup([f for f, _ in chunk])):
                        if hit is None:
                            pending.files.append(fid)
                            pending.positions.append(where)
                        elif hit.failure is not None:
                            failures.append((fid.path, hit.failure))
                            n_failed += len(where)
                            bar.update(len(where))
                        else:
                            cached.append((where, hit))
                    if cached:
                        if deliver is not None:
                            deliver([w for w, _ in cached], store.read([h for _, h in cached]))
                        done = sum(len(w) for w, _ in cached)
                        n_cached += done
                        bar.update(done)
                del unique
                # 3. decode in workers, embed, flush blocks to the store
                n_computed, n_new_failed = self._compute(pending, store, deliver, failures, bar)
                n_failed += n_new_failed
            finally:
                bar.close()
        seconds = time.perf_counter() - start
        return EmbedStats(
            n_images=n_images,
            n_computed=n_computed,
            n_cached=n_cached,
            n_failed=n_failed,
            seconds=seconds,
            images_per_second=n_images / seconds if seconds > 0 else 0.0,
            failures=failures,
        )

    def _compute(
        self,
        pending: _Pending,
        store: FeatureStore,
        deliver: Callable[[list[list[int]], np.ndarray], None] | None,
        failures: list[tuple[str, str]],
        bar,
    ) -> tuple[int, int]:
        """Compute the pending files; returns (positions computed, positions failed)."""
        model = self.model
        size = model.input_size
        n = len(pending.files)
        if n == 0:
            return 0, 0
        batches = [range(s, min(n, s + self.batch_size)) for s in range(0, n, self.batch_size)]
        workers = self._n_workers() if n >= self.inline_below else 0
        block_files: list[FileId] = []
        block_positions: list[list[int]] = []
        block_vectors: list[np.ndarray] = []
        lasting_failures: list[tuple[FileId, str]] = []
        computed = failed = 0

        def flush() -> None:
            if block_files:
                block = np.concatenate(block_vectors)
                store.put(block_files, block)
                if deliver is not None:
                    deliver(block_positions, block)
                block_files.clear()
                block_positions.clear()
                block_vectors.clear()
            if lasting_failures:
                store.put_failures(lasting_failures)
                lasting_failures.clear()

        def consume(batch: range, images: np.ndarray, bad: list[tuple[int, str, bool]]) -> None:
            nonlocal computed, failed
            bad_positions = {pos for pos, _, _ in bad}
            for pos, reason, lasting in bad:
                f = pending.files[batch[pos]]
                failures.append((f.path, reason))
                failed += len(pending.positions[batch[pos]])
                if lasting:
                    lasting_failures.append((f, reason))
            good = [k for pos, k in enumerate(batch) if pos not in bad_positions]
            if good:
                block_vectors.append(model.embed(images))
                block_files.extend(pending.files[k] for k in good)
                block_positions.extend(pending.positions[k] for k in good)
                computed += sum(len(pending.positions[k]) for k in good)
            bar.update(sum(len(pending.positions[k]) for k in batch))
            if len(block_files) >= self.flush_every:
                flush()

        try:
            if workers == 0:
                for batch in batches:
                    consume(batch, *decode_batch([pending.files[k].path for k in batch], size))
            else:
                self._compute_parallel(batches, pending, size, workers, consume)
        finally:
            flush()  # keep what was computed, even when interrupted
        return computed, failed

    def _compute_parallel(self, batches, pending: _Pending, size: int, workers: int, consume) -> None:
        context = _worker_context()
        in_flight: deque = deque()
        todo = iter(batches)
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                 initargs=(os.getpid(),)) as pool:
            try:
                for batch in todo:
                    in_flight.append((batch, pool.submit(decode_batch, [pending.files[k].path for k in batch], size)))
                    if len(in_flight) >= 2 * workers + 1:
                        break
                while in_flight:
                    batch, future = in_flight.popleft()
                    next_batch = next(todo, None)
                    if next_batch is not None:  # keep the workers busy while the model runs
                        in_flight.append(
                            (next_batch, pool.submit(decode_batch, [pending.files[k].path for k in next_batch], size))
                        )
                    try:
                        images, bad = future.result()
                    except BrokenProcessPool as exc:
                        raise ProdcatError(
                            "an image decoding worker died (out of memory?); finished blocks are "
                            f"cached, run again to resume: {exc}"
                        ) from exc
                    consume(batch, images, bad)
            except BaseException:
                for _, future in in_flight:
                    future.cancel()
                raise


def embed_folder(
    images_dir: str | os.PathLike[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    backbone: str | Backbone = "lite0",
    workers: int | None = None,
    progress: bool = True,
) -> EmbedStats:
    """Compute and cache embeddings for every image file under ``images_dir`` (recursively)."""
    embedder = ImageEmbedder(backbone, cache_dir=cache_dir, workers=workers, progress=progress)
    return embedder.run(image_files(images_dir))


def image_files(images_dir: str | os.PathLike[str]) -> list[str]:
    """Every image file under ``images_dir`` (recursively, sorted); a :class:`DataError` when there is none."""
    root = Path(images_dir)
    if not root.is_dir():
        raise DataError("image folder not found", path=root)
    paths = sorted(
        str(p)
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )
    if not paths:
        raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the folder", path=root)
    return paths
