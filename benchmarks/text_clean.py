"""Throughput of the text cleaning pipeline (texts/s), full and with stemming off.

    python benchmarks/text_clean.py [--data ../shared/data]

Each configuration runs in a fresh process state (token caches cleared) so "cold" includes
stemming every distinct word once; "warm" repeats the same texts with caches filled, as a
fitted model does when it predicts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from prodcat.text import clean
from prodcat.text.clean import CleaningConfig, clean_texts, texts_from
from prodcat.text.lang import detect_languages


def _rate(texts: list[str], config: CleaningConfig) -> tuple[float, float]:
    clean._token_caches.clear()
    start = time.perf_counter()
    clean_texts(texts, config, progress=False)
    cold = len(texts) / (time.perf_counter() - start)
    start = time.perf_counter()
    clean_texts(texts, config, progress=False)
    warm = len(texts) / (time.perf_counter() - start)
    return cold, warm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = parser.parse_args()
    datasets = {
        "rakuten_en/train.csv (text)":
            pd.read_csv(args.data / "rakuten_en" / "train.csv")["text"].astype(str).tolist(),
        "rakuten_sample/X_train_sample.csv (designation + description), x20":
            texts_from(pd.read_csv(args.data / "rakuten_sample" / "X_train_sample.csv",
                                   index_col=0)) * 20,
    }
    detect_languages(["warm up the model"])
    configs = {
        "full pipeline": CleaningConfig(),
        "stemming off": CleaningConfig(stem=False),
        "stemming + language detection off": CleaningConfig(stem=False, detect_language=False),
    }
    for name, texts in datasets.items():
        mean_chars = sum(map(len, texts)) / len(texts)
        print(f"{name}: {len(texts):,} texts, {mean_chars:.0f} chars on average")
        start = time.perf_counter()
        detect_languages(texts)
        rate = len(texts) / (time.perf_counter() - start)
        print(f"  language detection only      {rate:>9,.0f} texts/s")
        for label, config in configs.items():
            cold, warm = _rate(texts, config)
            print(f"  {label:<36} cold {cold:>8,.0f} texts/s   warm {warm:>8,.0f} texts/s")


if __name__ == "__main__":
    main()
