"""``prodcat`` command line: a thin shell that parses arguments and calls the library.

Every command prints what it did; any :class:`~prodcat.errors.ProdcatError` (bad file, bad
argument, incompatible model), and any other error a user's input can cause (an OS error, a
damaged cache, a value a library refuses), becomes one ``error:`` line and exit status 2;
``--debug`` shows the traceback instead. SIGTERM is handled like Ctrl-C: work in progress is
flushed (embedding cache) and child processes are stopped. Output paths are checked before any
work starts (``demo`` reuses the folder it wrote itself and refuses any other).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Sequence

from prodcat.errors import ProdcatError
from prodcat.outputs import check_output_dir, check_output_file

FITS_HELP = "where the independent fits of a multi-component preset run (its K fold fits, the components of best)"
DEFAULT_CHUNK_ROWS = 20_000  # prodcat.engines.DEFAULT_CHUNK_ROWS, without importing the engines for --help

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread like Ctrl-C so that ``finally`` blocks flush and clean up."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value
    parse.__name__ = f"integer >= {minimum}"
    return parse


def _number_in(low: float, high: float | None = None, *, low_ok: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number above ``low`` (or equal when ``low_ok``) and below ``high``."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value < low if low_ok else value <= low
        if value != value or too_low or (high is not None and value >= high) or value == float("inf"):
            bound = f"{'>=' if low_ok else '>'} {low:g}" + (f" and < {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


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
        parser.add_argument("--align", action="store_true",
                            help="official files: keep only the rows whose index is in both X and Y (an inner join, "
                                 "counted and reported) instead of refusing files that do not match")
    parser.add_argument("--encoding", default="utf-8", help="file encoding")


def _add_engine_args(parser: argparse.ArgumentParser, *, workers: str | None,
                     work: str = "where the work runs") -> None:
    parser.add_argument("--engine", default="local", choices=["local", "ray"],
                        help=f"{work}: this process, or Ray (needs pip install 'prodcat[ray]')")
    parser.add_argument("--address", metavar="ADDR", help="Ray engine: join this running Ray cluster (e.g. "
                        "ray://head:10001 or auto) instead of starting a local runtime")
    if workers is not None:
        parser.add_argument("--workers", type=_int_at_least(0), metavar="N", help=workers)


def _load(args: argparse.Namespace, *, labels: bool):
    """Load the dataset the arguments name and print what loading saw."""
    from prodcat.data.io import load_generic_csv, load_official

    if args.text_col:
        if getattr(args, "align", False):
            raise ProdcatError("--align joins official X and Y files; a generic CSV holds its labels in --label-col")
        if getattr(args, "y", None):
            raise ProdcatError("--y names an official label file; with --text-col the labels are a column: --label-col")
        dataset = load_generic_csv(args.x, args.text_col, getattr(args, "label_col", None) if labels else None,
                                   description_col=args.description_col, images_dir=args.images,
                                   encoding=args.encoding)
    else:
        if labels and not args.y:
            raise ProdcatError("--y is required (or use --text-col/--label-col for a generic CSV)")
        dataset = load_official(args.x, args.y if labels else None, args.images, encoding=args.encoding,
                                align=bool(getattr(args, "align", False)))
    if labels and dataset.y is None:
        raise ProdcatError("no labels: pass --y, or --label-col for a generic CSV")
    for line in dataset.report.summary().splitlines():
        _print(f"  {line}")
    return dataset


def _load_model(path: str, cache: str | None = None):
    from prodcat.predictor import ProductClassifier

    return ProductClassifier.load(path, cache_dir=cache)


def _read_manifest(path: str) -> dict:
    from prodcat.predictor import ProductClassifier

    return ProductClassifier.read_manifest(path)


# --- commands -----------------------------------------------------------------------------


def cmd_train(args: argparse.Namespace) -> int:
    from prodcat.engines import check_engine
    from prodcat.training import train_and_save

    if args.out is not None:
        from prodcat.safe_bundle import check_bundle_target

        check_bundle_target(args.out)
    check_engine(args.engine, args.address)
    _print(f"Loading {args.x}")
    dataset = _load(args, labels=True)
    result = train_and_save(dataset, out=args.out, preset=args.preset, text_model=args.text_model,
                            valid_size=args.valid_size, seed=args.seed, cache_dir=args.cache,
                            runs_root=args.runs_dir, run_name=args.name, mlflow_uri=args.mlflow,
                            time_limit=args.time_limit, fusion=args.fusion, text_backbone=args.text_backbone,
                            device=args.device, refit=args.refit, engine=args.engine, address=args.address,
                            resume=args.resume)
    _print(result.summary())
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from prodcat.engines import OutputSpec, ProductSource, get_engine
    from prodcat.review import ReviewPolicy

    check_output_file(args.out, [args.x])
    model = _load_model(args.model, args.cache) if args.engine == "local" else None  # Ray actors load their own
    manifest = None if model is not None else _read_manifest(args.model)
    classes = len(model.classes_) if model is not None else len(manifest["classes"])
    policy = (ReviewPolicy.for_model(model, args.review_target) if model is not None
              else ReviewPolicy.from_metrics(manifest.get("metrics"), args.review_target))
    if args.top is not None and not 1 <= args.top <= classes:
        raise ProdcatError(f"--top must be between 1 and {classes} (the model's classes), got {args.top}")
    table = args.proba or args.top is not None
    output = OutputSpec(top=(args.top or 1) if table else None, review_target=args.review_target)
    source = ProductSource(args.x, text_col=args.text_col, description_col=args.description_col,
                           images_dir=args.images, encoding=args.encoding)
    _print(f"Predicting {args.x} in chunks of {args.chunk_rows:,} rows ({args.engine} engine)")
    with get_engine(args.engine, address=args.address, workers=args.workers, model=model) as engine:
        stats = engine.predict(args.model, source, args.out, output=output, chunk_rows=args.chunk_rows,
                               cache_dir=args.cache)
    if stats.n_images_found is not None:
        missing = stats.n_rows - stats.n_images_found
        _print(f"  images: {stats.n_images_found:,} found, {missing:,} missing in {args.images}")
    if stats.unusable_photos:
        path, reason = stats.unusable_photos[0]
        _print(f"  {stats.n_unusable_photos:,} photo(s) unusable (text used instead), e.g. {path}: {reason}")
    _print(stats.summary())
    if table and policy.available:
        _print(f"  {stats.n_review or 0:,} need review: {policy.describe()}")
    elif table:
        _print(f"  needs_review left empty: {policy.describe()}")
    return 0


def _print_unusable_photos(model) -> None:
    """Count (and show one example of) the photos the last prediction could not use."""
    failures = getattr(model, "last_image_failures_", None) or []
    if failures:
        path, reason = failures[0]
        _print(f"  {len(failures):,} photo(s) unusable (text used instead), e.g. {path}: {reason}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from prodcat.training import evaluate_to_dir

    check_output_dir(args.out)
    model = _load_model(args.model, args.cache)
    _print(f"Loading {args.x}")
    dataset = _load(args, labels=True)
    result = evaluate_to_dir(model, dataset, args.out)
    _print_unusable_photos(model)
    _print(result.summary())
    return 0


def cmd_eda(args: argparse.Namespace) -> int:
    from prodcat.reports.eda import write_eda

    check_output_dir(args.out)
    _print(f"Loading {args.x}")
    dataset = _load(args, labels=bool(args.y or args.label_col))
    other = None
    if args.x_other:
        from prodcat.data.io import load_generic_csv, load_official

        if args.text_col:
            other = load_generic_csv(args.x_other, args.text_col, description_col=args.description_col,
                                     images_dir=args.images_other, encoding=args.encoding).X
        else:
            other = load_official(args.x_other, None, args.images_other, encoding=args.encoding).X
    X = dataset.X if dataset.report.has_description else dataset.X.drop(columns="description")
    path = write_eda(args.out, X, dataset.y, X_other=other, image_sample=args.image_sample)
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
    from prodcat.engines import get_engine
    from prodcat.image.embed import image_files

    with get_engine(args.engine, address=args.address, workers=args.workers) as engine:
        stats = engine.embed(image_files(args.images), cache_dir=args.cache, backbone=args.backbone,
                             workers=args.workers)
    _print(stats.summary())
    for path, reason in stats.failures:
        _print(f"  unusable: {path}: {reason}")
    return 0


def cmd_crop(args: argparse.Namespace) -> int:
    from prodcat.image.io import crop_preview

    check_output_file(args.out, [args.image])
    _print(f"Wrote {crop_preview(args.image, args.out, size=args.size)}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from prodcat.compare import compare_models, save_leaderboard, to_markdown
    from prodcat.engines import check_engine

    check_output_dir(args.out)
    check_engine(args.engine, args.address)
    _print(f"Loading {args.x}")
    dataset = _load(args, labels=True)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    board = compare_models(dataset, names, test_size=args.test_size, seed=args.seed, cache_dir=args.cache,
                           time_limit=args.time_limit, echo=_print, engine=args.engine, address=args.address)
    _print(to_markdown(board))
    for path in save_leaderboard(board, args.out):
        _print(f"Wrote {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from prodcat.predictor import ProductClassifier
    from prodcat.serve.api import run_server

    if args.cache:  # the workers read it from the environment; a bundle never chooses it
        from prodcat.image.cachedir import CACHE_ENV

        os.environ[CACHE_ENV] = str(Path(args.cache).resolve())
    ProductClassifier.load(args.model)  # a bad bundle: one error line here, not a traceback in a worker
    run_server(args.model, host=args.host, port=args.port, workers=args.workers, max_batch=args.max_batch,
               max_pixels=args.max_pixels, max_decodes=args.max_decodes, body_timeout_s=args.body_timeout)
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

    model = _load_model(args.model, args.cache)
    image = _photo_for(model, args.image) if args.image else None
    products = make_products([args.designation], [args.description or ""], [image] if image else None)
    prediction = model.explain(products, k=args.top)[0]
    if image and not prediction.has_image:
        reason = next((why for _, why in getattr(model, "last_image_failures_", [])), "not readable")
        _warn(f"{args.image}: photo unusable ({reason}); the answer comes from the text only")
    from prodcat.input_checks import NO_USABLE_INPUT, without_usable_input

    if without_usable_input(model, products, [prediction.has_image])[0]:
        _warn(NO_USABLE_INPUT)
    if args.json:
        _print(json.dumps(prediction.to_dict(), ensure_ascii=False, indent=2))
        return 0
    for rank, (code, name, probability) in enumerate(prediction.top, 1):
        _print(f"{rank}. {code:>5}  {name:<22} {probability:6.1%}")
    for component, top in prediction.components.items():
        shown = ", ".join(f"{code} {name} {p:.0%}" for code, name, p in top[:3])
        _print(f"   {component:>6}: {shown}")
    if prediction.words:
        _print("   words: " + ", ".join(word for word, _ in prediction.words))
    return 0


def _photo_for(model, path: str) -> str | None:
    """``path`` when the model reads photos, else None with a warning. A photo path that does not
    exist is an error: a typo must not silently give a text-only answer."""
    from prodcat.errors import DataError

    if not Path(path).exists():
        raise DataError("photo not found", path=path)
    if not model.reads_images:
        _warn(f"{path}: this model does not use photos; the answer comes from the text only")
        return None
    return path


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def cmd_clean(args: argparse.Namespace) -> int:
    from prodcat.text.clean import CleaningConfig, clean_steps

    steps_known = set(_cleaning_steps())
    skipped = {step for group in args.skip for step in group}
    for value in (args.text, args.description) if skipped else ():  # the old `--skip a b "text"` form
        if value and set(value.split(",")) <= steps_known:
            raise ProdcatError(f"'{value}' is a cleaning step, not a text: --skip takes a comma list "
                               f"(--skip stem,stopwords \"text\") or is repeated (--skip stem --skip stopwords)")
    config = CleaningConfig(**{step: False for step in skipped})
    steps = clean_steps(args.text, args.description or "", config)
    width = max(len(name) for name, _ in steps)
    for name, text in steps:
        _print(f"{name:<{width}}  {text}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from prodcat.export import export_mlflow

    path = export_mlflow(args.model, args.out)
    _print(f"Wrote an MLflow pyfunc model to {path} (load it with mlflow.pyfunc.load_model(\"{path}\"))")
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


IMAGE_BACKBONES = ("lite0", "lite1", "lite2", "lite0-ms", "lite1-ms", "lite2-ms", "lite1-ms+lite2-ms")
"""prodcat.image.backbone.BACKBONES, spelt out so that starting the CLI does not import NumPy."""
CACHE_HELP = ("image embedding cache (default: $PRODCAT_CACHE_DIR, else the user cache dir; "
              "a model bundle never chooses it)")


def _step_list(value: str) -> list[str]:
    """``--skip`` values: one step or a comma list of steps."""
    steps, known = [v.strip() for v in value.split(",") if v.strip()], _cleaning_steps()
    unknown = [step for step in steps if step not in known]
    if unknown or not steps:
        raise argparse.ArgumentTypeError(f"unknown cleaning step {', '.join(unknown) or repr(value)} "
                                         f"(steps: {', '.join(known)})")
    return steps


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except for flags, options without one and helps that already say it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        help = action.help or ""
        if action.default in (None, False, [], argparse.SUPPRESS) or "default" in help:
            return help
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every ``prodcat`` command."""
    from prodcat import __version__
    from prodcat.presets import PRESETS

    parser = argparse.ArgumentParser(prog="prodcat", description="Classify e-commerce products (Rakuten France "
                                     "taxonomy, 27 codes) from their text and photo.")
    parser.add_argument("--version", action="version", version=f"prodcat {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, handler: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
        p.set_defaults(handler=handler)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show the full traceback of an error")
        return p

    p = command("train", cmd_train, "Train a model and save it as a bundle directory.")
    _add_data_args(p, labels=True)
    p.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="model recipe (default: fast without images; see `prodcat presets`)")
    p.add_argument("--text-model", default=None, help="override the text model (e.g. linear_svc, logistic_regression, "
                                                       "hierarchical, neural_embedding, minilm)")
    p.add_argument("--time-limit", type=_number_in(0), metavar="SECONDS",
                   help="time budget for the whole fit (ends within it, about 5%% kept in reserve): components are "
                        "fitted cheapest first, each within a share re-planned over the time left")
    p.add_argument("--fusion", choices=["auto", "classwise", "stack", "blend"],
                   help="late-fusion method of multi-component presets (default: the preset's, auto: the fuser "
                        "with the lowest out-of-fold log-loss)")
    p.add_argument("--text-backbone", metavar="DIR",
                   help="folder of a local Hugging Face checkpoint (model + tokenizer) that the transformer "
                        "component fine-tunes instead of the bundled MiniLM; prodcat never downloads")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="where torch components train: auto (default: CUDA when available), cpu or cuda "
                        "(mixed precision and larger batches)")
    p.add_argument("--valid-size", type=_number_in(0, 1, low_ok=True), default=0.1,
                   help="share held out for validation metrics and review thresholds (0 trains on everything)")
    p.add_argument("--refit", action=argparse.BooleanOptionalAction, default=None,
                   help="after validation, fit again on all the rows and save that model (default: yes, unless a "
                        "time budget applies: --time-limit or the preset's own, as for best)")
    p.add_argument("--seed", type=int, default=42, help="random seed of the split and the models")
    p.add_argument("--cache", metavar="DIR", help=CACHE_HELP)
    p.add_argument("--out", metavar="MODEL_DIR", help="also copy the model bundle here (it is always saved in "
                                                      "the run folder)")
    p.add_argument("--runs-dir", default="runs", metavar="DIR", help="where run folders go (default: ./runs)")
    p.add_argument("--name", help="a name appended to the run folder")
    p.add_argument("--mlflow", metavar="URI", help="also log the run to MLflow (needs mlflow installed)")
    p.add_argument("--resume", metavar="RUN", help="continue an interrupted run (its folder, or its name under "
                   "--runs-dir) on the same data: its options are used, its finished component fits are loaded, "
                   "and --time-limit (default: the run's) bounds the work left")
    _add_engine_args(p, workers=None, work=FITS_HELP)

    p = command("predict", cmd_predict, "Predict codes and write a challenge submission CSV (or, with --proba/--top, "
                                        "a table with names, probabilities and a review flag).")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    _add_data_args(p, labels=False)
    p.add_argument("--out", required=True, metavar="submission.csv", help="must not be an input file")
    p.add_argument("--proba", action="store_true", help="also write the French name, the probability and "
                   "needs_review (confidence below the threshold measured at training)")
    p.add_argument("--top", type=int, metavar="K", help="write the K best classes (code_k, name_k, probability_k); "
                   "implies --proba")
    p.add_argument("--review-target", type=float, default=0.95, metavar="PRECISION",
                   help="needs_review keeps this precision on the products not sent to review (0.95 or 0.98)")
    _add_engine_args(p, workers="Ray actors, each loads the model once (default: the CPUs Ray sees)")
    p.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, metavar="N",
                   help="products read, predicted and written at a time (memory stays bounded); --x may be "
                        "CSV or Parquet (.parquet)")
    p.add_argument("--cache", metavar="DIR", help=CACHE_HELP)

    p = command("evaluate", cmd_evaluate, "Score a model on labelled data; write metrics, per-class table, "
                                          "confusion matrix.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    _add_data_args(p, labels=True)
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder for the report")
    p.add_argument("--cache", metavar="DIR", help=CACHE_HELP)

    p = command("eda", cmd_eda, "Explore a dataset: eda.html + PNGs (classes, lengths, languages, HTML, "
                                "mojibake, duplicates, images).")
    _add_data_args(p, labels=True)
    p.add_argument("--x-other", metavar="X.csv", help="a second X file (e.g. test) to look for duplicates across")
    p.add_argument("--images-other", metavar="DIR", help="images of --x-other")
    p.add_argument("--image-sample", type=_int_at_least(0), default=2000,
                   help="images to sample for image statistics (0: none)")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder for the report")

    p = command("runs", cmd_runs, "List training run folders with their headline metrics.")
    p.add_argument("--root", default="runs", metavar="DIR", help="runs folder (default: ./runs)")

    p = command("embed", cmd_embed, "Compute image embeddings for a folder into the on-disk cache (resumable).")
    p.add_argument("--images", required=True, metavar="DIR")
    p.add_argument("--cache", metavar="DIR", help=CACHE_HELP)
    p.add_argument("--backbone", default="lite0", choices=IMAGE_BACKBONES,
                   help="image model (lite1-ms+lite2-ms: the image preset's)")
    _add_engine_args(p, workers="local engine: decoding processes (default: a quarter of the CPUs); Ray engine: "
                                "actors, each loads the backbone once (default: the CPUs Ray sees)")

    p = command("crop", cmd_crop, "Show the white-border crop of one image: before | after, as a PNG.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--out", required=True, metavar="PNG")
    p.add_argument("--size", type=_int_at_least(16), default=224, help="side of the output image, pixels")

    p = command("compare", cmd_compare, "Train several models on one split and print/save a leaderboard.")
    _add_data_args(p, labels=True)
    p.add_argument("--models", required=True, metavar="A,B,C",
                   help="comma-separated: presets (fast, balanced, ...), text models (linear_svc, ...), image:logreg")
    p.add_argument("--test-size", type=_number_in(0, 1), default=0.2, help="held-out share")
    p.add_argument("--seed", type=int, default=42, help="random seed of the split and the models")
    p.add_argument("--time-limit", type=_number_in(0), metavar="SECONDS", help="time budget per model fit")
    p.add_argument("--cache", metavar="DIR", help="image embedding cache")
    p.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder for leaderboard.csv and leaderboard.md")
    _add_engine_args(p, workers=None, work=FITS_HELP)

    p = command("serve", cmd_serve, "Serve a model bundle over HTTP (REST API, OpenAPI at /docs).")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=_int_at_least(0), default=8000, help="TCP port")
    p.add_argument("--workers", type=_int_at_least(1), default=1, help="worker processes, each loads the model once")
    p.add_argument("--max-batch", type=_int_at_least(1), default=256, help="most products in one batch request")
    p.add_argument("--max-pixels", type=_int_at_least(1), default=16_000_000,
                   help="largest accepted photo in pixels (16,000,000: 4000x4000)")
    p.add_argument("--max-decodes", type=_int_at_least(1), default=2,
                   help="requests with photos decoded at once per worker; others wait, then get 503")
    p.add_argument("--body-timeout", type=_number_in(0), default=60.0, metavar="SECONDS",
                   help="seconds a client has to send a request body, else 408; the headers deadline is "
                        "$PRODCAT_SERVE_HEADER_TIMEOUT (10 s unless set)")
    p.add_argument("--cache", metavar="DIR", help=CACHE_HELP)

    p = command("app", cmd_app, "Start the web demonstrator (Streamlit) for a model bundle.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=_int_at_least(0), default=8501, help="TCP port")
    p.add_argument("--data", metavar="X.csv", help="a dataset whose first products the examples page shows")
    p.add_argument("--report", metavar="report.html", help="evaluation report to show (default: the bundle's run "
                   "folder validation/report.html, or the evaluation/report.html of a `prodcat demo` folder)")

    p = command("presets", cmd_presets, "List the model presets.")
    p.add_argument("--verbose", "-v", action="store_true", help="show each preset's recipe")

    p = command("classify", cmd_classify, "Classify one product: top classes with names and probabilities.")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("designation", help="product title")
    p.add_argument("description", nargs="?", default="", help="product description (optional)")
    p.add_argument("--image", metavar="PATH", help="product photo (optional)")
    p.add_argument("--top", type=_int_at_least(1), default=5, help="how many classes to show")
    p.add_argument("--cache", metavar="DIR", help=CACHE_HELP)
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = command("clean", cmd_clean, "Show each text cleaning step's result.")
    p.add_argument("text", help="designation (title)")
    p.add_argument("description", nargs="?", default="", help="description (optional)")
    p.add_argument("--skip", action="append", default=[], type=_step_list, metavar="STEP[,STEP]",
                   help=f"steps to switch off, a comma list or repeated: {', '.join(_cleaning_steps())}")

    p = command("demo", cmd_demo, "Generate demo data, train, evaluate, predict and classify, end to end.")
    p.add_argument("--out", default="prodcat-demo", metavar="DIR", help="working folder (default: ./prodcat-demo)")
    p.add_argument("--n-train", type=_int_at_least(1), default=1500, help="generated training products")
    p.add_argument("--n-test", type=_int_at_least(1), default=400, help="generated test products")
    p.add_argument("--preset", default=None, choices=sorted(PRESETS), help="model recipe (default: balanced, the "
                   "demo data has images)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the data and the models")

    p = command("export", cmd_export, "Export a model bundle for another platform (MLflow pyfunc model directory).")
    p.add_argument("--model", required=True, metavar="MODEL_DIR")
    p.add_argument("--format", required=True, choices=["mlflow"], help="target format")
    p.add_argument("--out", required=True, metavar="DIR", help="new directory to write (must not exist)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``prodcat`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if _main_thread() else None
    try:
        return int(args.handler(args) or 0)
    except Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 (any failure a user can cause: one line, no traceback)
        if args.debug:
            traceback.print_exc()
        print(f"error: {error_message(error)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def error_message(error: BaseException) -> str:
    """One line for people: prodcat's own messages as they are, others with their kind and a hint."""
    if isinstance(error, ProdcatError):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror}"
    text = " ".join(str(error).split()) or "no detail"
    if isinstance(error, sqlite3.Error):
        return f"the embedding cache database is unusable ({text}); delete the cache folder to rebuild it"
    if isinstance(error, MemoryError):
        return "out of memory"
    return f"{type(error).__name__}: {text} (run with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
