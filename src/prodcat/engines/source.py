"""Products to predict, read in chunks from a CSV or Parquet file (bounded memory).

A :class:`ProductSource` names the file and how to read it (official X columns, or a generic text
column). Both engines turn each raw chunk into the standard product frame with
:func:`to_products`, the same per-row steps :func:`prodcat.data.io.load_official` takes (text as
``str``, mojibake repair, image paths from ``productid``/``imageid``), so a chunked prediction
equals the prediction on the whole file loaded at once. Checks across the whole file (a unique
index, unique products) are left out: they would need the whole file in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd

from prodcat.data import validate
from prodcat.data.io import ID_COLUMNS, attach_images, make_products
from prodcat.errors import DataError

#: Columns that hold a file's own row index: pandas' unnamed first CSV column, its Parquet index.
INDEX_COLUMNS = ("", "Unnamed: 0", "__index_level_0__")
PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass(frozen=True)
class ProductSource:
    """A product file to read in chunks: official X columns, or ``text_col`` (generic CSV mode)."""

    path: str
    text_col: str | None = None
    description_col: str | None = None
    images_dir: str | None = None
    encoding: str = "utf-8"

    @property
    def is_parquet(self) -> bool:
        return Path(self.path).suffix.lower() in PARQUET_SUFFIXES

    @property
    def text_columns(self) -> tuple[str, ...]:
        if self.text_col is None:
            return ("designation", "description")
        return (self.text_col,) + ((self.description_col,) if self.description_col else ())

    @property
    def required_columns(self) -> tuple[str, ...]:
        return self.text_columns + (ID_COLUMNS if self.text_col is None else ())

    @cached_property
    def _range_index(self) -> tuple[int, int]:
        """(start, step) of the row numbers: a Parquet file written by pandas keeps its range index as metadata."""
        if self.is_parquet:
            try:
                import pyarrow.parquet as pq

                metadata = pq.read_schema(self.path).pandas_metadata or {}
            except (ImportError, OSError, ValueError):
                metadata = {}
            for index in metadata.get("index_columns", []):
                if isinstance(index, dict) and index.get("kind") == "range":
                    return int(index["start"]), int(index["step"])
        return 0, 1

    def row_numbers(self, first_row: int, n: int) -> pd.Index:
        """The index of ``n`` rows from ``first_row`` of a file without an index column of its own."""
        start, step = self._range_index
        return pd.RangeIndex(start + first_row * step, start + (first_row + n) * step, step)

    def check(self) -> Path:
        """The file, checked to exist and be readable (a :class:`DataError` otherwise)."""
        if self.is_parquet:
            path = Path(self.path)
            if not path.is_file():
                raise DataError("product file not found" if not path.exists() else "product file is a folder, "
                                "expected a Parquet file", path=path)
        else:
            path = validate.check_input_file(self.path, "product file")
        if self.images_dir is not None and not Path(self.images_dir).is_dir():
            raise DataError("images folder not found", path=self.images_dir)
        return path


def index_column(columns: pd.Index) -> str | None:
    """The column that holds the file's row index, if any."""
    for column in columns:
        if str(column) in INDEX_COLUMNS or str(column).startswith("Unnamed: 0"):
            return column
    return None


def _text(values: pd.Series) -> list[str]:
    return ["" if value is None or value is pd.NA or (isinstance(value, float) and value != value) else str(value)
            for value in values]


def to_products(raw: pd.DataFrame, source: ProductSource, first_row: int | None = None) -> tuple[pd.DataFrame, bool]:
    """The standard product frame of one raw chunk, and whether its index came from the file.

    ``first_row`` (the chunk's position in the file, when known) numbers the rows of a file without
    an index column and locates errors; without it rows are numbered from 0.
    """
    validate.require_columns(raw, list(source.required_columns), source.path, "product file")
    start = first_row or 0
    where = f"rows {start}..{start + len(raw) - 1}" if first_row is not None else "a batch"
    index_col = index_column(raw.columns)
    # errors name the file's own row labels (its index column, else the row numbers)
    labels = pd.Index(raw[index_col].to_numpy()) if index_col is not None else source.row_numbers(start, len(raw))
    ids = pd.DataFrame(index=labels)
    for column in ID_COLUMNS:
        ids[column] = (validate.parse_ids(raw[column].set_axis(labels), column, source.path) if column in raw.columns
                       else pd.array([pd.NA] * len(raw), dtype="Int64"))
    image_paths = None
    if source.images_dir is not None and not set(ID_COLUMNS) <= set(raw.columns):
        raise DataError("cannot match images: the file needs productid and imageid columns", path=source.path)
    if source.images_dir is not None:
        image_paths = attach_images(ids, source.images_dir)[0]["image_path"].tolist()
    titles = _text(raw[source.text_columns[0]])
    descriptions = _text(raw[source.text_columns[1]]) if len(source.text_columns) > 1 else [""] * len(raw)
    no_text = np.array([not t.strip() and not d.strip() for t, d in zip(titles, descriptions)], dtype=bool)
    if image_paths is not None:
        no_text &= np.array([p is None for p in image_paths], dtype=bool)
    if no_text.any():
        rows = (np.flatnonzero(no_text) + start).tolist()
        raise DataError(f"{len(rows)} product(s) in {where} have no text and no image: {validate.preview(rows)}",
                        path=source.path, row=rows[0] if first_row is not None else None)
    X = make_products(titles, descriptions, image_paths)
    X["productid"], X["imageid"] = ids["productid"].to_numpy(), ids["imageid"].to_numpy()
    X.index = labels
    return X, index_col is not None


def read_chunks(source: ProductSource, rows: int) -> Iterator[pd.DataFrame]:
    """Raw chunks of at most ``rows`` rows, in file order; text columns as strings ("" when empty)."""
    path = source.check()
    if rows < 1:
        raise DataError(f"chunk size must be at least 1 row, got {rows}")
    if source.is_parquet:
        yield from _parquet_chunks(path, rows)
        return
    dtype = {column: "str" for column in source.text_columns}
    try:
        reader = pd.read_csv(path, encoding=source.encoding, dtype=dtype, keep_default_na=False, na_values=[""],
                             chunksize=rows)
        with reader:
            yield from reader
    except UnicodeDecodeError:
        raise validate.decode_error(path, source.encoding, "product file") from None
    except LookupError:
        raise DataError(f"unknown encoding {source.encoding!r}", path=path) from None
    except pd.errors.EmptyDataError:
        raise DataError("product file is empty (no header line)", path=path) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"product file is not a well-formed CSV file: {exc}", path=path) from None


def _parquet_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError("reading Parquet needs pyarrow: pip install 'prodcat[parquet]'", path=path) from None
    try:
        parquet = pq.ParquetFile(path)
        for batch in parquet.iter_batches(batch_size=rows):
            yield batch.to_pandas()
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"product file could not be read as Parquet: {exc}", path=path) from None
