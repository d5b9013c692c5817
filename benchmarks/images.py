"""Image embedding throughput: end-to-end `prodcat embed` vs bare onnxruntime, cache re-run, memory.

    .venv/bin/python benchmarks/images.py            # 2,000 generated 500x500 JPEGs, Lite0, 2 cores
    .venv/bin/python benchmarks/images.py --n 10000  # the memory target

Each measurement runs in a fresh child process so that its peak memory is not polluted by image
generation or the one-off ONNX export. Peak memory is the largest total memory (PSS, so pages
that forked workers share are counted once) of the measuring process and all its descendants
(the decoding workers), sampled every 0.5 s; the main process's own ru_maxrss is shown too.
Bare onnxruntime is timed before and after the end-to-end run (other load on the machine moves
both); the ratio uses their mean.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _make_image(args: tuple[int, str]) -> None:
    """A product-like 500x500 JPEG: a smooth, noisy object on a white background of random extent."""
    from PIL import Image, ImageDraw

    seed, out = args
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (500, 500), (255, 255, 255))
    side = int(rng.integers(200, 501))
    x0, y0 = int(rng.integers(0, 501 - side)), int(rng.integers(0, 501 - side))
    colours = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((side, side), Image.Resampling.BICUBIC)
    noise = Image.effect_noise((side, side), 40).convert("RGB")
    patch = Image.blend(colours, noise, 0.2)
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, side - 1, side - 1) if seed % 2 else (side // 8, 0, side - 1 - side // 8, side - 1), fill=255)
    img.paste(patch, (x0, y0), mask if seed % 3 else None)
    img.save(out, format="JPEG", quality=88)


def generate(folder: Path, n: int) -> None:
    from multiprocessing import Pool

    folder.mkdir(parents=True, exist_ok=True)
    todo = [(i, str(folder / f"image_{i}_product_{i}.jpg")) for i in range(n) if not (folder / f"image_{i}_product_{i}.jpg").exists()]
    if todo:
        with Pool(2) as pool:
            pool.map(_make_image, todo, chunksize=64)


def _pss_mb(pid: int) -> float:
    """Proportional set size of a process in MB: shared pages (fork) are not counted twice."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _tree_memory_mb(root: int) -> float:
    """Current memory (PSS) of ``root`` and all its descendants, in MB (Linux /proc)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(_pss_mb(pid) for pid in tree)


class _PeakTreeMemory:
    """Samples the process tree's total RSS (decoding workers included) every ``interval`` s."""

    def __init__(self, interval: float = 0.5) -> None:
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, args=(interval,), daemon=True)

    def _sample(self, interval: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_memory_mb(os.getpid()))
            self._stop.wait(interval)

    def __enter__(self) -> "_PeakTreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure_bare(args: argparse.Namespace) -> dict:
    """Bare onnxruntime on tensors decoded beforehand (same batch size as the pipeline)."""
    from prodcat.image.backbone import Backbone
    from prodcat.image.io import preprocess

    backbone = Backbone(args.backbone, cache_dir=args.model_cache, threads=args.threads)
    paths = sorted(Path(args.images).glob("*.jpg"))[: args.bare_n]
    tensors = np.stack([preprocess(p, backbone.input_size) for p in paths])
    backbone.embed(tensors[: args.batch_size])  # warm-up
    start, cpu = time.perf_counter(), _cpu_seconds()
    done = 0
    for s in range(0, len(tensors), args.batch_size):
        done += len(backbone.embed(tensors[s : s + args.batch_size]))
    return {"bare_img_s": done / (time.perf_counter() - start), "bare_cpu_ms": 1000 * (_cpu_seconds() - cpu) / done}


def measure_pipeline(args: argparse.Namespace) -> dict:
    """Two `embed_folder` runs into a fresh feature cache: cold, then all cache hits."""
    from prodcat.image.backbone import Backbone
    from prodcat.image.embed import ImageEmbedder

    paths = sorted(str(p) for p in Path(args.images).glob("*.jpg"))[: args.n]
    backbone = Backbone(args.backbone, cache_dir=args.model_cache, threads=args.threads)
    out = {}
    sampler = _PeakTreeMemory().__enter__()
    for run in ("first", "second"):
        embedder = ImageEmbedder(backbone, cache_dir=args.feature_cache, workers=args.workers, batch_size=args.batch_size, progress=False)
        start, cpu = time.perf_counter(), _cpu_seconds()
        stats = embedder.run(paths)
        seconds = time.perf_counter() - start
        out[run] = {"cpu_ms": 1000 * (_cpu_seconds() - cpu) / len(paths), "seconds": seconds, "img_s": len(paths) / seconds, "computed": stats.n_computed, "cached": stats.n_cached, "failed": stats.n_failed}
    sampler.__exit__()
    out["peak_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out["peak_tree_mb"] = sampler.peak
    return out


def _child(mode: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--images", args.images, "--model-cache", args.model_cache,
           "--feature-cache", args.feature_cache, "--backbone", args.backbone, "--threads", str(args.threads),
           "--batch-size", str(args.batch_size), "--bare-n", str(args.bare_n), "--n", str(args.n)]
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="number of generated 500x500 JPEGs")
    parser.add_argument("--backbone", default="lite0")
    parser.add_argument("--workers", type=int, default=None, help="decoding processes (default: auto)")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    parser.add_argument("--cores", type=int, default=2, help="pin the benchmark to this many CPUs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--bare-n", type=int, default=512, help="images pre-decoded for bare onnxruntime")
    parser.add_argument("--images", default=None, help="folder of images (generated when absent)")
    parser.add_argument("--model-cache", default=None, help="where the exported ONNX model lives (default: user cache)")
    parser.add_argument("--feature-cache", default=None)
    parser.add_argument("--child", choices=["bare", "pipeline"], help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = measure_bare(args) if args.child == "bare" else measure_pipeline(args)
        print(json.dumps(result))
        return

    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cpus)  # inherited by every child process
    from prodcat.image.backbone import Backbone
    from prodcat.image.cachedir import default_cache_dir

    work = Path(tempfile.mkdtemp(prefix="prodcat-bench-"))
    args.images = args.images or str(work / "images")
    args.model_cache = args.model_cache or str(default_cache_dir())
    args.feature_cache = args.feature_cache or str(work / "cache")
    t0 = time.perf_counter()
    generate(Path(args.images), args.n)
    print(f"generated {args.n} JPEGs in {time.perf_counter() - t0:.0f} s under {args.images}", file=sys.stderr)
    t0 = time.perf_counter()
    Backbone(args.backbone, cache_dir=args.model_cache)  # export once, outside the measurements
    print(f"backbone ready in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    load_before = os.getloadavg()[0]

    before = _child("bare", args)
    pipe = _child("pipeline", args)
    after = _child("bare", args)
    bare1, bare2 = before["bare_img_s"], after["bare_img_s"]
    bare = (bare1 + bare2) / 2
    bare_cpu = (before["bare_cpu_ms"] + after["bare_cpu_ms"]) / 2
    first, second = pipe["first"], pipe["second"]
    rows = [
        ("images", f"{first['computed']} x 500x500 JPEG"),
        ("backbone / cores / ORT threads / workers", f"{args.backbone} / {args.cores} / {args.threads} / {args.workers or 'auto'}"),
        ("bare onnxruntime (pre-decoded)", f"{bare:.1f} img/s  (before {bare1:.1f}, after {bare2:.1f})"),
        ("end-to-end first run", f"{first['img_s']:.1f} img/s  ({first['seconds']:.1f} s, {first['computed']} computed, {first['failed']} failed)"),
        ("ratio end-to-end / bare", f"{first['img_s'] / bare:.2f}"),
        ("CPU time per image: bare / end-to-end", f"{bare_cpu:.1f} ms / {first['cpu_ms']:.1f} ms (all processes)"),
        (f"img/s if {args.cores} cores were free (from CPU time)", f"bare {1000 * args.cores / bare_cpu:.0f}, end-to-end {1000 * args.cores / first['cpu_ms']:.0f}"),
        ("second run (cache hits)", f"{second['img_s']:.0f} img/s  ({second['seconds']:.2f} s, {second['cached']} cached)"),
        ("second-run speed-up", f"{first['seconds'] / second['seconds']:.0f}x"),
        ("peak memory, all processes (main alone)", f"{pipe['peak_tree_mb']:.0f} MB  ({pipe['peak_self_mb']:.0f} MB)"),
        ("84,916 official images at this speed", f"{84916 / first['img_s'] / 60:.1f} min"),
        ("load average (1 min) before / after", f"{load_before:.2f} / {os.getloadavg()[0]:.2f}"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure'.ljust(width)} | value")
    print(f"{'-' * width}-|-{'-' * 40}")
    for key, value in rows:
        print(f"{key.ljust(width)} | {value}")


if __name__ == "__main__":
    main()
