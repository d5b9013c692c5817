"""Decoding and preprocessing of product photos: modes, white-border crop, padding, bad files."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prodcat.errors import DataError
from prodcat.image.io import (
    ImageError,
    crop_preview,
    crop_white_border,
    decode_batch,
    load_rgb,
    preprocess,
    white_border_box,
    white_ratio,
)


def bordered(size=(200, 120), box=(30, 20, 150, 100), colour=(200, 30, 30), background=(255, 255, 255)):
    """An image of ``background`` with a solid rectangle filling ``box`` (exclusive right/bottom)."""
    arr = np.empty((size[1], size[0], 3), dtype=np.uint8)
    arr[:] = background
    arr[box[1] : box[3], box[0] : box[2]] = colour
    return Image.fromarray(arr)


def huge_png(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A tiny file whose header announces a huge image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    return path


def test_white_border_box_finds_the_content():
    img = bordered()
    assert white_border_box(img) == (30, 20, 150, 100)
    assert crop_white_border(img).size == (120, 80)


def test_no_border_and_all_white():
    full = bordered(box=(0, 0, 200, 120))
    assert white_border_box(full) == (0, 0, 200, 120)
    assert crop_white_border(full) is full
    blank = Image.new("RGB", (50, 40), "white")
    assert white_border_box(blank) == (0, 0, 50, 40)


def test_tolerance_decides_what_counts_as_white():
    # off-white (247) border around a mid-grey block, with JPEG-like noise
    img = bordered(box=(10, 10, 60, 50), colour=(120, 120, 120), background=(247, 247, 247), size=(80, 70))
    assert white_border_box(img, tolerance=16) == (10, 10, 60, 50)
    assert white_border_box(img, tolerance=4) == (0, 0, 80, 70)  # 247 is not white at tolerance 4
    with pytest.raises(ValueError):
        white_border_box(img, tolerance=300)


def test_a_yellow_pixel_is_not_white():
    # min over channels, not luminance: (255, 255, 0) must count as content
    img = bordered(box=(5, 5, 6, 6), colour=(255, 255, 0), size=(20, 20))
    assert white_border_box(img) == (5, 5, 6, 6)


def test_white_ratio():
    img = bordered(size=(100, 100), box=(0, 0, 50, 50))
    assert white_ratio(img) == pytest.approx(0.75)
    assert white_ratio(Image.new("RGB", (10, 10), "white")) == 1.0


@pytest.mark.parametrize(
    ("mode", "suffix"),
    [("L", ".png"), ("CMYK", ".jpg"), ("P", ".png"), ("RGBA", ".png"), ("LA", ".png"), ("I;16", ".png"), ("1", ".png")],
)
def test_load_rgb_converts_every_mode(tmp_path, mode, suffix):
    rgb = bordered(size=(64, 48), box=(8, 8, 40, 40), colour=(0, 0, 0))
    if mode == "I;16":  # real 16-bit grayscale spans 0..65535
        img = Image.fromarray(np.asarray(rgb.convert("L")).astype(np.uint16) * 257)
    else:
        img = rgb.convert(mode)
    path = tmp_path / f"img{suffix}"
    img.save(path)
    out = load_rgb(path)
    assert out.mode == "RGB" and out.size == (64, 48)
    arr = np.asarray(out)
    assert arr[20, 20].max() < 40  # the black block stays dark
    assert arr[2, 2].min() > 215  # the white border stays white (CMYK JPEG is lossy)
    assert white_border_box(out) == pytest.approx((8, 8, 40, 40), abs=1)


def test_transparency_goes_on_white(tmp_path):
    arr = np.zeros((30, 30, 4), dtype=np.uint8)
    arr[10:20, 10:20] = (0, 0, 255, 255)  # opaque blue square, the rest transparent black
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "a.png")
    out = np.asarray(load_rgb(tmp_path / "a.png"))
    assert tuple(out[0, 0]) == (255, 255, 255)
    assert tuple(out[15, 15]) == (0, 0, 255)
    # palette with a transparent index
    pal = Image.fromarray(arr[..., :3]).convert("P")
    pal.info["transparency"] = pal.getpixel((0, 0))
    pal.save(tmp_path / "p.png", transparency=pal.getpixel((0, 0)))
    assert tuple(np.asarray(load_rgb(tmp_path / "p.png"))[0, 0]) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path):
    img = bordered(size=(80, 40), box=(0, 0, 40, 40), colour=(0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    img.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").size == (40, 80)


def test_preprocess_crops_pads_on_white_and_resizes(tmp_path):
    # a wide red band in a big white border: cropped, then padded top and bottom on white
    bordered(size=(500, 500), box=(100, 200, 400, 300), colour=(220, 0, 0)).save(tmp_path / "a.png")
    out = preprocess(tmp_path / "a.png", 224)
    assert out.shape == (224, 224, 3) and out.dtype == np.uint8
    assert np.all(out[112, 5:-5] == (220, 0, 0))  # the band now spans the full width
    assert np.all(out[:30] == 255) and np.all(out[-30:] == 255)  # padding is white
    band_rows = np.flatnonzero((out[:, 112, 1] < 100))
    assert 70 <= len(band_rows) <= 80  # aspect ratio 3:1 kept: 224 / 3 ~ 75 rows
    uncropped = preprocess(tmp_path / "a.png", 224, crop=False)
    assert np.all(uncropped[112, :40] == 255)  # without crop the white margin stays


def test_draft_decodes_large_jpegs_small_but_keeps_detail_for_small_objects(tmp_path):
    path = tmp_path / "big.jpg"
    bordered(size=(2000, 2000), box=(0, 0, 2000, 2000), colour=(10, 120, 10)).save(path, quality=90)
    assert load_rgb(path, draft=(448, 448)).size == (500, 500)  # 1/4 scale, never below the request
    assert load_rgb(path).size == (2000, 2000)
    # a 240 px checkerboard in a 2000 px white page: at 1/4 scale it would be 60 px wide; the
    # crop decodes again finer, so its 8 px squares are still resolved after resizing to 224
    board = (np.indices((240, 240)).sum(axis=0) // 8 % 2 * 255).astype(np.uint8)
    page = np.full((2000, 2000, 3), 255, dtype=np.uint8)
    page[880:1120, 880:1120] = board[..., None]
    Image.fromarray(page).save(tmp_path / "small.jpg", quality=95)
    out = preprocess(tmp_path / "small.jpg", 224).astype(int)
    row = out[112, 20:200, 0]
    assert row.max() - row.min() > 150  # black and white squares, not a grey blur


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: None, "missing file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_text("this is not a picture"), "not an image"),
        (lambda p: huge_png(p), "too large"),
        (lambda p: p.mkdir(), "cannot read file"),
    ],
)
def test_bad_files_raise_image_error_naming_the_file(tmp_path, make, reason):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageError) as err:
        preprocess(path)
    assert reason in err.value.reason
    assert err.value.path == str(path)
    assert isinstance(err.value, DataError) and str(path) in str(err.value)


def test_truncated_jpeg_and_pixel_limit(tmp_path):
    good = tmp_path / "good.jpg"
    noise = np.random.default_rng(0).integers(0, 256, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good, quality=90)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_rgb(cut)
    with pytest.raises(ImageError, match="too large"):
        load_rgb(good, max_pixels=300 * 300 - 1)
    assert load_rgb(good, max_pixels=300 * 300).size == (300, 300)


def test_decode_batch_keeps_good_images_and_reports_the_rest(tmp_path):
    bordered().save(tmp_path / "ok.png")
    (tmp_path / "text.jpg").write_text("nope")
    images, failures = decode_batch([str(tmp_path / "ok.png"), str(tmp_path / "text.jpg"), str(tmp_path / "gone.jpg")], 32)
    assert images.shape == (1, 32, 32, 3)
    assert [(pos, lasting) for pos, _, lasting in failures] == [(1, True), (2, False)]  # a missing file may come back


def test_crop_preview_writes_before_and_after(tmp_path):
    bordered(size=(300, 300), box=(100, 100, 200, 200)).save(tmp_path / "a.jpg")
    out = crop_preview(tmp_path / "a.jpg", tmp_path / "sub" / "preview.png", size=128)
    sheet = Image.open(out)
    assert sheet.format == "PNG" and sheet.width == 2 * 128 + 8 and sheet.height > 128
    after = np.asarray(sheet.convert("RGB"))[-64, 128 + 8 + 64]
    assert after[0] > 150 and after[1] < 80  # the red square fills the "after" panel
