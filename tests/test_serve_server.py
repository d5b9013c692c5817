"""run_server: the real uvicorn server with several workers, on loopback; TCP_NODELAY on shared sockets."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from prodcat.data.sample import build_demo_table
from prodcat.errors import ModelError, ProdcatError
from prodcat.predictor import ProductClassifier
from prodcat.serve.api import run_server, tcp_listener


def accepted_nodelay(listener: socket.socket) -> int:
    """TCP_NODELAY of a connection accepted by asyncio on ``listener`` (what uvicorn workers do)."""
    seen: dict[str, int] = {}

    async def main() -> None:
        accepted = asyncio.Event()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                seen["nodelay"] = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP,
                                                                                 socket.TCP_NODELAY)
                transport.close()
                accepted.set()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        _, writer = await asyncio.open_connection(*listener.getsockname())
        await asyncio.wait_for(accepted.wait(), 10)
        writer.close()
        server.close()

    asyncio.run(main())
    return seen["nodelay"]


def test_shared_listener_gets_tcp_nodelay() -> None:
    raw = socket.socket(socket.AF_INET)  # how uvicorn binds the socket it shares with its workers
    raw.bind(("127.0.0.1", 0))
    address = raw.getsockname()
    listener = tcp_listener(raw)
    assert listener.proto == socket.IPPROTO_TCP and listener.getsockname() == address
    assert listener.get_inheritable()
    assert accepted_nodelay(listener) == 1
    already = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    assert tcp_listener(already) is already
    already.close()


def test_run_server_refuses_bad_settings(tmp_path) -> None:
    with pytest.raises(ModelError, match="not a prodcat model bundle"):
        run_server(tmp_path)
    with pytest.raises(ProdcatError, match="workers"):
        run_server(tmp_path, workers=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow  # two worker processes each import the library and load the model (~10-20 s)
def test_two_workers_serve_and_stop_cleanly(tmp_path) -> None:
    table = build_demo_table(n_train=300, n_test=27, seed=4)
    train = table[table["split"] == "train"]
    model_dir = ProductClassifier(progress=False).fit(train, train["prdtypecode"]).save(tmp_path / "model")
    port = free_port()
    code = f"from prodcat.serve.api import run_server; run_server({str(model_dir)!r}, port={port}, workers=2)"
    log = open(tmp_path / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{base}/ready", timeout=5).status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise AssertionError((tmp_path / "server.log").read_text())
                time.sleep(0.5)
        request = urllib.request.Request(f"{base}/v1/predict", data=json.dumps({"designation": "Piscine"}).encode(),
                                         headers={"Content-Type": "application/json"})
        answers = [json.load(urllib.request.urlopen(request, timeout=30)) for _ in range(6)]
        assert all(a["code"] == answers[0]["code"] and len(a["top"]) == 5 for a in answers)
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(urllib.request.Request(f"{base}/v1/predict", data=b"{}",
                                                          headers={"Content-Type": "application/json"}), timeout=30)
        assert bad.value.code == 422
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        finally:
            if server.poll() is None:
                server.kill()
            log.close()
    assert server.returncode == 0, (tmp_path / "server.log").read_text()
