"""``prodcat demo``: generate data, train, evaluate, write a submission, classify a few products."""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Callable

from prodcat.data.io import load_official, write_submission
from prodcat.data.sample import make_demo_dataset
from prodcat.training import evaluate_to_dir, train_and_save

EXAMPLES: tuple[tuple[str, str], ...] = (
    ("Piscine tubulaire ronde 366 x 76 cm avec pompe de filtration", ""),
    ("Manette sans fil pour console, noire", "Compatible PS4 <br>Batterie rechargeable"),
    ("Harry Potter à l'école des sorciers - édition poche", "Livre en bon état, quelques pliures."),
    ("Kinderbett aus Massivholz 70x140 cm mit Lattenrost", ""),
)


def run_demo(out: Path, *, n_train: int = 1500, n_test: int = 400, seed: int = 0, preset: str | None = None,
             echo: Callable[[str], None] = print) -> dict[str, float]:
    """Run the whole pipeline on generated data in ``out``; returns the test metrics."""
    started = time.perf_counter()
    echo(f"1/5 Generating demo data ({n_train:,} train + {n_test:,} test products, official format) in {out}/data")
    paths = make_demo_dataset(out / "data", n_train=n_train, n_test=n_test, seed=seed)

    echo(f"2/5 Loading {paths.x_train.name} + {paths.y_train.name} with images from {paths.images_train}")
    train = load_official(paths.x_train, paths.y_train, paths.images_train)
    for line in train.report.summary().splitlines():
        echo(f"    {line}")

    echo("3/5 Training")
    result = train_and_save(train, out / "model", preset=preset, seed=seed, cache_dir=str(out / "cache"),
                            runs_root=out / "runs")
    for line in result.summary().splitlines():
        echo(f"    {line}")

    echo(f"4/5 Evaluating on the held-out test set ({paths.x_test.name} + {paths.y_test.name})")
    test = load_official(paths.x_test, paths.y_test, paths.images_test)
    evaluation = evaluate_to_dir(result.model, test, out / "evaluation")
    for line in evaluation.summary().splitlines():
        echo(f"    {line}")
    submission = write_submission(test.X.index, result.model.predict(test.X), out / "submission.csv")
    echo(f"    wrote the challenge submission {submission}")

    echo("5/5 Classifying a few products")
    from prodcat.data.io import make_products

    titles, descriptions = zip(*EXAMPLES)
    for (title, _), prediction in zip(EXAMPLES, result.model.explain(make_products(list(titles), list(descriptions)), k=3)):
        shown = ", ".join(f"{code} {name} {p:.0%}" for code, name, p in prediction.top)
        echo(f"    {title[:60]:<60} -> {shown}")
    echo(f"Done in {time.perf_counter() - started:.1f} s. Next, on what the demo made:")
    for line in next_commands(out / "model", paths.x_test):
        echo(f"    {line}")
    return evaluation.evaluation.headline()


def next_commands(model_dir: Path, x_test: Path) -> list[str]:
    """The commands that work on a finished demo folder: classify, the web app (with the test set's
    products and the evaluation report) and the REST API."""
    model, data = shlex.quote(str(model_dir)), shlex.quote(str(x_test))
    return [f"prodcat classify --model {model} \"Drone 4K avec caméra\"",
            f"prodcat app --model {model} --data {data}     # web demo on http://127.0.0.1:8501",
            f"prodcat serve --model {model}     # REST API on http://127.0.0.1:8000 (docs at /docs)"]
