"""Shared plumbing of the text benchmarks: the rakuten_en holdout, one process per model, Markdown tables."""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from pathlib import Path

import pandas as pd


def load_products(path: Path) -> pd.DataFrame:
    """designation / description / prdtypecode from a ``text`` CSV or an official-layout CSV."""
    frame = pd.read_csv(path)
    if "text" in frame.columns:
        return pd.DataFrame({"designation": frame["text"].fillna(""), "description": "",
                             "prdtypecode": frame["prdtypecode"].astype(int)})
    return frame[["designation", "description", "prdtypecode"]].assign(prdtypecode=lambda f: f["prdtypecode"].astype(int))


def holdout_split(products: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, test): the stratified 20% holdout, seed 42, that every text benchmark uses."""
    from sklearn.model_selection import train_test_split

    return train_test_split(products, test_size=0.2, stratify=products["prdtypecode"], random_state=42)


def fit_and_score(model, train: pd.DataFrame, test: pd.DataFrame) -> dict:
    """Fit on ``train``, predict ``test``: weighted F1, fit seconds, predict throughput, peak memory."""
    from sklearn.metrics import f1_score

    started = time.perf_counter()
    model.fit(train, train["prdtypecode"].to_numpy())
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    predicted = model.predict(test)
    predict_seconds = time.perf_counter() - started
    return {"weighted_f1": f1_score(test["prdtypecode"], predicted, average="weighted"), "fit_s": fit_seconds,
            "predict_per_s": len(test) / predict_seconds,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_isolated(target, *args) -> dict:
    """Run ``target(*args, queue)`` in a fresh process (own imports, threads and peak memory)."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=target, args=(*args, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table: columns are (key, header, format)."""
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(format(row[k], f) for k, _, f in columns) + " |")
    return "\n".join(lines)
