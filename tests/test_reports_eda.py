"""Data exploration page: eda.html with class, text, duplicate and image sections."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from prodcat.errors import DataError
from prodcat.reports.eda import mojibake_flags, summarise_images, word_counts, write_eda
from prodcat.taxonomy import CODES, official_distribution



def assert_self_contained(html: str) -> None:
    assert 'src="http' not in html and 'href="http' not in html and "url(http" not in html
    assert "<link" not in html and "<script" not in html and "@import" not in html


def product_image(path: Path, margin: int) -> str:
    """A 100x100 JPEG: a dark square inside a white border ``margin`` pixels wide."""
    pixels = np.full((100, 100, 3), 255, np.uint8)
    pixels[margin:100 - margin, margin:100 - margin] = (30, 60, 90)
    Image.fromarray(pixels).save(path, format="JPEG", quality=95)
    return str(path)


@pytest.fixture()
def frame(tmp_path):
    half_white = product_image(tmp_path / "a.jpg", 15)  # 1 - 70*70/100^2 = 51% white
    no_white = product_image(tmp_path / "b.jpg", 0)
    X = pd.DataFrame({
        "designation": ["Chaise en bois massif", "Chaise en bois massif", "Livre de cuisine française",
                        "The quick brown fox jumps", "Poupée Ã©lÃ©gante pour enfant", "CHAISE en bois  massif",
                        "Jeu de société pour toute la famille", "Figurine Star Wars collector"],
        "description": ["Belle <b>chaise</b> &eacute;l&eacute;gante", "", "", "An English description of a book",
                        "", "Une table très jolie", "Der schnelle braune Fuchs springt über den faulen Hund", ""],
        "productid": range(8),
        "imageid": range(100, 108),
        "image_path": [half_white, no_white, None, str(tmp_path / "missing.jpg"), half_white, None, no_white, None],
    })
    y = pd.Series([1560, 2060, 2705, 2705, 1280, 1560, 1180, 1140])
    return X, y


def test_eda_sections_and_numbers(tmp_path, frame):
    X, y = frame
    other = pd.DataFrame({"designation": ["chaise EN bois   massif", "Autre chose"], "imageid": [100, 999]})
    path = write_eda(tmp_path / "eda", X, y, X_other=other, progress=False)
    assert path == tmp_path / "eda" / "eda.html"
    html = path.read_text(encoding="utf-8")
    for section in ("Classes", "Text lengths", "Empty descriptions", "Languages", "HTML and mojibake", "Duplicates",
                    "Images", "White ratio (taux de blanc)", "Sample images per class"):
        assert section in html
    for png in ("class_distribution.png", "designation_words.png", "description_words.png", "languages.png",
                "white_ratio.png", "sample_images.png"):
        assert (tmp_path / "eda" / png).read_bytes()[:4] == b"\x89PNG"
    assert "4 of 8 products (50.0%) have an empty description." in html
    assert "1 (12.5%)" in html  # one description with HTML, one title with mojibake
    assert "2 products (25.0%) share their exact title" in html
    assert "3 products (37.5%) once case and spacing are ignored" in html
    assert "1 duplicated titles carry more than one product type code" in html
    assert "1 of 2 products of the other set (50.0%) have a title" in html
    assert "1 products of the other set reuse an imageid" in html
    # 5 products have an image path; the missing file is counted as unreadable
    assert "Sample: 5 images drawn at random (seed 0) from the 5 products with an image path" in html
    assert "4 decoded, 1 unreadable" in html and "missing file" in html
    assert "500 x 500" not in html and "100 x 100" in html
    assert re.search(r"fr: \d+\.\d%", html) and "en:" in html
    assert_self_contained(html)


def test_eda_without_labels_or_images(tmp_path, frame):
    X, _ = frame
    html = write_eda(tmp_path, X.drop(columns=["image_path"]), progress=False).read_text(encoding="utf-8")
    assert "no labels" in html and 'id="classes"' not in html
    assert "No image paths were given" in html
    assert not (tmp_path / "white_ratio.png").exists()
    assert_self_contained(html)


def test_eda_image_sample_is_seeded_and_capped(frame):
    X, _ = frame
    first = summarise_images(X["image_path"], sample_size=3, seed=4)
    again = summarise_images(X["image_path"], sample_size=3, seed=4)
    assert len(first.sample) == 3 and first.n_with_path == 5
    assert first.sample["row"].tolist() == again.sample["row"].tolist()
    ok = first.sample[first.sample["error"] == ""]
    assert set(np.round(ok["white_ratio"], 2)) <= {0.51, 0.0}


def test_word_counts_and_mojibake_flags():
    texts = pd.Series(["deux mots", "<p>un</p><br/>deux trois", "", "CafÃ© crÃ¨me", "Café crème"])
    assert word_counts(texts).tolist() == [2, 3, 0, 2, 2]
    assert mojibake_flags(texts).tolist() == [False, False, False, True, False]


def test_eda_refuses_bad_input(tmp_path, frame):
    X, y = frame
    with pytest.raises(DataError, match="designation"):
        write_eda(tmp_path, X.drop(columns=["designation"]), progress=False)
    with pytest.raises(DataError, match="7 labels but X has 8 rows"):
        write_eda(tmp_path, X, y[:7], progress=False)


@pytest.mark.shared
def test_eda_on_the_real_sample(tmp_path, shared_data):
    folder = shared_data / "rakuten_sample"
    X = pd.read_csv(folder / "X_train_sample.csv", index_col=0)
    y = pd.read_csv(folder / "Y_train_sample.csv", index_col=0)["prdtypecode"]
    X["description"] = X["description"].fillna("")
    paths = [folder / "image_train" / f"image_{i}_product_{p}.jpg" for i, p in zip(X["imageid"], X["productid"])]
    X["image_path"] = [str(p) if p.exists() else None for p in paths]
    html = write_eda(tmp_path, X, y, image_sample=50, progress=False).read_text(encoding="utf-8")
    empty = int((X["description"].str.strip() == "").sum())
    assert f"{empty} of {len(X)} products" in html
    n_images = int(X["image_path"].notna().sum())
    assert f"Sample: {n_images} images drawn at random" in html and "500 x 500" in html
    assert "27 classes" in html

