"""The text on photos: OCR with a cache, its classifier, and the ``ocr`` component in a preset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("rapidocr_onnxruntime")

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from prodcat.errors import ModelError  # noqa: E402
from prodcat.image import ocr  # noqa: E402
from prodcat.image.ocr import PhotoTextReader  # noqa: E402
from prodcat.models.photo_text import PhotoTextClassifier  # noqa: E402
from prodcat.predictor import ProductClassifier  # noqa: E402

WORDS = {10: "ROMAN", 40: "CONSOLE", 2582: "PISCINE"}


def _photo(path: Path, word: str | None, shade: int = 255) -> str:
    image = Image.new("RGB", (320, 200), (shade, shade, 255))
    if word:
        ImageDraw.Draw(image).text((24, 80), word, fill="black", font=ImageFont.load_default(size=36))
    image.save(path)
    return str(path)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("ocr-photos")
    rows = []
    for code, word in WORDS.items():
        for k in range(4):
            rows.append({"designation": "", "description": "", "code": code,
                         "image_path": _photo(root / f"{code}-{k}.png", word, shade=200 + 15 * k)})
    return {"frame": pd.DataFrame(rows), "root": root, "cache": str(tmp_path_factory.getbasetemp() / "ocr-cache")}


def test_reader_reads_once_then_from_its_cache(photos, tmp_path: Path, monkeypatch) -> None:
    paths = list(photos["frame"]["image_path"])[:2] + [str(tmp_path / "gone.png")]
    reader = PhotoTextReader(tmp_path / "cache")
    assert reader.read(paths) == ["ROMAN", "ROMAN", ""]  # a missing file reads as no text

    def refuse(self, image):
        raise AssertionError("OCR ran again on a cached photo")

    monkeypatch.setattr(PhotoTextReader, "read_one", refuse)
    assert PhotoTextReader(tmp_path / "cache").read(paths[:2]) == ["ROMAN", "ROMAN"]
    assert (tmp_path / "cache" / "ocr" / "index.sqlite").is_file()


def test_reader_reads_again_a_changed_file_and_reads_bytes(tmp_path: Path) -> None:
    path = _photo(tmp_path / "p.png", "CONSOLE")
    reader = PhotoTextReader(tmp_path / "cache")
    assert reader.read([path]) == ["CONSOLE"]
    _photo(tmp_path / "p.png", "PISCINE")
    os.utime(path, ns=(1, 1))  # a new identity even on a coarse-grained clock
    assert reader.read([path]) == ["PISCINE"]
    assert reader.read([Path(path).read_bytes()]) == ["PISCINE"]
    assert reader.read([b"not an image"]) == [""]


def test_a_missing_ocr_package_is_one_clear_error(monkeypatch, tmp_path: Path) -> None:
    import builtins

    real_import = builtins.__import__

    def without_ocr(name, *args, **kwargs):
        if name.startswith("rapidocr_onnxruntime"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_ocr)
    with pytest.raises(ModelError, match=r"rapidocr-onnxruntime.*prodcat\[image\]"):
        ocr._engine()


def test_photo_text_classifier_learns_noisy_words_and_survives_photos_without_text() -> None:
    texts = ["ROMANPOLICIER", "roman policier poche", "CONSOLE", "console de jeux", "", ""]
    y = np.array([10, 10, 40, 40, 10, 40])
    model = PhotoTextClassifier().fit(texts, y)
    assert list(model.predict(["ROMAN POLICIER", "CONSOLEE"])) == [10, 40]
    blank = model.predict_proba([""])
    assert blank.shape == (1, 2) and abs(blank[0, 0] - blank[0, 1]) < 0.3  # no text: no strong opinion
    nothing = PhotoTextClassifier().fit(["", "", ""], [1, 2, 1])  # no photo has text at all
    assert nothing.predict_proba(["", "word"]).shape == (2, 2)


def test_ocr_component_in_a_preset_trains_predicts_and_round_trips(photos, tmp_path: Path) -> None:
    frame = photos["frame"]
    preset = {"name": "photo-words", "backbone": "lite0", "components": [{"name": "words_on_photo", "kind": "ocr"}]}
    model = ProductClassifier(preset, cache_dir=photos["cache"], progress=False).fit(
        frame.drop(columns="code"), frame["code"])
    root = photos["root"]
    new = pd.DataFrame({"designation": "", "description": "",
                        "image_path": [_photo(root / f"new-{c}.png", w, shade=230) for c, w in WORDS.items()]})
    assert list(model.predict(new)) == list(WORDS)
    model.save(tmp_path / "bundle")
    loaded = ProductClassifier.load(tmp_path / "bundle", cache_dir=photos["cache"])
    np.testing.assert_allclose(loaded.predict_proba(new), model.predict_proba(new))
