"""The web demonstrator really renders: serve it headless on loopback, screenshot it in headless Chromium.

Chromium is driven through its DevTools protocol (loopback only) so the screenshot waits until
the chart and the table are drawn. Skipped when Chromium is not installed.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodcat.data.sample import build_demo_table
from prodcat.predictor import ProductClassifier
from prodcat.serve import launch, webdata

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
RENDERED = ("!!document.querySelector('[data-testid=\"stVegaLiteChart\"] canvas, [data-testid=\"stVegaLiteChart\"] svg')"
            " && !!document.querySelector('[data-testid=\"stDataFrame\"]')")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return urllib.request.urlopen(url, timeout=2).read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class DevTools:
    """A minimal Chrome DevTools protocol session over the page's websocket."""

    def __init__(self, socket) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]



def screenshot(url: str, out: Path, profile: Path, size=(1300, 1100), timeout: float = 60) -> float:
    """Open ``url`` in headless Chromium, wait until Streamlit has drawn the result, save a PNG."""
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         f"--window-size={size[0]},{size[1]}", "--hide-scrollbars", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        page = next(t for t in json.loads(wait_for(f"http://127.0.0.1:{port}/json/list", 10)) if t["type"] == "page")
        from websockets.sync.client import connect

        with connect(page["webSocketDebuggerUrl"], max_size=None) as socket_:
            tools = DevTools(socket_)
            tools.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                       mobile=False)
            started = time.monotonic()
            tools.call("Page.navigate", url=url)
            while not tools.call("Runtime.evaluate", expression=RENDERED, returnByValue=True)["result"].get("value"):
                if time.monotonic() - started > timeout:
                    raise TimeoutError("the page did not draw the chart and the table")
                time.sleep(0.25)
            rendered = time.monotonic() - started
            time.sleep(1.0)  # let the chart's entry animation finish
            out.write_bytes(base64.b64decode(tools.call("Page.captureScreenshot", format="png")["data"]))
            return rendered
    finally:
        browser.terminate()
        browser.wait(10)


def colour_share(image: np.ndarray, hex_colour: str, tolerance: int = 12) -> float:
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(image.astype(int) - target).max(axis=2) <= tolerance).mean())


@pytest.mark.slow  # about 15 s: trains a model, starts Streamlit and Chromium
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_classify_page_renders_in_chromium(tmp_path) -> None:
    table = build_demo_table(n_train=400, n_test=27, seed=2)
    train = table[table["split"] == "train"]
    model_dir = ProductClassifier(progress=False).fit(train, train["prdtypecode"]).save(tmp_path / "model")
    port = free_port()
    command, env = launch.webapp_command(model_dir, port=port)
    log = open(tmp_path / "streamlit.log", "wb")
    app = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/_stcore/health", 60) == b"ok"
        shot = tmp_path / "classify.png"
        screenshot(f"http://127.0.0.1:{port}/?designation=Piscine+tubulaire+ronde+avec+pompe+de+filtration",
                   shot, tmp_path / "profile")
    finally:
        app.terminate()
        app.wait(20)
        log.close()
    image = np.asarray(Image.open(shot).convert("RGB"))
    assert image.shape[:2] == (1100, 1300)
    # the bar chart is drawn: bars of the combined probability and of the text model, in their colours
    combined = colour_share(image, webdata.SOURCE_COLOURS[0])
    text = colour_share(image, webdata.SOURCE_COLOURS[1])
    assert combined > 0.002 and text > 0.002, (combined, text)
    # no error box (Streamlit paints exceptions on a light red background)
    assert colour_share(image, "#fdebec", tolerance=4) < 0.01
    # the page has text and widgets, not a blank or half-drawn page
    assert (image.min(axis=2) < 120).any(axis=1).mean() > 0.2
