"""`prodcat demo` ends with `prodcat app` / `prodcat serve` commands that work on what it made: the app
finds the demo's evaluation report, says where its metrics were measured and flags products for review."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from _browser import CHROMIUM, free_port, screenshot, wait_for
from prodcat.cli import build_parser, main
from prodcat.predictor import ProductClassifier
from prodcat.serve import launch, webdata
from prodcat.serve.api import create_app


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, list[str]]:
    """A small `prodcat demo` run (text preset) and the commands it printed."""
    out = tmp_path_factory.mktemp("demo") / "prodcat-demo"
    capture = tmp_path_factory.mktemp("demo-log") / "stdout.txt"
    import contextlib

    with open(capture, "w") as stream, contextlib.redirect_stdout(stream):
        assert main(["demo", "--out", str(out), "--n-train", "300", "--n-test", "60", "--preset", "fast"]) == 0
    lines = capture.read_text().splitlines()
    commands = [line.strip().split("  #")[0].strip() for line in lines if line.strip().startswith("prodcat ")]
    return out, commands


def parsed(command: str):
    words = shlex.split(command)
    assert words[0] == "prodcat"
    return build_parser().parse_args(words[1:])


def test_demo_prints_app_and_serve_commands_that_work(demo) -> None:
    out, commands = demo
    by_name = {shlex.split(c)[1]: c for c in commands}
    assert {"app", "serve", "classify"} <= set(by_name), commands
    app, serve = parsed(by_name["app"]), parsed(by_name["serve"])
    assert Path(app.model) == out / "model" and Path(serve.model) == out / "model"
    assert Path(app.data).is_file()
    command, env = launch.webapp_command(app.model, port=app.port, data=app.data, report=app.report, host=app.host)
    assert command[:3] == [command[0], "-m", "streamlit"] and env[webdata.ENV_MODEL] == str((out / "model").resolve())
    assert create_app(serve.model) is not None  # the bundle path is accepted by the API
    # the app finds the demo's test-set evaluation report beside the bundle
    assert webdata.find_report(app.model) == out / "evaluation" / "report.html"


def test_app_sidebar_says_where_metrics_were_measured_and_flags_review(demo, monkeypatch) -> None:
    out, _ = demo
    model = ProductClassifier.load(out / "model")
    n_valid = model.metrics_["validation"]["n"]
    threshold = model.metrics_["validation"]["review"]["targets"]["0.95"]
    for name, value in webdata.AppConfig(str(out / "model")).environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(webdata.ENV_DATA, raising=False)
    monkeypatch.delenv(webdata.ENV_REPORT, raising=False)
    at = AppTest.from_file(str(launch.WEBAPP), default_timeout=60)
    at.run()
    assert not at.exception
    captions = " ".join(c.value for c in at.sidebar.caption)
    assert f"validation split ({n_valid:,} products) before the model was refitted on all the data" in captions
    at.text_input[0].set_value("Kinderbett aus Massivholz")
    at.button[0].click().run()
    assert not at.exception
    verdicts = [w.value for w in at.warning] + [s.value for s in at.success]
    if threshold is None:
        assert any("no confidence threshold reached" in v for v in verdicts), verdicts
    else:
        assert any(f"{threshold['threshold']:.3f}" in v for v in verdicts), verdicts
    at.sidebar.radio[0].set_value("report").run()
    assert not at.exception and not at.info  # no "no report found"
    assert str(out / "evaluation" / "report.html") in " ".join(c.value for c in at.caption)


@pytest.mark.slow  # starts Streamlit and Chromium twice
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_demo_app_pages_render_in_chromium(demo, tmp_path) -> None:
    out, commands = demo
    app = parsed(next(c for c in commands if c.startswith("prodcat app")))
    port = free_port()
    command, env = launch.webapp_command(app.model, port=port, data=app.data)
    log = open(tmp_path / "streamlit.log", "wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    shots = {}
    try:
        assert wait_for(f"http://127.0.0.1:{port}/_stcore/health", 60) == b"ok"
        for page, ready in (
            ("?page=report", "!!document.querySelector('iframe') && document.body.innerText.includes('validation split')"),
            ("?designation=Piscine+tubulaire+ronde", "document.body.innerText.includes('precision') && "
             "!!document.querySelector('[data-testid=\"stVegaLiteChart\"] canvas, [data-testid=\"stVegaLiteChart\"] svg')"),
        ):
            profile = tmp_path / "profile"
            shutil.rmtree(profile, ignore_errors=True)
            profile.mkdir()
            shots[page] = tmp_path / f"{len(shots)}.png"
            screenshot(f"http://127.0.0.1:{port}/{page}", shots[page], profile, ready=ready, settle=2)
    finally:
        server.terminate()
        server.wait(20)
        log.close()
    for shot in shots.values():
        image = np.asarray(Image.open(shot).convert("RGB"))
        assert (image.min(axis=2) < 120).any(axis=1).mean() > 0.2  # text on many rows, not a blank page
