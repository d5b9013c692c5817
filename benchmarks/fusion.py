"""Fusion benchmark: text alone, image alone and their fusions, trained on one split.

    python benchmarks/fusion.py [--n-train 1500] [--seed 0]                   # generated demo data
    python benchmarks/fusion.py --x X.csv --y Y.csv --images DIR              # any official-format data

Prints the leaderboard (weighted F1, macro F1, accuracy, fit time, predict time per 1,000 products)
and whether the fused model beats both single modalities in this run; also times prediction with
the balanced preset once image embeddings are cached (target >= 500 products/s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from prodcat.compare import compare_models, to_markdown
from prodcat.data.io import load_official
from prodcat.data.sample import make_demo_dataset
from prodcat.predictor import ProductClassifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--x", type=Path)
    parser.add_argument("--y", type=Path)
    parser.add_argument("--images", type=Path)
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="embedding cache (default: a temporary folder)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cache = str(args.cache or Path(tmp) / "cache")
        if args.x:
            dataset = load_official(args.x, args.y, args.images)
            source = str(args.x)
        else:
            paths = make_demo_dataset(Path(tmp) / "demo", n_train=args.n_train, n_test=100, seed=args.seed,
                                      progress=False)
            dataset = load_official(paths.x_train, paths.y_train, paths.images_train)
            source = f"generated demo data, {args.n_train:,} products, seed {args.seed}"
        print(f"{source}: stratified 80/20 split, seed 42", file=sys.stderr)
        board = compare_models(dataset, ["fast", "image:logreg", "balanced"], cache_dir=cache,
                               echo=lambda m: print(m, file=sys.stderr))
        print(to_markdown(board))
        score = dict(zip(board["model"], board["weighted_f1"]))
        fused, text, image = score["balanced"], score["fast"], score["image:logreg"]
        verdict = "beats" if fused > max(text, image) else "does NOT beat"
        print(f"\nFusion (balanced, {fused:.4f}) {verdict} text alone ({text:.4f}) and image alone ({image:.4f}).")

        model = ProductClassifier("balanced", cache_dir=cache, progress=False).fit(dataset.X, dataset.y)
        model.predict(dataset.X)  # embeddings now cached
        started = time.perf_counter()
        model.predict(dataset.X)
        rate = len(dataset.X) / (time.perf_counter() - started)
        print(f"Balanced predict with cached embeddings: {rate:,.0f} products/s on {len(dataset.X):,} products "
              f"(target >= 500).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
