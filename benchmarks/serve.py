"""REST API benchmark: latency, throughput, a 32-client soak and memory per worker, on loopback only.

    python benchmarks/serve.py [--model DIR] [--image-model DIR] [--workers 2] [--duration 60]

Starts the server exactly as ``prodcat serve`` does (``run_server`` in a subprocess, 127.0.0.1,
an ephemeral port) and loads it from this second process with a small keep-alive HTTP/1.1
client on asyncio (cheaper per request than httpx, so the load generator takes little of the
CPU it shares with the server). Phases, each bounded in requests or time:

1. text-only latency: one client, ``--requests`` sequential requests (p50, p99);
2. text + 500x500 JPEG latency (``--image-model``, or a model trained on demo images when the
   backbone is available): one client, sequential;
3. soak: ``--clients`` concurrent clients for ``--duration`` seconds: requests/s, latency under
   load, failures (any non-200 or connection error);
4. memory of each worker (RSS and PSS from /proc).

Without ``--model``, a text model is trained first (on ``--train-csv`` rows when that file
exists, else on the synthetic demo table). Titles are drawn from real product texts when
available, so the model does real work on each request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"  # loopback only, always
REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
TARGETS = {"text_p50_ms": 15.0, "text_p99_ms": 60.0, "requests_per_s": 150.0, "image_p50_ms": 40.0}


# -- a minimal keep-alive HTTP/1.1 client ------------------------------------------------------

class Connection:
    """One keep-alive connection; ``request`` sends pre-encoded bytes and reads one response."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self._open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        await self.writer.drain()
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raise RuntimeError("chunked responses are not expected from the API")
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


def post_json(path: str, payload: dict) -> bytes:
    body = json.dumps(payload, ensure_ascii=False).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()


@dataclass
class Run:
    """Latencies (seconds) of successful requests, failures, wall time."""

    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies, q)) * 1000 if self.latencies else float("nan")

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


async def _client(port: int, requests: list[bytes], deadline: float | None, count: int | None, run: Run,
                  check=None) -> None:
    connection = Connection(port)
    done = 0
    try:
        while (deadline is None or time.perf_counter() < deadline) and (count is None or done < count):
            raw = requests[random.randrange(len(requests))]
            started = time.perf_counter()
            try:
                status, body = await connection.request(raw)
            except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError) as error:
                run.failures.append(f"{type(error).__name__}: {error}")
                await connection.close()
            else:
                elapsed = time.perf_counter() - started
                if status != 200:
                    run.failures.append(f"HTTP {status}: {body[:200]!r}")
                elif check is not None and not check(body):
                    run.failures.append(f"unexpected answer: {body[:200]!r}")
                else:
                    run.latencies.append(elapsed)
            done += 1
    finally:
        await connection.close()


def load(port: int, requests: list[bytes], *, clients: int = 1, seconds: float | None = None,
         count: int | None = None, check=None) -> Run:
    """``clients`` concurrent connections, each sending until ``seconds`` pass or ``count`` requests."""
    run = Run()

    async def main() -> None:
        deadline = time.perf_counter() + seconds if seconds else None
        started = time.perf_counter()
        await asyncio.gather(*(_client(port, requests, deadline, count, run, check) for _ in range(clients)))
        run.seconds = time.perf_counter() - started

    asyncio.run(main())
    return run


# -- server process ----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class Server:
    """``run_server`` in a subprocess, as ``prodcat serve`` starts it."""

    def __init__(self, model_dir: Path, workers: int, log: Path) -> None:
        self.port = free_port()
        self.workers = workers
        code = ("from prodcat.serve.api import run_server; "
                f"run_server({str(model_dir)!r}, host={HOST!r}, port={self.port}, workers={workers})")
        self.log = open(log, "wb")
        self.process = subprocess.Popen([sys.executable, "-c", code], stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_ready(self, timeout: float = 300) -> float:
        """Seconds until every worker answers /ready (several answers in a row)."""
        started = time.perf_counter()
        in_a_row = 0
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}; see {self.log.name}")
            ok = load(self.port, [get("/ready")], count=1)
            in_a_row = in_a_row + 1 if ok.latencies else 0
            if in_a_row >= 4 * self.workers and len(self.worker_pids()) >= self.workers:
                return time.perf_counter() - started
            time.sleep(0.1 if ok.latencies else 0.5)
        raise TimeoutError(f"server not ready after {timeout} s; see {self.log.name}")

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the workers (children of the supervisor) or the server itself."""
        children = _children(self.process.pid)
        python_children = [pid for pid in children if _is_worker(pid)]
        return python_children or [self.process.pid]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        self.log.close()


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _is_worker(pid: int) -> bool:
    """A uvicorn worker (not the multiprocessing resource tracker, for instance)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
    except OSError:
        return False
    return b"resource_tracker" not in command


def memory_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MiB; PSS splits shared pages between the processes that share them."""
    rss = pss = float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
    except OSError:
        pass
    return rss, pss


# -- models and payloads -----------------------------------------------------------------------

def product_texts(limit: int = 2000) -> list[dict]:
    """Real product titles/descriptions when ../shared is there, else synthetic demo products."""
    import pandas as pd

    sample = SHARED / "rakuten_sample" / "X_train_sample.csv"
    english = SHARED / "rakuten_en" / "train.csv"
    products: list[dict] = []
    if sample.exists():
        frame = pd.read_csv(sample, index_col=0, keep_default_na=False)
        products += [{"designation": d, "description": s[:2000]} for d, s in zip(frame["designation"], frame["description"])]
    if english.exists():
        frame = pd.read_csv(english, nrows=limit)
        products += [{"designation": t[:300]} for t in frame["text"]]
    if not products:
        from prodcat.data.sample import build_demo_table

        table = build_demo_table(n_train=limit, n_test=27, seed=7)
        products = [{"designation": d, "description": s} for d, s in zip(table["designation"], table["description"])]
    return products


def train_text_model(out: Path, csv: Path, rows: int) -> Path:
    import pandas as pd

    from prodcat.data.io import make_products
    from prodcat.predictor import ProductClassifier

    if csv.exists():
        frame = pd.read_csv(csv)
        frame = frame.sample(n=min(rows, len(frame)), random_state=0)
        X, y, source = make_products(frame["text"].tolist()), frame["prdtypecode"].to_numpy(), f"{len(frame):,} rows of {csv}"
    else:
        from prodcat.data.sample import build_demo_table

        table = build_demo_table(n_train=rows, n_test=27, seed=0)
        table = table[table["split"] == "train"]
        X, y, source = table, table["prdtypecode"].to_numpy(), f"{len(table):,} synthetic demo products"
    print(f"training the text model ('fast' preset) on {source} ...", flush=True)
    started = time.perf_counter()
    ProductClassifier("fast", progress=False).fit(X, y).save(out)
    print(f"  trained in {time.perf_counter() - started:.0f} s", flush=True)
    return out


def train_image_model(out: Path, work: Path, preset: str) -> Path:
    from prodcat.data.io import load_official
    from prodcat.data.sample import make_demo_dataset
    from prodcat.predictor import ProductClassifier

    print(f"training an image model (preset {preset!r}) on 400 demo products with 500x500 photos ...", flush=True)
    paths = make_demo_dataset(work / "demo", n_train=400, n_test=27, image_size=500, progress=False)
    data = load_official(paths.x_train, paths.y_train, paths.images_train)
    ProductClassifier(preset, progress=False).fit(data.X, data.y.to_numpy()).save(out)
    return out


def photo_500() -> bytes:
    """A 500x500 product JPEG: a real one from ../shared when present, else a noisy picture."""
    from PIL import Image

    folder = SHARED / "rakuten_sample" / "image_train"
    real = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    for path in real:
        with Image.open(path) as img:
            if img.size == (500, 500):
                return path.read_bytes()
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (500, 500, 3), dtype=np.uint8)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


def service_latency(model_dir: Path, products: list[dict], count: int) -> float:
    """Median milliseconds of one single-product prediction in this process (no HTTP), for comparison."""
    from prodcat.serve.service import PredictionService, ProductInput

    service = PredictionService.from_path(model_dir)
    service.warm_up()
    times = []
    for product in (products * (count // max(len(products), 1) + 1))[:count]:
        started = time.perf_counter()
        service.predict([ProductInput(product.get("designation"), product.get("description"))])
        times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


# -- report ------------------------------------------------------------------------------------

def row(name: str, value: float, unit: str, target: str = "", ok: bool | None = None) -> str:
    verdict = "" if ok is None else ("met" if ok else "MISSED")
    return f"| {name:<38} | {value:>10.1f} {unit:<6} | {target:<10} | {verdict:<6} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="text model bundle (default: train one)")
    parser.add_argument("--image-model", type=Path, help="bundle with an image component for the text+image phase")
    parser.add_argument("--image-preset", default="balanced", help="preset to train when --image-model is absent")
    parser.add_argument("--no-image", action="store_true", help="skip the text + image phase")
    parser.add_argument("--train-csv", type=Path, default=SHARED / "rakuten_en" / "train.csv")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=400, help="sequential requests per latency phase")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the concurrent soak")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="prodcat-serve-bench-"))
    model_dir = args.model or train_text_model(work / "text-model", args.train_csv, args.train_rows)
    products = product_texts()
    requests = [post_json("/v1/predict", p) for p in products]
    has_top = lambda body: b'"top"' in body  # noqa: E731
    results: list[str] = []
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} before start "
          "(shared with other work: numbers are indicative)", flush=True)

    server = Server(model_dir, args.workers, work / "server-text.log")
    try:
        print(f"server: {args.workers} workers on {HOST}:{server.port}, ready in {server.wait_ready():.1f} s", flush=True)
        load(server.port, requests, count=50, check=has_top)  # warm the workers' caches and connections
        floor = load(server.port, [get("/health")], count=args.requests)
        sequential = load(server.port, requests, count=args.requests, check=has_top)
        print(f"text-only sequential: {len(sequential.latencies)} ok, {len(sequential.failures)} failed", flush=True)
        soak = load(server.port, requests, clients=args.clients, seconds=args.duration, check=has_top)
        print(f"soak: {len(soak.latencies)} ok, {len(soak.failures)} failed in {soak.seconds:.1f} s", flush=True)
        memory = [memory_mb(pid) for pid in server.worker_pids()]
    finally:
        server.stop()

    in_process = service_latency(model_dir, products, args.requests)

    image_run = None
    image_note = ""
    if not args.no_image:
        image_dir = args.image_model
        if image_dir is None:
            try:
                image_dir = train_image_model(work / "image-model", work, args.image_preset)
            except Exception as error:  # backbone not exported / preset unknown: report, do not hide
                image_note = f"text + image phase skipped: {type(error).__name__}: {error}"
        if image_dir is not None:
            photo = base64.b64encode(photo_500()).decode()
            image_requests = [post_json("/v1/predict", {**p, "image_base64": photo}) for p in products[:200]]
            used_image = lambda body: b'"has_image":true' in body  # noqa: E731
            server = Server(image_dir, args.workers, work / "server-image.log")
            try:
                server.wait_ready()
                load(server.port, image_requests, count=20)
                image_run = load(server.port, image_requests, count=max(50, args.requests // 4), check=used_image)
            finally:
                server.stop()

    print()
    print(f"| {'measure':<38} | {'value':>17} | {'target':<10} | {'':<6} |")
    print(f"|{'-' * 40}|{'-' * 19}|{'-' * 12}|{'-' * 8}|")
    print(row("text-only p50 (1 client)", sequential.percentile(50), "ms", "< 15 ms",
              sequential.percentile(50) < TARGETS["text_p50_ms"]))
    print(row("text-only p99 (1 client)", sequential.percentile(99), "ms", "< 60 ms",
              sequential.percentile(99) < TARGETS["text_p99_ms"]))
    print(row("  of which model (in-process p50)", in_process, "ms"))
    print(row("  GET /health p50 (HTTP + scheduling floor)", floor.percentile(50), "ms"))
    print(row(f"requests/s ({args.clients} clients, {args.workers} workers)", soak.rate, "req/s", ">= 150",
              soak.rate >= TARGETS["requests_per_s"]))
    print(row(f"p50 under load ({args.clients} clients)", soak.percentile(50), "ms"))
    print(row(f"p99 under load ({args.clients} clients)", soak.percentile(99), "ms"))
    print(row(f"failures in {soak.seconds:.0f} s soak", len(soak.failures), "", "0", not soak.failures))
    if image_run is not None:
        print(row("text + 500x500 JPEG p50 (1 client)", image_run.percentile(50), "ms", "< 40 ms",
                  image_run.percentile(50) < TARGETS["image_p50_ms"] and not image_run.failures))
        print(row("text + 500x500 JPEG p99 (1 client)", image_run.percentile(99), "ms"))
        print(row("text + image failures / photo unused", len(image_run.failures), "", "0", not image_run.failures))
    for i, (rss, pss) in enumerate(memory):
        print(row(f"worker {i + 1} memory RSS (PSS)", rss, "MiB", f"PSS {pss:.0f}"))
    if image_note:
        print(image_note)
    failures = soak.failures + sequential.failures + (image_run.failures if image_run else [])
    if failures:
        print("first failures:", *sorted(set(failures))[:5], sep="\n  ")
    print(f"load average after: {os.getloadavg()[0]:.1f}; work folder {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
