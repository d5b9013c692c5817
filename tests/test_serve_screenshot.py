"""The web demonstrator really renders: serve it headless on loopback, screenshot it in headless Chromium.

Chromium is driven through its DevTools protocol (loopback only) so the screenshot waits until
the chart and the table are drawn. Skipped when Chromium is not installed.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from _browser import CHROMIUM, colour_share, free_port, screenshot, wait_for
from prodcat.data.sample import build_demo_table
from prodcat.predictor import ProductClassifier
from prodcat.serve import launch, webdata

RENDERED = ("!!document.querySelector('[data-testid=\"stVegaLiteChart\"] canvas, [data-testid=\"stVegaLiteChart\"] svg')"
            " && !!document.querySelector('[data-testid=\"stDataFrame\"]')")


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
                   shot, tmp_path / "profile", ready=RENDERED)
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
