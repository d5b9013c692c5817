"""Accuracy against time budget: the `best` preset trained with several ``time_limit`` values.

    python benchmarks/budget_curve.py --data ../shared/data/rakuten_en/train.csv \
        --minutes 5,10,20,40,60 --out runs/budget-curve

Same stratified 20% holdout (seed 42) as ``benchmarks/text.py``. Each budget is fitted in its own
process; its row (weighted F1, fit seconds, fit / budget, peak memory) is appended to
``OUT/budget_curve.csv`` as soon as it is measured, so an interrupted run keeps what it finished
and a later run with the same ``--out`` skips budgets already there; each `best` row also says
where its fit time went (seconds by component, MiniLM's epochs). The seeds' baseline and the
default (`fast`) are measured once and drawn as horizontal lines in ``OUT/budget_curve.png``;
the Markdown table is printed and written to ``OUT/budget_curve.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from harness import fit_and_score, holdout_split, load_products, run_isolated, table
from text import build

COLUMNS = ["model", "minutes", "weighted_f1", "fit_s", "fit_over_budget", "predict_per_s", "peak_mb", "components"]


def _where_the_time_went(model) -> str:
    """Each component's fit seconds (all its fits), and the epochs MiniLM's kept weights trained."""
    parts = []
    for name, seconds in model.fit_times_.items():
        epochs = getattr(getattr(model.components_.get(name), "model", None), "epochs_done_", None)
        parts.append(f"{name} {seconds:.0f} s" + (f" ({epochs:.1f} epochs)" if epochs is not None else ""))
    return " · ".join(parts)


def _fit_best(minutes: float, train: pd.DataFrame, test: pd.DataFrame, queue) -> None:
    from prodcat.predictor import ProductClassifier

    model = ProductClassifier("best", time_limit=minutes * 60, progress=False)
    row = fit_and_score(model, train, test)
    queue.put({"model": "best", "minutes": minutes, **row, "fit_over_budget": row["fit_s"] / (minutes * 60),
               "components": _where_the_time_went(model)})


def _fit_reference(name: str, train: pd.DataFrame, test: pd.DataFrame, queue) -> None:
    queue.put({"model": name, "minutes": float("nan"), **fit_and_score(build(name), train, test),
               "fit_over_budget": float("nan"), "components": ""})


def plot(results: pd.DataFrame, path: Path) -> Path:
    """Weighted F1 of `best` against its budget, with the reference models as horizontal lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    best = results[results["model"] == "best"].sort_values("minutes")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(best["minutes"], best["weighted_f1"], marker="o", color="tab:blue", label="best (time_limit)")
    for x, y in zip(best["minutes"], best["weighted_f1"]):
        ax.annotate(f"{y:.3f}", (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8)
    styles = {"default": ("tab:green", "default (fast)"), "seeds_baseline": ("tab:gray", "seeds' baseline")}
    for name, (color, label) in styles.items():
        row = results[results["model"] == name]
        if len(row):
            value = float(row["weighted_f1"].iloc[-1])
            ax.axhline(value, color=color, linestyle="--", linewidth=1, label=f"{label}: {value:.3f}")
    ax.set_xlabel("time budget (minutes, 2 CPU cores)")
    ax.set_ylabel("weighted F1 (rakuten_en holdout)")
    ax.set_title("prodcat best: accuracy against training budget")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, type=Path, help="CSV with text and prdtypecode columns")
    parser.add_argument("--minutes", default="5,10,20,40,60", help="comma-separated budgets in minutes")
    parser.add_argument("--out", required=True, type=Path, help="folder for the CSV, the table and the plot")
    args = parser.parse_args(argv)
    minutes = [float(m) for m in args.minutes.split(",")]
    args.out.mkdir(parents=True, exist_ok=True)
    csv = args.out / "budget_curve.csv"
    results = pd.read_csv(csv) if csv.exists() else pd.DataFrame(columns=COLUMNS)
    train, test = holdout_split(load_products(args.data))
    print(f"{args.data}: {len(train):,} train / {len(test):,} test (stratified 20%, seed 42)", file=sys.stderr)
    jobs = [(_fit_reference, name) for name in ("seeds_baseline", "default") if name not in set(results["model"])]
    jobs += [(_fit_best, m) for m in minutes if not ((results["model"] == "best") & (results["minutes"] == m)).any()]
    for target, arg in jobs:
        print(f"fitting {arg if isinstance(arg, str) else f'best, {arg:g} min'}", file=sys.stderr, flush=True)
        row = run_isolated(target, arg, train, test)
        results = pd.concat([results.dropna(axis=1, how="all"), pd.DataFrame([row])[COLUMNS]], ignore_index=True)
        results.to_csv(csv, index=False)
    shown = results.sort_values(["model", "minutes"]).fillna({"minutes": 0, "fit_over_budget": 0, "components": ""})
    text = table(shown.to_dict("records"), [("model", "model", "s"), ("minutes", "budget (min)", "g"),
                                            ("weighted_f1", "weighted F1", ".4f"), ("fit_s", "fit (s)", ".0f"),
                                            ("fit_over_budget", "fit / budget", ".2f"),
                                            ("peak_mb", "peak memory (MB)", ",.0f"),
                                            ("components", "fit seconds by component", "s")])
    (args.out / "budget_curve.md").write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"wrote {csv}, {args.out / 'budget_curve.md'}, {plot(results, args.out / 'budget_curve.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
