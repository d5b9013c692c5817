"""``prodcat`` command line: a thin shell that parses arguments and calls the library.

Every command prints what it did; any :class:`~prodcat.errors.ProdcatError` (bad file, bad
argument, incompatible model) becomes one ``error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from prodcat.errors import ProdcatError

EXIT_ERROR = 2


def _print(*args: Any) -> None:
    print(*args, flush=True)


# --- shared argument groups ---------------------------------------------------------------


def _add_data_args(parser: argparse.ArgumentParser, *, labels: bool) -> None:
    parser.add_argument("--x", required=True, metavar="X.csv",
                        help="products: official X file (index, designation, description, productid, imageid) "
                             "or a generic CSV with --text-col")
    if labels:
        parser.add_argument("--y", metavar="Y.csv", help="labels: official Y file (index, prdtypecode); "
                                                         "not needed with --label-col")
    parser.add_argument("--images", metavar="DIR", help="folder of image_{imageid}_product_{productid}.jpg files")
    parser.add_argument("--text-col", metavar="NAME", help="generic CSV: the text column (turns generic mode on)")
    parser.add_argument("--description-col", metavar="NAME", help="generic CSV: an optional second text column")
    if labels:
        parser.add_argument("--label-col", metavar="NAME", help="generic CSV: the label column")
    parser.add_argument("--encoding", default="utf-8", help="file encoding (default: utf-8)")


def _load(args: argparse.Namespace, *, labels: bool):
    """Load the dataset the arguments name and print what loading saw."""
    from prodcat.data.io import load_generic_csv, load_official

    if args.text_col:
        dataset = load_generic_csv(args.x, args.text_col, getattr(args, "label_col", None) if labels else None,
                                   description_col=args.description_col, images_dir=args.images,
                                   encoding=args.encoding)
    else:
        if labels and not args.y:
            raise ProdcatError("--y is required (or use --text-col/--label-col for a generic CSV)")
        dataset = load_official(args.x, args.y if labels else None, args.images, encoding=args.encoding)
    if labels and dataset.y is None:
        raise ProdcatError("no labels: pass --y, or --label-col for a generic CSV")
    for line in dataset.report.summary().splitlines():
        _print(f"  {line}")
    return dataset


def _load_model(path: str):
    from prodcat.predictor import ProductClassifier

    return ProductClassifier.load(path)


# --- commands -----------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from prodcat.training import train_and_save

    _print(f"Loading {args.x}")
    dataset = _load(args, labels=True)
    result = train_and_save(dataset, out=args.out, preset=args.preset, text_model=args.text_model,
                            valid_size=args.valid_size, seed=args.seed, cache_dir=args.cache,
                            runs_root=args.runs_dir, run_name=args.name, mlflow_uri=args.mlflow,
                            time_limit=args.time_limit, fusion=args.fusion)
    _print(result.summary())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from prodcat.data.io import write_submission

    model = _load_model(args.model)
    _print(f"Loading {args.x}")
    dataset = _load(args, labels=False)
    codes = model.predict(dataset.X)
    path = write_submission(dataset.X.index, codes, args.out)
    _print(f"Wrote {len(codes):,} predictions to {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from prodcat.training import evaluate_to_dir

    model = _load_model(args.model)
    _print(f"Loading {args.x}")
    dataset = _load(args, labels=True)
    result = evaluate_to_dir(model, dataset, args.out)
    _print(result.summary())
    return 0


def cmd_eda(args: argparse.Namespace) -> int:
    from prodcat.reports.eda import write_eda

    _print(f"Loading {args.x}")
    dataset = _load(args, labels=bool(args.y or args.label_col))
    other = None
    if args.x_other:
        from prodcat.data.io import load_official

        other = load_official(args.x_other, None, args.images_other).X
    path = write_eda(args.out, dataset.X, dataset.y, X_other=other, image_sample=args.image_sample)
    _print(f"Wrote {path}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from prodcat.runs import list_runs

    runs = list_runs(args.root)
    if runs.empty:
        _print(f"No runs in {args.root}")
        return 0
    _print(runs.drop(columns=["path"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    from prodcat.image.embed import embed_folder

    stats = embed_folder(args.images, cache_dir=args.cache, backbone=args.backbone, workers=args.workers)
    _print(stats.summary())
    for path, reason in stats.failures:
        _print(f"  unusable: {path}: {reason}")
    return 0


def cmd_crop(args: argparse.Namespace) -> int:
    from prodcat.image.io import crop_preview

    _print(f"Wrote {crop_preview(args.image, args.out, size=args.size)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from prodcat.compare import compare_models, save_leaderboard, to_markdown

    _print(f"Loading {args.x}")
    dataset = _load(args, labels=True)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    board = compare_models(dataset, names, test_size=args.test_size, seed=args.seed, cache_dir=args.cache,
                           time_limit=args.time_limit, echo=_print)
    _print(to_markdown(board))
    for path in save_leaderboard(board, args.out):
        _print(f"Wrote {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from prodcat.serve.api import run_server

    run_server(args.model, host=args.host, port=args.port, workers=args.workers, max_batch=args.max_batch)
    return 0


def cmd_app(args: argparse.Namespace) -> int:
    from prodcat.serve.launch import run_webapp

    return run_webapp(args.model, port=args.port, data=args.data, report=args.report, host=args.host)


def cmd_presets(args: argparse.Namespace) -> int:
    from prodcat.presets import DEFAULT_PRESET, PRESETS

    for name, preset in PRESETS.items():
        marker = " (default without images)" if name == DEFAULT_PRESET else ""
        _print(f"{name}{marker}: {preset['description']}")
        if args.verbose:
            _print("  " + json.dumps({k: v for k, v in preset.items() if k != "description"}))
    return 0


def cmd_classify(args: argparse.Namespace) -> int:
    from prodcat.data.io import make_products

    model = _load_model(args.model)
    products = make_products([args.designation], [args.description or ""],
                             [args.image] if args.image else None)
    prediction = model.explain(products, k=args.top)[0]
    if args.json:
        _print(json.dumps(prediction.to_dict(), ensure_ascii=False, indent=2))
        return 0
    for rank, (code, name, probability) in enumerate(prediction.top, 1):
        _print(f"{rank}. {code:>5}  {name:<22} {probability:6.1%}")
    for modality, top in prediction.modalities.items():
        shown = ", ".join(f"{code} {name} {p:.0%}" for code, name, p in top[:3])
        _print(f"   {modality:>6}: {shown}")
    if prediction.words:
        _print("   words: " + ", ".join(word for word, _ in prediction.words))
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from prodcat.text.clean import CleaningConfig, clean_steps

    config = CleaningConfig(**{step: False for step in args.skip})
    steps = clean_steps(args.text, args.description or "", config)
    width = max(len(name) for name, _ in steps)
    for name, text in steps:
        _print(f"{name:<{width}}  {text}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from prodcat.demo import run_demo

    run_demo(Path(args.out), n_train=args.n_train, n_test=args.n_test, seed=args.seed,
             preset=args.preset, echo=_print)
    return 0


# --- parser -------------------------------------------------------------------------------


def _cleaning_steps() -> list[str]:
    from dataclasses import fields

    from prodcat.text.clean import CleaningConfig

    return [f.name for f in fields(CleaningConfig)]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``prodcat`` command."""
    from prodcat import __version__
    from prodcat.presets import PRESETS

    parser = argparse.ArgumentParser(prog="prodcat", description="Classify e-commerce products (Rakuten France "
                                     "taxonomy, 27 codes) from their text and photo.")
    parser.add_argument("--version", action="version", version=f"prodcat {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(handler=handler)
        return p

    p = command("train", cmd_train, "Train a model and save it as a bundle directory.")
    _add_data_args(p, labels=True)
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="model recipe (default: fast without images; see `prodcat presets`)")
    p.add_argument("--text-model", default=None, help="override the text model (e.g. linear_svc, logistic_regression, "
                                                       "hierarchical, neural_embedding, minilm)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="time budget for the fit; deep components get their share (as AutoGluon's time_limit)")
    p.add_argument("--fusion", choices=["auto", "classwise", "stack", "blend"],
                   help="late-fusion method of multi-component presets (default: the preset's, auto: the fuser "
                        "with the lowest out-of-fold log-loss)")
    p.add_argument("--valid-size", type=float, default=0.1,
                   help="share held out for validation metrics (0 trains on everything; default 0.1)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--cache", metavar="DIR", help="image embedding cache (default: user cache dir)")
    p.add_argument("--out", metavar="MODEL_DIR", help="also copy the model bundle here (it is always saved in "
                                                      "the run folder)")
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="where run folders go (default: ./runs)")
    p.add_argument("--name", help="a name appended to the run folder")
    p.add_argument("--mlflow", metavar="URI", help="also log the run to MLflow (needs mlflow installed)")

    p = command("predict", cmd_predict, "Predict codes and write a challenge submission CSV.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    _add_data_args(p, labels=False)
    p.add_argument("--out", required=True, metavar="submission.csv")

    p = command("evaluate", cmd_evaluate, "Score a model on labelled data; write metrics, per-class table, "
                                          "confusion matrix.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    _add_data_args(p, labels=True)
    p.add_argument("--out", required=True, metavar="DIR")

    p = command("eda", cmd_eda, "Explore a dataset: eda.html + PNGs (classes, lengths, languages, HTML, "
                                "mojibake, duplicates, images).")
    _add_data_args(p, labels=True)
    p.add_argument("--x-other", metavar="X.csv", help="a second X file (e.g. test) to look for duplicates across")
    p.add_argument("--images-other", metavar="DIR", help="images of --x-other")
    p.add_argument("--image-sample", type=int, default=2000, help="images to sample for image statistics")
    p.add_argument("--out", required=True, metavar="DIR")

    p = command("runs", cmd_runs, "List training run folders with their headline metrics.")
    p.add_argument("--root", default="runs", metavar="DIR", help="runs folder (default: ./runs)")

    p = command("embed", cmd_embed, "Compute image embeddings for a folder into the on-disk cache (resumable).")
    p.add_argument("--images", required=True, metavar="DIR")
    p.add_argument("--cache", metavar="DIR", help="cache folder (default: user cache dir or $PRODCAT_CACHE_DIR)")
    p.add_argument("--backbone", default="lite0", choices=["lite0", "lite1", "lite2"])
    p.add_argument("--workers", type=int, help="decoding processes (default: CPU count)")

    p = command("crop", cmd_crop, "Show the white-border crop of one image: before | after, as a PNG.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="PNG")
    p.add_argument("--size", type=int, default=224)

    p = command("compare", cmd_compare, "Train several models on one split and print/save a leaderboard.")
    _add_data_args(p, labels=True)
    p.add_argument("--models", required=True, metavar="A,B,C",
                   help="comma-separated: presets (fast, balanced, ...), text models (linear_svc, ...), image:logreg")
    p.add_argument("--test-size", type=float, default=0.2, help="held-out share (default 0.2)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--time-limit", type=float, metavar="SECONDS", help="time budget per model fit")
    p.add_argument("--cache", metavar="DIR", help="image embedding cache")
    p.add_argument("--out", required=True, metavar="DIR", help="where leaderboard.csv and leaderboard.md go")

    p = command("serve", cmd_serve, "Serve a model bundle over HTTP (REST API, OpenAPI at /docs).")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="worker processes, each loads the model once")
    p.add_argument("--max-batch", type=int, default=256, help="most products in one batch request")

    p = command("app", cmd_app, "Start the web demonstrator (Streamlit) for a model bundle.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--data", metavar="X.csv", help="a dataset whose first products the examples page shows")
    p.add_argument("--report", metavar="report.html", help="evaluation report to show (default: the run's)")

    p = command("presets", cmd_presets, "List the model presets.")
    p.add_argument("--verbose", "-v", action="store_true", help="show each preset's recipe")

    p = command("classify", cmd_classify, "Classify one product: top classes with names and probabilities.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("designation", help="product title")
    p.add_argument("description", nargs="?", default="", help="product description (optional)")
    p.add_argument("--image", metavar="PATH", help="product photo (optional)")
    p.add_argument("--top", type=int, default=5, help="how many classes to show (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = command("clean", cmd_clean, "Show each text cleaning step's result.")
    p.add_argument("text", help="designation (title)")
    p.add_argument("description", nargs="?", default="", help="description (optional)")
    p.add_argument("--skip", nargs="+", default=[], choices=_cleaning_steps(), metavar="STEP",
                   help=f"steps to switch off: {', '.join(_cleaning_steps())}")

    p = command("demo", cmd_demo, "Generate demo data, train, evaluate, predict and classify, end to end.")
    p.add_argument("--out", default="prodcat-demo", metavar="DIR", help="working folder (default: ./prodcat-demo)")
    p.add_argument("--n-train", type=int, default=1500)
    p.add_argument("--n-test", type=int, default=400)
    p.add_argument("--preset", default=None, choices=sorted(PRESETS))
    p.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prodcat`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except ProdcatError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as error:
        print(f"error: {error.strerror or error}: {error.filename}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
