"""A small builder for self-contained HTML pages: inline CSS, images embedded as data URIs.

The pages it writes open offline: no external fonts, scripts, stylesheets or images.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from prodcat.data.missing import is_missing

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0 auto; max-width: 1280px; padding: 16px 28px 48px; color: #1f2328; line-height: 1.45; }
h1 { font-size: 1.7em; margin: 0.4em 0 0.2em; }
h2 { font-size: 1.3em; margin-top: 1.8em; border-bottom: 2px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 1.05em; margin-top: 1.2em; }
nav { font-size: 0.9em; margin: 0.4em 0 1em; }
nav a { margin-right: 1em; color: #0969da; text-decoration: none; }
p.note { color: #57606a; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.6em 0 1em; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.weak td { background: #ffebe9; }
tr.best td { background: #dafbe1; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 0.8em 0; }
.card { border: 1px solid #d0d7de; border-radius: 8px; padding: 10px 16px; min-width: 140px; background: #f6f8fa; }
.card .value { font-size: 1.6em; font-weight: 600; }
.card .label { color: #57606a; font-size: 0.85em; }
figure { margin: 0.8em 0 1.2em; }
figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
.row { display: flex; flex-wrap: wrap; gap: 16px; }
.row figure { margin: 0.4em 0; }
figcaption { color: #57606a; font-size: 0.85em; }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 12px; }
.tile { border: 1px solid #d0d7de; border-radius: 6px; padding: 8px; font-size: 0.82em; overflow-wrap: anywhere; }
.tile img, .tile .placeholder { display: block; width: 100%; aspect-ratio: 1 / 1; object-fit: contain; background: #fff; }
.tile .placeholder { display: flex; align-items: center; justify-content: center; background: #eaeef2; color: #57606a; }
.tile .title { font-weight: 600; margin: 4px 0; max-height: 4.5em; overflow: hidden; }
.tile .true { color: #1a7f37; }
.tile .pred { color: #cf222e; }
ul.findings li { margin: 2px 0; }
"""


def escape(value: object) -> str:
    """HTML-escape ``str(value)``."""
    return html.escape(str(value), quote=True)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """A ``data:`` URI holding ``data`` (base64)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_data_uri(path: str | Path | None, size: int = 160) -> str | None:
    """A JPEG thumbnail of the image at ``path`` as a data URI; ``None`` if missing or unreadable."""
    if is_missing(path):
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # fast JPEG downscale while decoding
            img = img.convert("RGB")
            img.thumbnail((size, size))
            buffer = io.BytesIO()
            img.save(buffer, format="JPEG", quality=82)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return data_uri(buffer.getvalue(), "image/jpeg")


def _format_cell(value: object, formatter: Callable[[object], str] | str | None) -> str:
    if formatter is None:
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)
    if callable(formatter):
        return formatter(value)
    return format(value, formatter)


class Page:
    """An HTML page assembled section by section, rendered to one self-contained file."""

    def __init__(self, title: str, subtitle: str | None = None) -> None:
        self.title = title
        self.subtitle = subtitle
        self._parts: list[str] = []
        self._toc: list[tuple[str, str]] = []

    def section(self, title: str, anchor: str | None = None) -> Page:
        """Start a section (``<h2>`` listed in the table of contents)."""
        anchor = anchor or "s" + str(len(self._toc) + 1)
        self._toc.append((anchor, title))
        self._parts.append(f'<h2 id="{escape(anchor)}">{escape(title)}</h2>')
        return self

    def heading(self, text: str) -> Page:
        """A sub-heading (``<h3>``)."""
        self._parts.append(f"<h3>{escape(text)}</h3>")
        return self

    def paragraph(self, text: str, *, note: bool = False) -> Page:
        """A paragraph of escaped text; ``note`` renders it smaller and grey."""
        cls = ' class="note"' if note else ""
        self._parts.append(f"<p{cls}>{escape(text)}</p>")
        return self

    def bullets(self, items: Sequence[str]) -> Page:
        """A bulleted list of escaped text."""
        lis = "".join(f"<li>{escape(item)}</li>" for item in items)
        self._parts.append(f'<ul class="findings">{lis}</ul>')
        return self

    def raw(self, fragment: str) -> Page:
        """Append an HTML fragment as is (the caller escapes its text)."""
        self._parts.append(fragment)
        return self

    def cards(self, values: Mapping[str, str]) -> Page:
        """Big headline numbers, one card per ``label: value``."""
        cards = "".join(
            f'<div class="card"><div class="value">{escape(v)}</div><div class="label">{escape(k)}</div></div>'
            for k, v in values.items()
        )
        self._parts.append(f'<div class="cards">{cards}</div>')
        return self

    def table(
        self,
        frame: pd.DataFrame,
        *,
        formats: Mapping[str, Callable[[object], str] | str] | None = None,
        row_classes: Sequence[str] | None = None,
        caption: str | None = None,
    ) -> Page:
        """A table of ``frame`` (index dropped); numbers are right-aligned, floats shown with 3 decimals."""
        formats = dict(formats or {})
        head = "".join(f"<th>{escape(c)}</th>" for c in frame.columns)
        rows = []
        numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns}
        for i, record in enumerate(frame.itertuples(index=False, name=None)):
            cells = []
            for col, value in zip(frame.columns, record):
                cls = ' class="num"' if numeric[col] else ""
                cells.append(f"<td{cls}>{escape(_format_cell(value, formats.get(col)))}</td>")
            tr_cls = f' class="{escape(row_classes[i])}"' if row_classes and row_classes[i] else ""
            rows.append(f"<tr{tr_cls}>{''.join(cells)}</tr>")
        cap = f"<caption>{escape(caption)}</caption>" if caption else ""
        self._parts.append(f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
        return self

    def image(self, png: bytes, *, alt: str, caption: str | None = None, width: int | None = None) -> Page:
        """An embedded PNG figure; ``width`` caps its displayed width in CSS pixels."""
        style = f' style="width:{int(width)}px"' if width else ""
        cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure><img src="{data_uri(png)}" alt="{escape(alt)}"{style}>{cap}</figure>')
        return self

    def figures(self, items: Sequence[tuple[bytes, str]], *, width: int = 600) -> Page:
        """Several embedded PNGs ``(png, alt)`` side by side (wrapping on narrow screens)."""
        figs = "".join(
            f'<figure><img src="{data_uri(png)}" alt="{escape(alt)}" style="width:{int(width)}px"></figure>'
            for png, alt in items
        )
        self._parts.append(f'<div class="row">{figs}</div>')
        return self

    def render(self) -> str:
        """The whole page as one HTML string."""
        nav = "".join(f'<a href="#{escape(a)}">{escape(t)}</a>' for a, t in self._toc)
        sub = f'<p class="note">{escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            "<!DOCTYPE html>\n"
            '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(self.title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(self.title)}</h1>{sub}<nav>{nav}</nav>"
            + "\n".join(self._parts)
            + "</body></html>\n"
        )

    def write(self, path: str | Path) -> Path:
        """Write the page (UTF-8) and return its path."""
        path = Path(path)
        path.write_text(self.render(), encoding="utf-8")
        return path
