"""Headless Chromium for the page tests: open a URL, wait for a JavaScript condition, save a PNG.

Chromium is driven through its DevTools protocol on loopback. Every host name but 127.0.0.1
resolves to nothing, so a page that needs the network to render shows it.
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

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
OFFLINE_RULES = "MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"


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
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        message_id = next(self.ids)
        self.socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            if "method" in message:
                self.events.append(message)

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


def screenshot(url: str, out: Path, profile: Path, ready: str, size=(1300, 1100), timeout: float = 60,
               settle: float = 1.0) -> dict:
    """Open ``url`` in headless Chromium, wait until the JavaScript ``ready`` is true, save a PNG.

    Returns the seconds until ready and the URLs of every request the page made.
    """
    browser = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--host-resolver-rules={OFFLINE_RULES}",
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
            tools.call("Network.enable")
            tools.call("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                       mobile=False)
            started = time.monotonic()
            tools.call("Page.navigate", url=url)
            while not tools.evaluate(ready):
                if time.monotonic() - started > timeout:
                    out.write_bytes(base64.b64decode(tools.call("Page.captureScreenshot", format="png")["data"]))
                    raise TimeoutError(f"the page did not become ready ({ready}); screenshot in {out}")
                time.sleep(0.25)
            rendered = time.monotonic() - started
            time.sleep(settle)  # let animations finish
            out.write_bytes(base64.b64decode(tools.call("Page.captureScreenshot", format="png")["data"]))
            requests = [e["params"]["request"]["url"] for e in tools.events if e["method"] == "Network.requestWillBeSent"]
            return {"seconds": rendered, "requests": requests}
    finally:
        browser.terminate()
        browser.wait(10)


def colour_share(image: np.ndarray, hex_colour: str, tolerance: int = 12) -> float:
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return float((np.abs(image.astype(int) - target).max(axis=2) <= tolerance).mean())
