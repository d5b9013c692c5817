"""Deep text model benchmark: neural_simple, neural_embedding, use and minilm on one holdout.

    python benchmarks/deep_text.py --data ../shared/data/rakuten_en/train.csv \
        [--models neural_simple,neural_embedding,use,minilm] [--time-limit S] [--threads N] \
        [--param frozen_layers=0 ...]

Stratified 20% holdout (seed 42) on a CSV with ``text`` and ``prdtypecode`` columns (or the
official ``designation``/``description`` layout). Each model is fitted in its own process:
weighted F1, fit seconds, predict throughput (products/s, whole holdout in one call), peak
memory, what the training did (epochs or steps), and the machine's load average while it ran
(the benchmark machine may be shared). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import ast
import multiprocessing as mp
import os
import sys
from pathlib import Path

import pandas as pd
from harness import fit_and_score, holdout_split, load_products, run_isolated, table

MODELS = ("neural_simple", "neural_embedding", "use", "minilm")


def _holdout(name: str, params: dict, train: pd.DataFrame, test: pd.DataFrame, queue: mp.Queue) -> None:
    from prodcat.models.deep_text import DEEP_TEXT_MODELS

    model = DEEP_TEXT_MODELS[name](**params)
    load_before = os.getloadavg()[0]
    scores = fit_and_score(model, train, test)
    if hasattr(model, "steps_"):
        trained = f"{model.steps_} steps ({model.epochs_done_:.2f} epochs)"
    elif hasattr(model, "n_train_encoded_") and model.n_train_encoded_ < len(train):
        trained = f"{model.best_epoch_} epochs, {model.n_train_encoded_:,} rows encoded"
    else:
        trained = f"best epoch {model.best_epoch_} of {len(model.history_)}"
    queue.put({"model": name, **scores, "trained": trained, "load": f"{load_before:.1f} / {os.getloadavg()[0]:.1f}"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="CSV with text (or designation) and prdtypecode")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--time-limit", type=float, help="fit time limit in seconds for every model")
    parser.add_argument("--threads", type=int, help="torch / BLAS threads (default: every core)")
    parser.add_argument("--train-rows", type=int, help="subsample the training part (stratified) for quick runs")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="extra model parameter (a Python literal), e.g. frozen_layers=0; repeatable")
    args = parser.parse_args(argv)
    from sklearn.model_selection import train_test_split

    products = load_products(args.data)
    train, test = holdout_split(products)
    if args.train_rows and args.train_rows < len(train):
        train, _ = train_test_split(train, train_size=args.train_rows, stratify=train["prdtypecode"], random_state=0)
    params = {"time_limit": args.time_limit, "n_threads": args.threads}
    for item in args.param:
        name, _, value = item.partition("=")
        params[name] = ast.literal_eval(value)
    print(f"{args.data}: {len(train):,} train / {len(test):,} test (stratified 20%, seed 42); "
          f"time limit {args.time_limit or 'none'}; parameters {args.param or 'default'}; {os.cpu_count()} cores; "
          f"load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    rows = []
    for name in args.models.split(","):
        rows.append(run_isolated(_holdout, name, params, train, test))
        print(f"  {rows[-1]}", file=sys.stderr)
    print(table(rows, [("model", "model", "s"), ("weighted_f1", "weighted F1", ".4f"), ("fit_s", "fit (s)", ".0f"),
                       ("predict_per_s", "predict (products/s)", ",.0f"), ("peak_mb", "peak memory (MB)", ",.0f"),
                       ("trained", "training", "s"), ("load", "load avg (start / end)", "s")]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
