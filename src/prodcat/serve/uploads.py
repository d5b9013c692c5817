"""Check uploaded product photos in memory before they reach the model.

Uploads are never written to disk: the image embedding cache is keyed by file identity, so
temporary files would make it grow forever. These checks turn every bad upload into an
:class:`UploadError` carrying the HTTP status to answer (413 too large, 415 not an image,
422 corrupt or badly encoded), so bad input never becomes a server error.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from prodcat.errors import DataError

DEFAULT_MAX_IMAGE_BYTES = 10 * 2**20
"""Largest accepted photo, encoded (product photos are ~50 kB JPEGs)."""

DEFAULT_MAX_UPLOAD_PIXELS = 16_000_000
"""Largest accepted upload in pixels (a 4000x4000 photo). Decoding cost grows with pixels, not
bytes: a 38 KB PNG of 6300x6300 (under the 40 MP file limit) cost 1.4 s and 170 MB."""

DRAFT_SIZE = (256, 256)
"""JPEGs are test-decoded at reduced size (the backbone sees at most 260 pixels)."""

_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.+-]+)*;base64,", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


class UploadError(DataError):
    """An uploaded image cannot be used; ``status`` is the HTTP status to answer with."""

    def __init__(self, problem: str, *, status: int = 422, field: str = "image") -> None:
        super().__init__(f"{field}: {problem}")
        self.status = status
        self.field = field
        self.reason = problem


@dataclass(frozen=True)
class CheckedImage:
    """An upload that decodes: its bytes, format and size in pixels."""

    data: bytes
    format: str
    width: int
    height: int


def _megabytes(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 1024:.0f} KiB"


def decode_base64_image(text: str, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES, field: str = "image_base64") -> bytes:
    """Bytes of a base64 image (standard or URL-safe alphabet, ``data:`` URL prefix allowed).

    Refuses text whose decoded size would exceed ``max_bytes`` before decoding it (413), and
    text that is not base64 (422).
    """
    payload = _DATA_URL.sub("", text.strip(), count=1)
    if any(c in payload for c in " \n\r\t"):  # line-wrapped base64 (e.g. the `base64` tool's output)
        payload = _WHITESPACE.sub("", payload)
    if not payload:
        raise UploadError("empty (no base64 data)", status=422, field=field)
    estimated = len(payload) * 3 // 4
    if estimated > max_bytes + 2:
        raise UploadError(f"image is about {_megabytes(estimated)}, over the {_megabytes(max_bytes)} limit",
                          status=413, field=field)
    altchars = b"-_" if ("-" in payload or "_" in payload) else None
    padded = payload + "=" * (-len(payload) % 4)
    try:
        data = base64.b64decode(padded.encode("ascii"), altchars=altchars, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise UploadError("not valid base64 text", status=422, field=field) from None
    if len(data) > max_bytes:
        raise UploadError(f"image is {_megabytes(len(data))}, over the {_megabytes(max_bytes)} limit",
                          status=413, field=field)
    return data


def check_image(data: bytes, *, max_bytes: int = DEFAULT_MAX_IMAGE_BYTES, max_pixels: int = DEFAULT_MAX_UPLOAD_PIXELS,
                field: str = "image") -> CheckedImage:
    """Decode ``data`` in memory to prove it is a usable image; raise :class:`UploadError` if not.

    Guards against decompression bombs (``max_pixels``), non-images (415) and truncated or
    corrupt files (422). JPEGs are decoded at reduced size, so the check costs about a
    millisecond for a 500x500 photo.
    """
    if not data:
        raise UploadError("empty file (0 bytes)", status=422, field=field)
    if len(data) > max_bytes:
        raise UploadError(f"image is {_megabytes(len(data))}, over the {_megabytes(max_bytes)} limit",
                          status=413, field=field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                width, height = img.size
                if width * height > max_pixels:
                    raise UploadError(f"image is {width}x{height} pixels, over the limit of {max_pixels:,} pixels",
                                      status=413, field=field)
                if width == 0 or height == 0:
                    raise UploadError("image has no pixels", status=422, field=field)
                kind = img.format or "unknown"
                if kind == "JPEG":
                    img.draft("RGB", DRAFT_SIZE)
                img.load()
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(f"image is too large to decode safely (over {max_pixels:,} pixels)", status=413,
                          field=field) from None
    except UnidentifiedImageError:
        raise UploadError("not an image (send a JPEG, PNG, WebP, GIF, BMP or TIFF photo)", status=415,
                          field=field) from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, EOFError, MemoryError) as exc:
        raise UploadError(f"corrupt or truncated image ({type(exc).__name__}: {exc})", status=422,
                          field=field) from None
    return CheckedImage(data=data, format=kind, width=width, height=height)
