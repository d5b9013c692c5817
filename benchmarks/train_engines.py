"""Out-of-fold training, local engine vs Ray: fit time and the model's weighted F1 (must be identical).

    python benchmarks/train_engines.py                  # all of rakuten_en, 5 folds
    python benchmarks/train_engines.py --rows 10000 --folds 3

Reads ``../shared/data/rakuten_en/train.csv`` (text ``text``, label ``prdtypecode``; never copied
into the repository), optionally a stratified subsample of ``--rows``, and splits it 80/20
(stratified, seed 42). Trains a two-component text preset with out-of-fold fusion (the TF-IDF
``linear`` model and the word-only ``linear_svc``, ``--folds`` folds, fuser ``auto``) once with
the local engine and once with ``engine="ray"`` (a local Ray runtime with 2 CPUs: two fold fits at
a time; its start is counted in the Ray time), then scores both on the 20% and compares their
probabilities. Prints a Markdown table. On a shared machine the times are taken under load.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "rakuten_en" / "train.csv"


def preset(folds: int) -> dict:
    """Two TF-IDF text models fused on out-of-fold probabilities."""
    return {"name": "two_text", "components": [{"name": "text", "kind": "text", "model": "linear"},
                                               {"name": "svc", "kind": "text", "model": "linear_svc"}],
            "fusion": {"method": "auto", "folds": folds}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, help="stratified subsample of rakuten_en (default: all of it)")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    from prodcat.data.split import stratified_split
    from prodcat.evaluation import evaluate_predictions
    from prodcat.predictor import ProductClassifier

    frame = pd.read_csv(DATA)
    X = pd.DataFrame({"designation": frame["text"].fillna("").astype(str)})
    y = frame["prdtypecode"].to_numpy()
    if args.rows and args.rows < len(y):
        keep = stratified_split(y, valid_size=0.0, test_size=1 - args.rows / len(y), seed=0).train
        X, y = X.iloc[keep], y[keep]
    split = stratified_split(y, valid_size=0.0, test_size=0.2, seed=42)
    train_X, train_y, test_X, test_y = X.iloc[split.train], y[split.train], X.iloc[split.test], y[split.test]
    rows, probas = [], {}
    for engine in ("local", "ray"):
        started = time.perf_counter()
        model = ProductClassifier(preset(args.folds), engine=engine, progress=False).fit(train_X, train_y)
        seconds = time.perf_counter() - started
        probas[engine] = model.predict_proba(test_X)
        e = evaluate_predictions(test_y, model.classes_[probas[engine].argmax(axis=1)], classes=model.classes_)
        rows.append((engine, seconds, e.weighted_f1, model.fuser_.describe()["kind"]))
    diff = float(np.abs(probas["local"] - probas["ray"]).max())
    print(f"rakuten_en: {len(train_y):,} training products, {len(test_y):,} test products, {args.folds} folds\n")
    print("| engine | fit s | weighted F1 | fuser |\n|---|---|---|---|")
    for engine, seconds, f1, fuser in rows:
        print(f"| {engine} | {seconds:.1f} | {f1:.4f} | {fuser} |")
    print(f"\nlargest difference between the two models' probabilities: {diff:.3g}")


if __name__ == "__main__":
    main()
