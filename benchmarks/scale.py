"""Batch prediction at scale: throughput, peak memory and CPU time of ``prodcat predict``, local vs Ray.

    python benchmarks/scale.py --rows 100000 --runs local,ray:1,ray:2
    python benchmarks/scale.py --rows 1000000 --runs local,ray:2

Generates a text-only product file in the official X layout under ``--work`` (default
/tmp/prodcat-scale; never in the repository): titles drawn with replacement from
``../shared/data/rakuten_en/train.csv`` when present, else from the synthetic demo table; unique
product ids, empty descriptions. Trains a ``fast`` bundle on the same text pool unless ``--model``
is given. Each run is ``prodcat predict`` in a fresh process (``--engine ray --workers N`` for
``ray:N``, a local Ray runtime); a sampler reads /proc every 0.25 s for the whole process tree
(driver, Ray's raylet/GCS/agents and its workers): the peak of the summed PSS (shared pages
counted once) and the CPU seconds (utime + stime, the last value seen per process).
Prints a Markdown table. Figures on a shared machine are taken under load: report CPU time too.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
TEXT_POOL = REPO.parent / "shared" / "data" / "rakuten_en" / "train.csv"
CLOCK = os.sysconf("SC_CLK_TCK")


def text_pool() -> pd.DataFrame:
    """designation + prdtypecode rows to draw from (real titles when ../shared is there)."""
    if TEXT_POOL.exists():
        frame = pd.read_csv(TEXT_POOL)
        return pd.DataFrame({"designation": frame["text"].fillna("").astype(str), "prdtypecode": frame["prdtypecode"]})
    from prodcat.data.sample import build_demo_table

    table = build_demo_table(n_train=5000, n_test=0, seed=0)
    return table[["designation", "prdtypecode"]].reset_index(drop=True)


def make_products(pool: pd.DataFrame, rows: int, path: Path, seed: int = 0) -> Path:
    """Official X layout, text only, written in blocks (bounded memory)."""
    if path.exists():
        return path
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    block = 100_000
    with open(tmp, "w", encoding="utf-8", newline="") as stream:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            pick = rng.integers(0, len(pool), n)
            frame = pd.DataFrame({"designation": pool["designation"].to_numpy()[pick], "description": "",
                                  "productid": np.arange(start, start + n) + 1_000_000,
                                  "imageid": np.arange(start, start + n) + 2_000_000},
                                 index=pd.RangeIndex(start, start + n))
            frame.to_csv(stream, header=start == 0)
    tmp.rename(path)
    return path


def train_bundle(pool: pd.DataFrame, work: Path) -> Path:
    bundle = work / "model"
    if not bundle.exists():
        from prodcat.data.io import make_products as products
        from prodcat.predictor import ProductClassifier

        X = products(pool["designation"].tolist())
        ProductClassifier("fast", progress=False).fit(X, pool["prdtypecode"].to_numpy()).save(bundle)
    return bundle


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    todo, seen = [root], []
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += children.get(pid, [])
    return seen


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(w.decode(errors="replace") for w in words[:3])
    return text[:60]


def _cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK
    except (OSError, IndexError, ValueError):
        return 0.0


def measure(argv: list[str]) -> dict:
    """Run ``argv``; wall seconds, peak summed PSS (MB), CPU seconds of the process tree, stdout."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak, cpu, at_peak = 0, {}, {}
    done = threading.Event()

    def sample() -> None:
        nonlocal peak, at_peak
        while not done.is_set():
            pids = _tree(process.pid)
            pss = {pid: _pss_kb(pid) for pid in pids}
            if sum(pss.values()) > peak:
                peak, at_peak = sum(pss.values()), {f"{pid} {_name(pid)}": kb // 1024 for pid, kb in pss.items() if kb}
            for pid in pids:
                cpu[pid] = max(cpu.get(pid, 0.0), _cpu_s(pid))
            done.wait(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = process.communicate()
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({process.returncode}):\n{output}")
    return {"wall_s": wall, "peak_mb": peak / 1024, "cpu_s": sum(cpu.values()), "output": output,
            "at_peak_mb": dict(sorted(at_peak.items(), key=lambda item: -item[1]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", default="local,ray:1,ray:2", help="local and/or ray:N (N actors)")
    parser.add_argument("--chunk-rows", type=int, default=20_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/prodcat-scale"))
    parser.add_argument("--model", type=Path, help="a bundle to use instead of training one")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    pool = text_pool()
    x = make_products(pool, args.rows, args.work / f"X_{args.rows}.csv")
    model = args.model or train_bundle(pool, args.work)
    prodcat = [sys.executable, "-m", "prodcat.cli"]
    rows = []
    for run in args.runs.split(","):
        engine, _, workers = run.partition(":")
        out = args.work / f"predictions_{run.replace(':', '')}_{args.rows}.csv"
        argv = [*prodcat, "predict", "--model", str(model), "--x", str(x), "--out", str(out),
                "--chunk-rows", str(args.chunk_rows), "--engine", engine] + (["--workers", workers] if workers else [])
        result = measure(argv)
        found = re.search(r"shard\(s\), ([\d.]+) s,", result["output"])
        engine_s = float(found.group(1)) if found else float("nan")
        rows.append({"run": run, "rows": args.rows, "wall_s": result["wall_s"], "engine_s": engine_s,
                     "per_s": args.rows / engine_s, "peak_mb": result["peak_mb"], "cpu_s": result["cpu_s"]})
        print(f"{run}: {rows[-1]}", flush=True)
        print(f"  PSS MB per process at the peak: {result['at_peak_mb']}", flush=True)
    print(f"\n{args.rows:,} text-only products, chunks of {args.chunk_rows:,} rows, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f} at the end (shared machine: taken under load)\n")
    print("| run | wall s (with start-up) | predict s | products/s | peak PSS MB (tree) | CPU s (tree) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['wall_s']:.1f} | {r['engine_s']:.1f} | {r['per_s']:,.0f} | {r['peak_mb']:,.0f} | "
              f"{r['cpu_s']:.1f} |")


if __name__ == "__main__":
    main()
