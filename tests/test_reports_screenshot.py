"""Render report.html in headless Chromium (skipped when Chromium is absent) and check the picture."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodcat.evaluation import evaluate_predictions
from prodcat.reports.evaluation_report import write_evaluation_report
from prodcat.taxonomy import CODES

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_offline_in_chromium(tmp_path):
    rng = np.random.default_rng(0)
    codes = np.array(CODES)
    y = codes[np.arange(1350) % len(codes)]
    proba = rng.dirichlet(np.ones(len(codes)) * 0.3, size=len(y))
    proba[np.arange(len(y)), np.searchsorted(codes, y)] += rng.uniform(0, 1.5, size=len(y))
    proba /= proba.sum(axis=1, keepdims=True)
    pred = codes[proba.argmax(axis=1)]
    ev = evaluate_predictions(y, pred, classes=codes)
    products = pd.DataFrame({"designation": [f"Produit {i}" for i in range(len(y))], "image_path": None})
    report = write_evaluation_report(tmp_path / "out", ev, y_true=y, y_pred=pred, proba=proba, classes=codes,
                                     products=products)
    shot = tmp_path / "shot.png"
    command = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1400,4000",
        report.as_uri(),
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    image = np.asarray(Image.open(shot).convert("L"))
    assert image.shape == (4000, 1400)
    # the page drew something: text, tables and the heatmap darken a fair share of the rows
    inked_rows = (image < 200).any(axis=1).mean()
    assert inked_rows > 0.3
    # nothing spills past the right edge: the last 40 pixel columns stay blank (no horizontal overflow)
    assert (image[:, -40:-16] > 240).all()
