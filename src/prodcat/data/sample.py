"""Embedded demo dataset: a small synthetic catalogue in the official challenge format.

``make_demo_dataset`` writes, under ``out_dir``::

    X_train.csv  Y_train.csv  X_test.csv  Y_test.csv      (Y_test: hidden truth for scoring)
    images/image_train/image_{imageid}_product_{productid}.jpg
    images/image_test/...

The rows are invented (see :mod:`prodcat.data.demo_vocabulary`), never copied from the real
data, but imitate it: French titles with some German and English, HTML and entities in
descriptions, about a third of descriptions empty, some mojibake, the official class
distribution, confusable class families, a few percent of ambiguous texts, and 500x500
product pictures on white backgrounds, about 3% of them missing. For the rows whose text is
uninformative the picture stays faithful to the class, so text + image beats text alone.
The output is deterministic for a seed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from prodcat.data.demo_images import NoiseBank, draw_product
from prodcat.data.demo_text import TextMix, make_text
from prodcat.data.demo_vocabulary import CLASSES
from prodcat.errors import ProdcatError
from prodcat.taxonomy import CODES, official_distribution

MARKER = ".prodcat-demo"
MIN_TRAIN_PER_CLASS = 10
MIN_TEST_PER_CLASS = 3
MISSING_IMAGE_SHARE = 0.03
GRAYSCALE_SHARE = 0.015
JPEG_QUALITY = 85
# Where the picture comes from, by text mode: (own class, a confusable class, any class).
IMAGE_FIDELITY: dict[str, tuple[float, float, float]] = {
    "clear": (0.72, 0.18, 0.10),
    "family": (0.95, 0.04, 0.01),
    "generic": (0.95, 0.04, 0.01),
    "neighbour": (0.95, 0.04, 0.01),
}


@dataclass(frozen=True)
class DemoPaths:
    """Where :func:`make_demo_dataset` wrote each part of the demo dataset."""

    root: Path
    x_train: Path
    y_train: Path
    x_test: Path
    y_test: Path
    images_train: Path
    images_test: Path


def demo_paths(out_dir: str | Path) -> DemoPaths:
    """The demo dataset layout under ``out_dir`` (nothing is created)."""
    root = Path(out_dir)
    return DemoPaths(
        root=root,
        x_train=root / "X_train.csv",
        y_train=root / "Y_train.csv",
        x_test=root / "X_test.csv",
        y_test=root / "Y_test.csv",
        images_train=root / "images" / "image_train",
        images_test=root / "images" / "image_test",
    )


def class_counts(n_rows: int, minimum: int) -> dict[int, int]:
    """Rows per code: the official distribution, at least ``minimum`` each, summing to ``n_rows``.

    Largest-remainder rounding of the official shares over the rows left after the minimums.
    """
    if n_rows < minimum * len(CODES):
        raise ProdcatError(f"demo dataset: {n_rows} rows cannot give {minimum} rows to each of {len(CODES)} classes")
    shares = official_distribution()
    counts = {code: minimum for code in CODES}
    # Give each class its official count where it exceeds the minimum, spread over what is left.
    wanted = np.array([max(shares[code] * n_rows, minimum) for code in CODES])
    extra = wanted - minimum
    spare = n_rows - minimum * len(CODES)
    exact = extra / extra.sum() * spare if extra.sum() > 0 else np.zeros(len(CODES))
    floors = np.floor(exact).astype(int)
    order = np.argsort(-(exact - floors), kind="stable")
    floors[order[: spare - floors.sum()]] += 1
    for code, add in zip(CODES, floors, strict=True):
        counts[code] += int(add)
    return counts


def _labels(n_rows: int, minimum: int, rng: np.random.Generator) -> np.ndarray:
    counts = class_counts(n_rows, minimum)
    labels = np.repeat(np.array(CODES), [counts[code] for code in CODES])
    return labels[rng.permutation(n_rows)]


def _unique_ids(n: int, low: int, high: int, rng: np.random.Generator) -> np.ndarray:
    ids: np.ndarray = np.empty(0, dtype=np.int64)
    while len(ids) < n:
        draw = rng.integers(low, high, size=2 * n, dtype=np.int64)
        ids = pd.unique(np.concatenate([ids, draw]))
    return ids[:n]


def build_demo_table(n_train: int = 1500, n_test: int = 400, seed: int = 0) -> pd.DataFrame:
    """All demo rows with their hidden generation details, one row per product.

    Columns: ``split`` (train/test), ``designation``, ``description`` (``""`` when empty),
    ``productid``, ``imageid``, ``prdtypecode``, ``text_mode`` (clear/family/generic/neighbour),
    ``lang``, ``image_code`` (the class the picture is drawn from), ``has_image``, ``grayscale``.
    The index is the official-style row index (test continues after train).
    """
    if n_train < len(CODES):
        raise ProdcatError(f"demo dataset: n_train must be at least {len(CODES)} (one row per class), got {n_train}")
    if n_test < 1:
        raise ProdcatError(f"demo dataset: n_test must be at least 1, got {n_test}")
    rng = np.random.default_rng([seed, 0])
    train = _labels(n_train, min(MIN_TRAIN_PER_CLASS, n_train // len(CODES)), rng)
    test = _labels(n_test, min(MIN_TEST_PER_CLASS, n_test // len(CODES)), rng)
    codes = np.concatenate([train, test])
    total = len(codes)
    mix = TextMix()
    texts = [make_text(int(code), rng, mix) for code in codes]
    product_ids = _unique_ids(total, 200_000, 4_300_000_000, rng)
    image_ids = _unique_ids(total, 50_000_000, 1_330_000_000, rng)

    image_rng = np.random.default_rng([seed, 1])  # separate stream: pictures never change the CSVs
    image_codes = np.empty(total, dtype=np.int64)
    for i, (code, text) in enumerate(zip(codes, texts, strict=True)):
        own, near, _ = IMAGE_FIDELITY[text.mode]
        draw = image_rng.random()
        if draw < own:
            image_codes[i] = code
        elif draw < own + near:
            neighbours = CLASSES[int(code)].neighbours
            image_codes[i] = neighbours[int(image_rng.integers(len(neighbours)))]
        else:
            image_codes[i] = CODES[int(image_rng.integers(len(CODES)))]
    return pd.DataFrame(
        {
            "split": ["train"] * n_train + ["test"] * n_test,
            "designation": [t.designation for t in texts],
            "description": [t.description for t in texts],
            "productid": product_ids,
            "imageid": image_ids,
            "prdtypecode": codes,
            "text_mode": [t.mode for t in texts],
            "lang": [t.lang for t in texts],
            "image_code": image_codes,
            "has_image": image_rng.random(total) >= MISSING_IMAGE_SHARE,
            "grayscale": image_rng.random(total) < GRAYSCALE_SHARE,
        },
        index=pd.RangeIndex(total),
    )


def image_name(imageid: int, productid: int) -> str:
    """Official image file name of a product."""
    return f"image_{int(imageid)}_product_{int(productid)}.jpg"


def _prepare(paths: DemoPaths) -> None:
    """Create the folders; refuse to overwrite a folder that this module did not write."""
    marker = paths.root / MARKER
    ours = marker.exists()
    for folder in (paths.images_train, paths.images_test):
        stale = list(folder.glob("image_*_product_*.jpg")) if folder.exists() else []
        if stale and not ours:
            raise ProdcatError(f"{folder}: holds images not written by the demo generator; choose an empty folder")
        for file in stale:
            file.unlink()
    for csv in (paths.x_train, paths.y_train, paths.x_test, paths.y_test):
        if csv.exists() and not ours:
            raise ProdcatError(f"{csv}: exists and was not written by the demo generator; choose an empty folder")
    paths.images_train.mkdir(parents=True, exist_ok=True)
    paths.images_test.mkdir(parents=True, exist_ok=True)
    marker.write_text("Synthetic demo dataset written by prodcat.data.sample.make_demo_dataset.\n", encoding="utf-8")


def _write_csvs(table: pd.DataFrame, paths: DemoPaths) -> None:
    columns = ["designation", "description", "productid", "imageid"]
    for split, x_path, y_path in (("train", paths.x_train, paths.y_train), ("test", paths.x_test, paths.y_test)):
        part = table[table["split"] == split]
        x = part[columns].copy()
        x["description"] = x["description"].where(x["description"] != "", None)
        x.to_csv(x_path, encoding="utf-8", lineterminator="\n")
        part[["prdtypecode"]].to_csv(y_path, encoding="utf-8", lineterminator="\n")


def _write_images(table: pd.DataFrame, paths: DemoPaths, *, seed: int, size: int, progress: bool) -> None:
    rows = table[table["has_image"]]
    jobs = list(zip(rows.index, rows["split"], rows["image_code"], rows["grayscale"], rows["imageid"],
                    rows["productid"], strict=True))
    noise = NoiseBank(size, seed)

    def write(job: tuple) -> None:
        index, split, image_code, grayscale, imageid, productid = job
        rng = np.random.default_rng([seed, 2, int(index)])  # one stream per row: order-free, thread-safe
        image = draw_product(int(image_code), rng, size, noise)
        if grayscale:
            image = image.convert("L")
        folder = paths.images_train if split == "train" else paths.images_test
        image.save(folder / image_name(imageid, productid), "JPEG", quality=JPEG_QUALITY)

    # Pillow releases the GIL while encoding JPEG, so two threads use both cores.
    with ThreadPoolExecutor(max_workers=2) as pool, tqdm(total=len(rows), desc="demo images", unit="img",
                                                         disable=not progress) as bar:
        for _ in pool.map(write, jobs):
            bar.update()


def make_demo_dataset(out_dir: str | Path, *, n_train: int = 1500, n_test: int = 400, seed: int = 0,
                      image_size: int = 500, with_images: bool = True, progress: bool = True) -> DemoPaths:
    """Write a synthetic dataset in the official challenge format under ``out_dir``.

    ``n_train``/``n_test`` rows (every class gets at least 10 training rows when
    ``n_train >= 270``), pictures of ``image_size`` pixels unless ``with_images`` is false
    (the image folders are then created empty). Same ``seed``, same files. Refuses to write
    into a folder holding CSVs or images that it did not write itself.
    """
    if image_size < 32:
        raise ProdcatError(f"demo dataset: image_size must be at least 32 pixels, got {image_size}")
    paths = demo_paths(out_dir)
    table = build_demo_table(n_train, n_test, seed)
    _prepare(paths)
    _write_csvs(table, paths)
    if with_images:
        _write_images(table, paths, seed=seed, size=image_size, progress=progress)
    return paths
