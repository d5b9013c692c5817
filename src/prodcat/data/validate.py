"""Checks on input files and frames; each raises :class:`~prodcat.errors.DataError` naming file, row and problem.

Rows are named by the file's index value (the unnamed first column of the official files), or by
the 0-based data row number when a file has no index column. Where several rows break the same
rule, the message gives the count and the first few, and ``DataError.row`` is the first.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from prodcat.errors import DataError
from prodcat.taxonomy import CODES

#: How many offending rows a message lists before "...".
SHOWN = 5

_BINARY_MAGIC = {
    b"PK\x03\x04": "a zip archive (or an .xlsx workbook)",
    b"\x1f\x8b": "a gzip archive",
    b"PAR1": "a Parquet file",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x89PNG": "a PNG image",
    b"%PDF": "a PDF document",
    b"\xd0\xcf\x11\xe0": "an old Excel/Office file",
}
_COMPRESSED_SUFFIXES = {".gz", ".bz2", ".zip", ".xz", ".zst", ".tar"}


def preview(values: Iterable[object], n: int = SHOWN) -> str:
    """The first ``n`` values joined by commas, with "..." when there are more."""
    values = list(values)
    shown = ", ".join(str(v) for v in values[:n])
    return shown + (", ..." if len(values) > n else "")


def _scalar(value: object) -> object:
    """Plain Python value (``np.int64(3)`` -> ``3``) so messages and ``DataError.row`` read well."""
    return value.item() if isinstance(value, np.generic) else value


def check_input_file(path: str | Path, what: str = "file") -> Path:
    """Return ``path`` as a :class:`Path` after checking it is a readable, non-empty, text file."""
    p = Path(path)
    if not p.exists():
        hint = ""
        if p.parent.is_dir():
            nearby = sorted(q.name for q in p.parent.glob("*.csv"))[:8]
            if nearby:
                hint = f"; CSV files in {p.parent}: {', '.join(nearby)}"
        raise DataError(f"{what} not found{hint}", path=p)
    if p.is_dir():
        raise DataError(f"{what} is a folder, expected a CSV file", path=p)
    if p.stat().st_size == 0:
        raise DataError(f"{what} is empty (0 bytes)", path=p)
    if p.suffix.lower() in _COMPRESSED_SUFFIXES:
        return p  # pandas decompresses these itself
    with p.open("rb") as f:
        head = f.read(4096)
    for magic, kind in _BINARY_MAGIC.items():
        if head.startswith(magic):
            raise DataError(f"{what} is not a CSV file: it looks like {kind}", path=p)
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise DataError(f"{what} is not a CSV text file (it contains binary NUL bytes)", path=p)
    return p


def decode_error(path: str | Path, encoding: str, what: str = "file") -> DataError:
    """Build the error for a file that does not decode with ``encoding``: line, byte and a suggestion."""
    data = Path(path).read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        start = exc.start
        line_start = data.rfind(b"\n", 0, start) + 1
        line = data.count(b"\n", 0, start) + 1
        column = start - line_start + 1
        bad = data[start : max(exc.end, start + 1)]
        context = data[max(line_start, start - 30) : start + 30].decode(encoding, errors="replace")
        suggestion = "cp1252"
        try:
            data.decode("cp1252")
        except UnicodeDecodeError:
            suggestion = "latin-1"
        shown = "utf-8" if encoding == "utf-8-sig" else encoding
        return DataError(
            f"{what} cannot be decoded as {shown}: byte 0x{bad.hex()} at line {line}, byte {column} "
            f"(file offset {start}; {exc.reason}) near {context!r}. "
            f"The file was probably saved in another encoding: try encoding={suggestion!r}",
            path=path,
        )
    return DataError(f"{what} could not be decoded as {encoding}", path=path)


def require_columns(df: pd.DataFrame, required: Sequence[str], path: str | Path | None, what: str = "file") -> None:
    """Raise when any ``required`` column is absent, listing what the file has."""
    missing = [c for c in required if c not in df.columns]
    if not missing:
        return
    found = [str(c) for c in df.columns]
    hint = ""
    if len(found) == 1 and any(sep in found[0] for sep in (";", "\t", "|")):
        hint = " (the file seems to use another separator than ',')"
    raise DataError(
        f"{what} lacks column(s) {', '.join(repr(c) for c in missing)}; found: "
        f"{', '.join(repr(c) for c in found) or 'none'}{hint}",
        path=path,
    )


def check_not_empty(df: pd.DataFrame, path: str | Path | None, what: str = "file") -> None:
    """Raise when a file has a header but no data rows."""
    if len(df) == 0:
        raise DataError(f"{what} has a header but no data rows", path=path)


def check_unique_index(index: pd.Index, path: str | Path | None, what: str = "file") -> None:
    """Raise when index values (product row ids) repeat."""
    dup = index.duplicated(keep=False)
    if dup.any():
        rows = pd.unique(index[dup])
        raise DataError(
            f"{what} has {len(rows)} duplicated index value(s): {preview(rows)}",
            path=path,
            row=_scalar(rows[0]),
        )


def parse_ids(values: pd.Series, column: str, path: str | Path | None) -> pd.Series:
    """Integer ids as ``Int64`` (missing kept as ``<NA>``); raise on non-integer values."""
    numbers = pd.to_numeric(values, errors="coerce")
    present = values.notna().to_numpy()
    as_float = numbers.fillna(0).to_numpy(dtype=float)
    bad = present & (numbers.isna().to_numpy() | (np.mod(as_float, 1) != 0) | (np.abs(as_float) >= 2.0**63))
    if bad.any():
        rows = values.index[bad]
        raise DataError(
            f"column {column!r} must hold integers (that fit in 64 bits); {int(bad.sum())} row(s) do not, first: "
            f"{preview(f'row {r} = {_scalar(v)!r}' for r, v in zip(rows, values.to_numpy()[bad]))}",
            path=path,
            row=_scalar(rows[0]),
        )
    return numbers.astype("Int64")


def check_unique_products(X: pd.DataFrame, path: str | Path | None) -> None:
    """Raise when a (productid, imageid) pair appears on more than one row."""
    ids = X[["productid", "imageid"]].dropna()
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        rows = ids.index[dup]
        first = ids.loc[rows[0]]
        raise DataError(
            f"{int(dup.sum())} rows share a (productid, imageid) pair, e.g. productid={first['productid']}, "
            f"imageid={first['imageid']} on rows {preview(rows[(ids.loc[rows] == first).all(axis=1).to_numpy()])}",
            path=path,
            row=_scalar(rows[0]),
        )


def check_text(designation: pd.Series, description: pd.Series, path: str | Path | None,
               has_image: np.ndarray | None = None) -> list:
    """Raise for rows with no text and no image; return the rows whose designation alone is empty.

    Rows with an empty designation but a description are kept (the description carries the
    text signal), and so are rows with no text but an image (``has_image``); the caller warns.
    """
    empty_designation = (designation.str.strip() == "").to_numpy()
    empty_description = (description.str.strip() == "").to_numpy()
    no_text = empty_designation & empty_description
    no_input = no_text if has_image is None else no_text & ~np.asarray(has_image, dtype=bool)
    if no_input.any():
        rows = designation.index[no_input]
        raise DataError(
            f"{int(no_input.sum())} row(s) have an empty designation and no description"
            f"{'' if has_image is None else ' and no image'} (nothing to classify): {preview(rows)}",
            path=path,
            row=_scalar(rows[0]),
        )
    return list(designation.index[empty_designation])


def parse_labels(values: pd.Series, path: str | Path | None, column: str = "prdtypecode") -> pd.Series:
    """Labels as ``int64`` codes; raise on missing, non-integer or unknown codes (row and value)."""
    missing = values.isna().to_numpy()
    if missing.any():
        rows = values.index[missing]
        raise DataError(
            f"{int(missing.sum())} row(s) have no {column} label: {preview(rows)}", path=path, row=_scalar(rows[0])
        )
    numbers = pd.to_numeric(values, errors="coerce")
    as_float = numbers.to_numpy(dtype=float, na_value=np.nan)
    not_int = np.isnan(as_float) | (np.mod(np.nan_to_num(as_float), 1) != 0)
    if not_int.any():
        rows = values.index[not_int]
        raise DataError(
            f"{column} must be an integer code; {int(not_int.sum())} row(s) are not, first: "
            f"{preview(f'row {r} = {_scalar(v)!r}' for r, v in zip(rows, values.to_numpy()[not_int]))}",
            path=path,
            row=_scalar(rows[0]),
        )
    codes = pd.Series(as_float.astype(np.int64), index=values.index, name=column)
    unknown = ~codes.isin(CODES).to_numpy()
    if unknown.any():
        rows = codes.index[unknown]
        raise DataError(
            f"{int(unknown.sum())} row(s) have a {column} outside the 27 official codes, first: "
            f"{preview(f'row {r} = {v}' for r, v in zip(rows, codes.to_numpy()[unknown]))}; known codes: {', '.join(map(str, CODES))}",
            path=path,
            row=_scalar(rows[0]),
        )
    return codes


def check_aligned(x_index: pd.Index, y_index: pd.Index, x_path: str | Path | None, y_path: str | Path | None) -> bool:
    """Raise when products and labels do not cover the same rows.

    Returns ``True`` when the rows are identical and in the same order, ``False`` when they are
    the same rows in another order (the caller reorders the labels).
    """
    if x_index.equals(y_index):
        return True
    no_label = x_index.difference(y_index, sort=False)
    no_product = y_index.difference(x_index, sort=False)
    if len(no_label) == 0 and len(no_product) == 0 and len(x_index) == len(y_index):
        return False
    parts = [f"products and labels do not match: X has {len(x_index)} rows, Y has {len(y_index)}"]
    if len(no_label):
        parts.append(f"{len(no_label)} X row(s) have no label (first: {preview(no_label)})")
    if len(no_product):
        parts.append(f"{len(no_product)} Y row(s) have no product (first: {preview(no_product)})")
    first = no_label[0] if len(no_label) else no_product[0] if len(no_product) else None
    parts.append("--align (align=True) keeps only the rows in both files")
    raise DataError("; ".join(parts) + f" [X: {x_path}]", path=y_path, row=None if first is None else _scalar(first))


def check_sizes_match(n_a: int, n_b: int, what_a: str, what_b: str) -> None:
    """Raise when two parallel inputs have different lengths."""
    if n_a != n_b:
        raise DataError(f"{what_a} has {n_a} values but {what_b} has {n_b}")
