"""Report timings: the evaluation report on 27 classes x N rows and the EDA page on a catalogue-sized
frame with a sample of images.

    python benchmarks/reports.py [--rows 84916] [--images 2000] [--eval-rows 10000]

Targets: EDA of 85k rows + a 2,000-image sample under 3 minutes on 2 cores; the evaluation report
adds under 10 seconds to ``evaluate``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from prodcat.evaluation import evaluate_predictions
from prodcat.reports.eda import write_eda
from prodcat.reports.evaluation_report import write_evaluation_report
from prodcat.taxonomy import CODES, official_distribution

WORDS = np.array("chaise table livre jeu console figurine piscine bébé décoration cuisine <br/> &eacute; "
                 "élégante très jolie pour enfant adulte bois métal rouge bleu the and für mit".split())


def synthetic_catalogue(n: int, folder: Path, n_images: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """``n`` products with official-distribution labels and ``n_images`` 500x500 JPEGs with white borders."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n_images):
        pixels = np.full((500, 500, 3), 255, np.uint8)
        margin = int(rng.integers(0, 200))
        pixels[margin:500 - margin, margin:500 - margin] = rng.integers(0, 255, size=3)
        Image.fromarray(pixels).save(folder / f"{i}.jpg", quality=90)
        paths.append(str(folder / f"{i}.jpg"))
    lengths = rng.integers(0, 150, size=n) * (rng.random(n) > 0.35)
    X = pd.DataFrame({
        "designation": [" ".join(rng.choice(WORDS, size=rng.integers(4, 20))) + f" {i}" for i in range(n)],
        "description": [" ".join(rng.choice(WORDS, size=k)) for k in lengths],
        "productid": np.arange(n),
        "imageid": np.arange(n),
        "image_path": np.array(paths, dtype=object)[rng.integers(0, n_images, size=n)],
    })
    dist = official_distribution()
    return X, pd.Series(rng.choice(CODES, size=n, p=[dist[c] for c in CODES]))


def synthetic_predictions(n: int, seed: int = 0):
    """Labels over the 27 codes with noisy probabilities (~70% accurate)."""
    rng = np.random.default_rng(seed)
    codes = np.array(CODES)
    y = codes[np.arange(n) % len(codes)]
    logits = rng.normal(size=(n, len(codes)))
    logits[np.arange(n), np.searchsorted(codes, y)] += rng.normal(2.5, 1.0, size=n)
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    return y, codes[proba.argmax(axis=1)], proba, codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=84_916)
    parser.add_argument("--images", type=int, default=2_000)
    parser.add_argument("--eval-rows", type=int, default=10_000)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        y, pred, proba, codes = synthetic_predictions(args.eval_rows, seed=1)
        evaluation = evaluate_predictions(y, pred, classes=codes)
        products = pd.DataFrame({"designation": [f"produit {i}" for i in range(len(y))], "image_path": None})
        started = time.perf_counter()
        write_evaluation_report(tmp / "eval", evaluation, y_true=y, y_pred=pred, proba=proba, classes=codes,
                                products=products)
        rows.append(("evaluation report", f"27 classes x {args.eval_rows:,} rows", time.perf_counter() - started, 10))
        (tmp / "images").mkdir()
        X, labels = synthetic_catalogue(args.rows, tmp / "images", args.images)
        started = time.perf_counter()
        write_eda(tmp / "eda", X, labels, X_other=X.head(13_812), image_sample=args.images, progress=False)
        rows.append(("EDA", f"{args.rows:,} rows + {args.images:,} images", time.perf_counter() - started, 180))
    print("| report | input | seconds | target (s) |\n|---|---|---|---|")
    for name, size, seconds, target in rows:
        print(f"| {name} | {size} | {seconds:.1f} | < {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
