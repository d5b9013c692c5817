"""Decode product photos and prepare them for a CNN: RGB, white-border crop, square pad, resize.

Kept free of heavy imports (numpy and Pillow only): decoding worker processes import this module.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from prodcat.errors import DataError

# Bump whenever the pixels that `preprocess` returns change: it is part of the feature-cache key.
PREPROCESS_VERSION = "1"

DEFAULT_TOLERANCE = 16
"""A pixel is near-white when every channel is >= 255 - tolerance (JPEG noise on white is ~5)."""

DEFAULT_MAX_PIXELS = 40_000_000
"""Refuse images with more pixels than this (decompression bombs); product photos are ~500x500."""

WHITE = (255, 255, 255)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TOLERANCE",
    "ImageError",
    "PREPROCESS_VERSION",
    "crop_preview",
    "crop_white_border",
    "decode_batch",
    "load_rgb",
    "preprocess",
    "white_border_box",
    "white_ratio",
]


IN_MEMORY = "<image bytes>"
"""The name errors give an image decoded from memory rather than a file."""


class ImageError(DataError):
    """An image file cannot be used: missing, empty, not an image, corrupt or too large."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(reason, path=path)
        self.reason = reason


def load_rgb(
    path: str | os.PathLike[str] | bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode an image file into an RGB image.

    Grayscale, CMYK, palette, 16-bit and alpha images become RGB (transparency is composited on
    white); EXIF orientation is applied. ``draft=(w, h)`` lets the JPEG decoder downscale by 1/2,
    1/4 or 1/8 while decoding, never below ``(w, h)``: much faster than decoding at full size.
    ``path`` may also be the encoded image itself (``bytes``, e.g. an upload): it is decoded
    from memory. Raises :class:`ImageError` naming the file and the problem.
    """
    if isinstance(path, (bytes, bytearray)):
        source: object = io.BytesIO(path)
        size, path = len(path), IN_MEMORY
    else:
        source = path = os.fspath(path)
        try:
            size = os.stat(path).st_size
        except FileNotFoundError:
            raise ImageError(path, "missing file") from None
        except OSError as exc:
            raise ImageError(path, f"cannot read file: {exc.strerror or exc}") from None
    if size == 0:
        raise ImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise ImageError(
                        path, f"image too large: {width}x{height} pixels (limit {max_pixels:,})"
                    )
                if draft is not None and img.format == "JPEG":
                    img.draft("RGB", draft)
                img.load()
                draft_scale = img.width / width
                ImageOps.exif_transpose(img, in_place=True)
                rgb = _to_rgb(img)
                rgb.info["original_size"] = (width, height)  # as stored, before EXIF rotation
                rgb.info["draft_scale"] = draft_scale
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(path, f"image too large (decompression bomb): {exc}") from None
    except UnidentifiedImageError:
        raise ImageError(path, "not an image (unrecognised format)") from None
    except FileNotFoundError:  # deleted since the stat above
        raise ImageError(path, "missing file") from None
    except (PermissionError, IsADirectoryError) as exc:
        raise ImageError(path, f"cannot read file: {exc.strerror or exc}") from None
    except OSError as exc:  # truncated data, broken codec stream
        raise ImageError(path, f"corrupt or truncated image: {exc}") from None
    except (SyntaxError, ValueError, TypeError, IndexError, EOFError, MemoryError) as exc:
        raise ImageError(path, f"corrupt image: {type(exc).__name__}: {exc}") from None
    if rgb.width == 0 or rgb.height == 0:
        raise ImageError(path, "image has no pixels")
    return rgb


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, putting transparent pixels on white."""
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        img = _high_depth_to_l(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if has_alpha:
        rgba = img.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, WHITE)
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return img if img.mode == "RGB" else img.convert("RGB")


def _high_depth_to_l(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale to 8-bit."""
    arr = np.asarray(img, dtype=np.float64)
    peak = float(arr.max()) if arr.size else 0.0
    if img.mode == "F":
        arr = arr * 255.0 if peak <= 1.0 else arr
    elif img.mode.startswith("I;16") or peak > 255:
        arr = arr / 257.0
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), mode="L")


def _content_mask(img: Image.Image, tolerance: int) -> np.ndarray:
    """Boolean HxW mask of pixels that are NOT near-white."""
    arr = np.asarray(img.convert("RGB") if img.mode != "RGB" else img)
    darkest = np.minimum(np.minimum(arr[..., 0], arr[..., 1]), arr[..., 2])  # faster than min(axis=2)
    return darkest < 255 - int(tolerance)


def white_border_box(img: Image.Image, *, tolerance: int = DEFAULT_TOLERANCE) -> tuple[int, int, int, int]:
    """Box ``(left, top, right, bottom)`` of the content inside uniform near-white borders.

    An all-white image gives the full box.
    """
    if not 0 <= tolerance <= 255:
        raise ValueError(f"tolerance must be in [0, 255], got {tolerance}")
    mask = _content_mask(img, tolerance)
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0, img.width, img.height)
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


def crop_white_border(img: Image.Image, *, tolerance: int = DEFAULT_TOLERANCE) -> Image.Image:
    """The image without its uniform near-white borders (unchanged when there are none)."""
    box = white_border_box(img, tolerance=tolerance)
    return img if box == (0, 0, img.width, img.height) else img.crop(box)


def white_ratio(img: Image.Image, *, tolerance: int = DEFAULT_TOLERANCE) -> float:
    """Share of near-white pixels in the image (the seeds' *taux de blanc*)."""
    if not 0 <= tolerance <= 255:
        raise ValueError(f"tolerance must be in [0, 255], got {tolerance}")
    mask = _content_mask(img, tolerance)
    return float(1.0 - mask.mean()) if mask.size else 0.0


def fit_square(img: Image.Image, size: int) -> Image.Image:
    """Resize to fit a ``size`` x ``size`` square, keeping the aspect ratio, padded on white."""
    w, h = img.size
    scale = size / max(w, h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (new_w, new_h) != (w, h):
        factor = int(max(w, h) / size)
        if factor >= 2:  # box-filter integer reduction first: fast, and anti-aliases
            img = img.reduce(factor)
        img = img.resize((new_w, new_h), Image.Resampling.BILINEAR)
    if (new_w, new_h) == (size, size):
        return img
    canvas = Image.new("RGB", (size, size), WHITE)
    canvas.paste(img, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def _crop_at_full_detail(
    path: str | bytes, img: Image.Image, box: tuple[int, int, int, int], size: int, max_pixels: int
) -> Image.Image:
    """Crop ``box`` of a draft-decoded image, decoding again at a finer scale when the crop is small.

    A draft decode reduces resolution; when the content is a small object in a wide white border,
    its crop would then be upscaled. Decode again just fine enough to give ``size`` pixels.
    """
    full_w, full_h = img.info.get("original_size", img.size)
    scale = img.info.get("draft_scale", 1.0)
    longest = max(box[2] - box[0], box[3] - box[1])
    if scale >= 1.0 or longest >= size:
        return img.crop(box)
    # content longest side at full resolution is longest / scale; ask for `size` pixels of it
    needed = min(1.0, size * scale / longest)  # fraction of full resolution to decode
    finer = load_rgb(
        path,
        max_pixels=max_pixels,
        draft=(math.ceil(full_w * needed), math.ceil(full_h * needed)),
    )
    if finer.width <= img.width:
        return img.crop(box)
    k = finer.width / img.width
    fine_box = (
        math.floor(box[0] * k),
        math.floor(box[1] * k),
        min(finer.width, math.ceil(box[2] * k)),
        min(finer.height, math.ceil(box[3] * k)),
    )
    return finer.crop(fine_box)


def preprocess(
    path: str | os.PathLike[str] | bytes,
    size: int = 224,
    *,
    crop: bool = True,
    tolerance: int = DEFAULT_TOLERANCE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Decode, crop white borders, pad to a square on white and resize: uint8 array (size, size, 3).

    Large JPEGs are decoded at a reduced scale (JPEG draft mode) that still leaves ``size`` pixels
    for content filling half the side; a smaller object in a wide border is decoded again finer.
    Raises :class:`ImageError` for unusable files.
    """
    if not isinstance(path, (bytes, bytearray)):
        path = os.fspath(path)
    img = load_rgb(path, max_pixels=max_pixels, draft=(2 * size, 2 * size))
    if crop:
        box = white_border_box(img, tolerance=tolerance)
        if box != (0, 0, img.width, img.height):
            img = _crop_at_full_detail(path, img, box, size, max_pixels)
    return np.asarray(fit_square(img, size))


def crop_preview(
    src: str | os.PathLike[str], out_png: str | os.PathLike[str], size: int = 224
) -> Path:
    """Write a PNG showing the image before (detected box in red) and after preprocessing."""
    if size < 16:
        raise DataError(f"preview size must be at least 16 pixels, got {size}")
    original = load_rgb(src)
    box = white_border_box(original)
    before = fit_square(original, size)
    scale = size / max(original.size)
    offset_x = (size - round(original.width * scale)) // 2
    offset_y = (size - round(original.height * scale)) // 2
    draw = ImageDraw.Draw(before)
    left, top = offset_x + box[0] * scale, offset_y + box[1] * scale
    # a box thinner than a pixel once scaled (e.g. a 30000x1 strip) is drawn one pixel wide
    right, bottom = max(left, offset_x + box[2] * scale - 1), max(top, offset_y + box[3] * scale - 1)
    draw.rectangle((left, top, right, bottom), outline=(220, 0, 0), width=2)
    after = Image.fromarray(preprocess(src, size))
    gap, label_h = 8, 18
    sheet = Image.new("RGB", (2 * size + gap, size + label_h), (235, 235, 235))
    sheet.paste(before, (0, label_h))
    sheet.paste(after, (size + gap, label_h))
    draw = ImageDraw.Draw(sheet)
    ratio = white_ratio(original)
    draw.text((4, 3), f"before {original.width}x{original.height}, {ratio:.0%} white", fill=(0, 0, 0))
    draw.text((size + gap + 4, 3), f"after {size}x{size}", fill=(0, 0, 0))
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, format="PNG")
    return out


def decode_batch(
    paths: list[str], size: int, crop: bool = True
) -> tuple[np.ndarray, list[tuple[int, str, bool]]]:
    """Preprocess several files (run in decoding worker processes).

    Returns the stacked uint8 images of the files that worked, in order, and for the others
    ``(position, reason, lasting)``; ``lasting`` is False for problems that may go away by
    themselves (missing file, unreadable file, unexpected error), True for bad image content.
    """
    images: list[np.ndarray] = []
    failures: list[tuple[int, str, bool]] = []
    for position, path in enumerate(paths):
        try:
            images.append(preprocess(path, size, crop=crop))
        except ImageError as exc:
            lasting = not (exc.reason == "missing file" or exc.reason.startswith("cannot read file"))
            failures.append((position, exc.reason, lasting))
        except Exception as exc:  # a decoder bug must not lose the rest of the batch
            failures.append((position, f"unexpected error: {type(exc).__name__}: {exc}", False))
    stacked = np.stack(images) if images else np.zeros((0, size, size, 3), dtype=np.uint8)
    return stacked, failures
