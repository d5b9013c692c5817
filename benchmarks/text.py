"""Text model benchmark: our default text model vs the former default and the seeds' baseline.

    python benchmarks/text.py --data ../shared/data/rakuten_en/train.csv \
        [--sample ../shared/data/rakuten_sample]

Stratified 20% holdout (seed 42) on a CSV with ``text`` and ``prdtypecode`` columns: weighted F1,
fit time, predict throughput and peak memory, each model in its own process. With ``--sample``,
also 5-fold cross-validated weighted F1 on the real French rows (official format).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from harness import fit_and_score, holdout_split, load_products, run_isolated, table

MODELS = ("default", "linear", "seeds_baseline")


def build(name: str):
    """A fresh, unfitted model taking a DataFrame with designation/description columns."""
    if name in ("default", "linear"):  # linear: the former default, one calibrated LinearSVC
        from prodcat.predictor import ProductClassifier

        return ProductClassifier("fast", text_model=None if name == "default" else "linear", progress=False)
    if name == "seeds_baseline":  # the seeds' text SVM: word 1-2-gram TF-IDF + LinearSVC on the title text
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import FunctionTransformer
        from sklearn.svm import LinearSVC

        from prodcat.text.clean import texts_from

        return make_pipeline(FunctionTransformer(texts_from), TfidfVectorizer(ngram_range=(1, 2)), LinearSVC())
    raise ValueError(name)


def _holdout(name: str, train: pd.DataFrame, test: pd.DataFrame, queue: mp.Queue) -> None:
    queue.put({"model": name, **fit_and_score(build(name), train, test)})


def _cross_validate(name: str, products: pd.DataFrame, labels: np.ndarray, queue: mp.Queue) -> None:
    from sklearn.base import clone
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    scores = []
    keep = pd.Series(labels).map(pd.Series(labels).value_counts()) >= 5
    products, labels = products[keep.to_numpy()], labels[keep.to_numpy()]
    for train, test in StratifiedKFold(5, shuffle=True, random_state=42).split(products, labels):
        model = clone(build(name)).fit(products.iloc[train], labels[train])
        scores.append(f1_score(labels[test], model.predict(products.iloc[test]), average="weighted"))
    queue.put({"model": name, "cv_weighted_f1": float(np.mean(scores)), "cv_std": float(np.std(scores)),
               "n": int(len(labels))})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="CSV with text and prdtypecode columns")
    parser.add_argument("--sample", type=Path, help="folder with X_train_sample.csv and Y_train_sample.csv")
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args(argv)
    train, test = holdout_split(load_products(args.data))
    print(f"{args.data}: {len(train):,} train / {len(test):,} test (stratified 20%, seed 42)", file=sys.stderr)
    rows = [run_isolated(_holdout, name, train, test) for name in args.models.split(",")]
    print(table(rows, [("model", "model", "s"), ("weighted_f1", "weighted F1", ".4f"), ("fit_s", "fit (s)", ".1f"),
                       ("predict_per_s", "predict (products/s)", ",.0f"), ("peak_mb", "peak memory (MB)", ",.0f")]))
    if args.sample:
        from prodcat.data.io import load_official

        sample = load_official(args.sample / "X_train_sample.csv", args.sample / "Y_train_sample.csv")
        labels = sample.y.to_numpy()
        cv_rows = [run_isolated(_cross_validate, name, sample.X, labels) for name in args.models.split(",")]
        print(f"\nReal French sample ({cv_rows[0]['n']} rows of classes with >= 5 rows), 5-fold CV:")
        print(table(cv_rows, [("model", "model", "s"), ("cv_weighted_f1", "weighted F1", ".4f"),
                              ("cv_std", "std", ".4f")]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
