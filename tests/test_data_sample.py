"""The embedded demo dataset: official file format, realistic text and images, determinism."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd
import py3langid
import pytest
from PIL import Image
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC

from prodcat.data.demo_images import STYLES, NoiseBank, draw_product
from prodcat.data.demo_text import TEXT_MODES, fill_template, to_entities, to_mojibake
from prodcat.data.demo_vocabulary import CLASSES, FAMILIES, GLOBAL, LANGS
from prodcat.data.sample import (
    MARKER,
    DemoPaths,
    build_demo_table,
    class_counts,
    image_name,
    make_demo_dataset,
)
from prodcat.errors import ProdcatError
from prodcat.taxonomy import CODES, OFFICIAL_COUNTS
from prodcat.text.encoding import fix_mojibake, has_mojibake

N_TRAIN, N_TEST, SEED = 200, 50, 3
TAG = re.compile(r"<[a-z]+[^>]*>")
ENTITY = re.compile(r"&(?:[a-zA-Z]+|#\d+);")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return make_demo_dataset(tmp_path_factory.mktemp("demo"), n_train=N_TRAIN, n_test=N_TEST, seed=SEED,
                             progress=False)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    """Default-size rows (no files): enough rows for stable shares."""
    return build_demo_table(seed=0)


def _read_x(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col=0, keep_default_na=False, na_values=[""])


# --------------------------------------------------------------------------- format
def test_layout_and_official_headers(demo: DemoPaths) -> None:
    assert demo.x_train.name == "X_train.csv" and demo.y_test.name == "Y_test.csv"
    assert demo.images_train == demo.root / "images" / "image_train"
    assert demo.images_test == demo.root / "images" / "image_test"
    for x_path in (demo.x_train, demo.x_test):
        assert x_path.read_text(encoding="utf-8").splitlines()[0] == ",designation,description,productid,imageid"
    for y_path in (demo.y_train, demo.y_test):
        assert y_path.read_text(encoding="utf-8").splitlines()[0] == ",prdtypecode"


def test_index_continues_from_train_to_test_and_labels_align(demo: DemoPaths) -> None:
    x_train, x_test = _read_x(demo.x_train), _read_x(demo.x_test)
    y_train, y_test = pd.read_csv(demo.y_train, index_col=0), pd.read_csv(demo.y_test, index_col=0)
    assert list(x_train.index) == list(range(N_TRAIN))
    assert list(x_test.index) == list(range(N_TRAIN, N_TRAIN + N_TEST))
    assert y_train.index.equals(x_train.index) and y_test.index.equals(x_test.index)
    assert set(y_train["prdtypecode"]) == set(CODES)  # every class present in train
    assert set(y_test["prdtypecode"]) <= set(CODES)
    ids = pd.concat([x_train, x_test])
    assert ids["productid"].dtype.kind == "i" and ids["imageid"].dtype.kind == "i"
    assert ids["productid"].is_unique and ids["imageid"].is_unique
    assert x_train["designation"].notna().all() and x_test["designation"].notna().all()


def test_official_loader_reads_the_demo_files(demo: DemoPaths) -> None:
    from prodcat.data.io import load_official

    data = load_official(demo.x_train, demo.y_train, images_dir=demo.images_train)
    assert len(data) == N_TRAIN and data.y is not None
    assert data.report.n_images_found + data.report.n_images_missing == N_TRAIN
    assert data.report.n_images_found > 0.9 * N_TRAIN


def test_same_seed_same_csv_bytes_and_images_do_not_change_csvs(demo: DemoPaths, tmp_path: Path) -> None:
    again = make_demo_dataset(tmp_path / "again", n_train=N_TRAIN, n_test=N_TEST, seed=SEED, with_images=False,
                              progress=False)
    for first, second in zip((demo.x_train, demo.y_train, demo.x_test, demo.y_test),
                             (again.x_train, again.y_train, again.x_test, again.y_test), strict=True):
        assert first.read_bytes() == second.read_bytes()
    assert again.images_train.is_dir() and not any(again.images_train.iterdir())
    other = make_demo_dataset(tmp_path / "other", n_train=N_TRAIN, n_test=N_TEST, seed=SEED + 1, with_images=False,
                              progress=False)
    assert other.x_train.read_bytes() != demo.x_train.read_bytes()


def test_same_rng_same_picture() -> None:
    noise = NoiseBank(64, seed=0)
    first = draw_product(2583, np.random.default_rng(5), 64, noise)
    second = draw_product(2583, np.random.default_rng(5), 64, noise)
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() != draw_product(2583, np.random.default_rng(6), 64, noise).tobytes()


# --------------------------------------------------------------------------- class balance
def test_class_counts_follow_official_distribution_with_a_floor() -> None:
    counts = class_counts(1500, 10)
    assert sum(counts.values()) == 1500 and min(counts.values()) >= 10
    assert max(counts, key=counts.get) == max(OFFICIAL_COUNTS, key=OFFICIAL_COUNTS.get)  # 2583
    share = counts[2583] / 1500
    assert share == pytest.approx(OFFICIAL_COUNTS[2583] / sum(OFFICIAL_COUNTS.values()), abs=0.01)
    small = class_counts(200, 7)
    assert sum(small.values()) == 200 and min(small.values()) == 7
    with pytest.raises(ProdcatError, match="cannot give"):
        class_counts(100, 10)


def test_default_size_gives_every_class_ten_training_rows(table: pd.DataFrame) -> None:
    train = table[table["split"] == "train"]
    assert len(train) == 1500 and (table["split"] == "test").sum() == 400
    assert train["prdtypecode"].value_counts().min() >= 10


# --------------------------------------------------------------------------- text realism
def test_descriptions_empty_html_and_entities_in_catalogue_proportions(table: pd.DataFrame) -> None:
    empty = (table["description"] == "").mean()
    assert 0.28 <= empty <= 0.45
    filled = table.loc[table["description"] != "", "description"]
    with_tags = filled.str.contains(TAG).mean()
    with_entities = filled.str.contains(ENTITY).mean()
    assert 0.35 <= with_tags <= 0.75
    assert 0.08 <= with_entities <= 0.35
    assert filled.str.contains("<br", regex=False).any() and filled.str.contains("&eacute;", regex=False).any()
    assert filled.str.contains('<span class="', regex=False).any()


def test_some_rows_hold_repairable_mojibake(table: pd.DataFrame) -> None:
    broken = [has_mojibake(a) or has_mojibake(b) for a, b in zip(table["designation"], table["description"])]
    assert 0.01 <= np.mean(broken) <= 0.08
    assert to_mojibake("Écran léger à vélo") != "Écran léger à vélo"
    assert fix_mojibake(to_mojibake("Écran léger à vélo, chaussettes bébé")) == "Écran léger à vélo, chaussettes bébé"


def test_titles_are_mostly_french_with_some_german_and_english(table: pd.DataFrame) -> None:
    assert table["lang"].value_counts(normalize=True)["fr"] > 0.75
    text = [html.unescape(TAG.sub(" ", f"{a} {b}")) for a, b in zip(table["designation"], table["description"])]
    detected = pd.Series([py3langid.classify(t)[0] for t in text])
    assert 0.04 <= (detected == "de").mean() <= 0.14
    assert 0.05 <= (detected == "en").mean() <= 0.2
    assert (detected == "fr").mean() >= 0.65


def test_text_modes_mix_and_ambiguous_rows_keep_faithful_images(table: pd.DataFrame) -> None:
    shares = table["text_mode"].value_counts(normalize=True)
    assert set(shares.index) == set(TEXT_MODES)
    assert 0.75 <= shares["clear"] <= 0.9 and 0.02 <= shares["neighbour"] <= 0.08
    faithful = table["image_code"] == table["prdtypecode"]
    ambiguous = table["text_mode"] != "clear"
    assert faithful[ambiguous].mean() > 0.9
    assert 0.6 <= faithful[~ambiguous].mean() < faithful[ambiguous].mean()


def test_text_model_scores_well_but_not_perfectly(table: pd.DataFrame) -> None:
    """A plain TF-IDF linear model lands in the band of the real data (~0.75-0.9 weighted F1)."""
    text = [html.unescape(TAG.sub(" ", f"{a} {b}")) for a, b in zip(table["designation"], table["description"])]
    train = (table["split"] == "train").to_numpy()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    features = vectorizer.fit_transform(text)
    model = LinearSVC().fit(features[train], table["prdtypecode"][train])
    score = f1_score(table["prdtypecode"][~train], model.predict(features[~train]), average="weighted")
    assert 0.72 <= score <= 0.92


def test_every_template_of_every_class_fills(table: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    for code in CODES:
        vocab = CLASSES[code]
        tables = [vocab.templates, FAMILIES[vocab.family].templates]
        for lang in LANGS:
            templates = [t for table_ in tables for t in table_.get(lang, ())] + list(GLOBAL[lang]["generic_title"])
            sentences = list(vocab.sentences.get(lang, ())) + list(FAMILIES[vocab.family].sentences.get(lang, ()))
            for template in templates + sentences + list(GLOBAL[lang]["generic_sentence"]):
                filled = fill_template(template, code, lang, rng)
                assert "{" not in filled and "}" not in filled, (code, lang, template)


def test_entities_and_mojibake_helpers() -> None:
    assert to_entities("L'été & co") == "L&#39;&eacute;t&eacute; &amp; co"
    assert html.unescape(to_entities("Déguisement « fée » à 10°")) == "Déguisement « fée » à 10°"


# --------------------------------------------------------------------------- images
def test_images_exist_for_about_97_percent_and_open_at_the_right_size(demo: DemoPaths) -> None:
    rows = build_demo_table(N_TRAIN, N_TEST, SEED)
    modes = set()
    for _, row in rows.iterrows():
        folder = demo.images_train if row["split"] == "train" else demo.images_test
        path = folder / image_name(row["imageid"], row["productid"])
        assert path.exists() == bool(row["has_image"]), path
        if row["has_image"]:
            with Image.open(path) as image:
                assert image.format == "JPEG" and image.size == (500, 500)
                assert image.mode == ("L" if row["grayscale"] else "RGB")
                modes.add(image.mode)
    assert 0.9 <= rows["has_image"].mean() < 1.0
    n_files = len(list(demo.images_train.iterdir())) + len(list(demo.images_test.iterdir()))
    assert n_files == rows["has_image"].sum()


def test_default_table_has_some_missing_and_grayscale_images(table: pd.DataFrame) -> None:
    assert 0.015 <= 1 - table["has_image"].mean() <= 0.05
    assert 0.003 <= table["grayscale"].mean() <= 0.04


def test_pictures_sit_on_white_with_varying_borders() -> None:
    noise = NoiseBank(200, seed=1)
    rng = np.random.default_rng(1)
    corners, widths = [], []
    for code in CODES:
        for _ in range(4):
            pixels = np.asarray(draw_product(code, rng, 200, noise).convert("L"), dtype=np.int16)
            corners.append(pixels[:4, :4].mean())
            content = np.argwhere(pixels < 235)
            widths.append(content[:, 1].max() - content[:, 1].min() if len(content) else 0)
    corners_arr = np.asarray(corners)
    assert (corners_arr > 240).mean() > 0.6  # white background most of the time
    assert np.min(widths) < 120 and np.max(widths) >= 190  # small objects and frame-filling ones
    assert set(STYLES) == set(CODES)


# --------------------------------------------------------------------------- safety and errors
def test_rewrites_its_own_folder_but_refuses_foreign_ones(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    first = make_demo_dataset(root, n_train=30, n_test=5, seed=0, image_size=64, progress=False)
    assert (root / MARKER).exists() and any(first.images_train.iterdir())
    make_demo_dataset(root, n_train=30, n_test=5, seed=1, with_images=False, progress=False)
    assert not any(first.images_train.iterdir())  # stale pictures of seed 0 are gone

    foreign = tmp_path / "real"
    (foreign / "images" / "image_train").mkdir(parents=True)
    (foreign / "images" / "image_train" / "image_1_product_2.jpg").write_bytes(b"not ours")
    with pytest.raises(ProdcatError, match="not written by the demo generator"):
        make_demo_dataset(foreign, n_train=30, n_test=5, progress=False)
    assert (foreign / "images" / "image_train" / "image_1_product_2.jpg").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"n_train": 10}, "n_train must be at least 27"), ({"n_test": 0}, "n_test must be at least 1"),
     ({"image_size": 8}, "image_size must be at least 32")],
)
def test_bad_sizes_are_refused(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ProdcatError, match=message):
        make_demo_dataset(tmp_path, progress=False, **kwargs)
