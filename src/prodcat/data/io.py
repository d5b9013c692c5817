"""Load the official challenge files or a generic CSV into one standard frame; write submissions.

The standard product frame (``Dataset.X``, :func:`make_products`) has the columns
``designation``, ``description`` (``""`` when empty), ``productid``, ``imageid`` (``Int64``,
``<NA>`` when unknown) and ``image_path`` (absolute path as ``str``, or ``None``).

Loading validates as it goes (see :mod:`prodcat.data.validate`) and never drops rows silently:
missing images are counted in the :class:`LoadReport`, not fatal. A row with an empty
designation but a description is kept (with a warning), and so is a row with an image but no text;
a row with no text and no image is an error.
Mojibake (``Ã©`` for ``é``) is repaired with :func:`prodcat.text.encoding.fix_mojibake`, only on
rows that contain typical mojibake character pairs, so loading 85k long rows takes seconds.
"""

from __future__ import annotations

import codecs
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from prodcat.data import validate
from prodcat.errors import DataError
from prodcat.text.encoding import fix_mojibake as _repair_text

TEXT_COLUMNS = ("designation", "description")
ID_COLUMNS = ("productid", "imageid")
PRODUCT_COLUMNS = (*TEXT_COLUMNS, *ID_COLUMNS, "image_path")
LABEL_COLUMN = "prdtypecode"
#: How many missing image paths a :class:`LoadReport` keeps.
MAX_LISTED_MISSING = 20
#: Longest text field kept, in characters; longer ones are truncated (and counted). The longest
#: real description is about 12,500 characters; one 10 MB field took training from 0.4 to 3-4 GB.
MAX_FIELD_CHARS = 100_000

# UTF-8 decoded as cp1252/latin-1 turns each multi-byte character into a lead character
# (U+00C2..U+00F4, e.g. "Ã", "Â", "â") followed by one to three continuation characters
# (U+0080..U+00BF or the cp1252 glyphs of bytes 0x80..0x9F such as "€", "™", "œ"); "Ã " is "à"
# whose no-break space became a space; stray C1 controls (U+0080..U+009F) are cp1252 text read as
# latin-1. Rows without such a pattern cannot hold that mojibake, so ftfy (slow, ~2.5 us per
# character) only sees the few rows that match. False positives are harmless: ftfy leaves them
# unchanged and they are not counted. Curly quotes alone are not mojibake and are left as they are.
_CONTINUATION = "[\u0080-\u00bf\u20ac\u201a\u0192\u201e\u2026\u2020\u2021\u02c6\u2030\u0160\u2039\u0152\u017d\u2018\u2019\u201c\u201d\u2022\u2013\u2014\u02dc\u2122\u0161\u203a\u0153\u017e\u0178]"
MOJIBAKE_PATTERN = re.compile(
    f"[\u00c2-\u00df]{_CONTINUATION}|[\u00e0-\u00ef]{_CONTINUATION}{{2}}|[\u00f0-\u00f4]{_CONTINUATION}{{3}}"
    "|\u00c3 |[\u0080-\u009f]"
)


@dataclass
class LoadReport:
    """What loading saw and repaired."""

    n_rows: int
    n_mojibake_fixed: int = 0
    n_empty_descriptions: int = 0
    n_images_found: int = 0
    n_images_missing: int = 0
    n_truncated_fields: int = 0
    missing_images: list[str] = field(default_factory=list)  # first MAX_LISTED_MISSING only
    warnings: list[str] = field(default_factory=list)
    source: str | None = None
    images_dir: str | None = None  # None: images were not checked
    has_description: bool = True  # False: a generic CSV loaded without a description column

    def summary(self) -> str:
        """A few human-readable lines for the CLI."""
        lines = [f"{self.n_rows} products loaded" + (f" from {self.source}" if self.source else "")]
        empty = f"{self.n_empty_descriptions} empty descriptions" if self.has_description else "no description column"
        lines.append(f"text: {empty}, mojibake repaired in {self.n_mojibake_fixed} rows")
        if self.images_dir is None:
            lines.append("images: not checked (no images folder given)")
        else:
            lines.append(
                f"images: {self.n_images_found} found, {self.n_images_missing} missing in {self.images_dir}"
            )
            if self.missing_images:
                shown = [Path(p).name for p in self.missing_images[:3]]
                more = self.n_images_missing - len(shown)
                lines.append("  missing e.g. " + ", ".join(shown) + (f" (+{more} more)" if more > 0 else ""))
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return asdict(self)


@dataclass
class Dataset:
    """Products (standard frame), their labels when known, and the load report."""

    X: pd.DataFrame
    y: pd.Series | None
    report: LoadReport

    def __len__(self) -> int:
        return len(self.X)


def image_filename(imageid: object, productid: object) -> str:
    """Official image file name: ``image_{imageid}_product_{productid}.jpg``."""
    return f"image_{int(imageid)}_product_{int(productid)}.jpg"


# ---------------------------------------------------------------- reading


def _normalise_encoding(encoding: str, path: Path, what: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} for {what}", path=path) from None
    return "utf-8-sig" if name == "utf-8" else name  # accept a UTF-8 byte-order mark


def _read_csv(path: str | Path, *, what: str, encoding: str, text_columns: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV with clear errors; the unnamed first column (if any) becomes the index (name None)."""
    p = validate.check_input_file(path, what)
    enc = _normalise_encoding(encoding, p, what)
    dtype = {c: "str" for c in text_columns}
    try:
        # Only empty fields are missing: a title such as "NA" or "None" stays text.
        df = pd.read_csv(p, encoding=enc, dtype=dtype or None, keep_default_na=False, na_values=[""])
    except UnicodeDecodeError:
        raise validate.decode_error(p, enc, what) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{what} is empty (no header line)", path=p) from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{what} is not a well-formed CSV file: {exc}", path=p) from None
    except (ValueError, OSError) as exc:  # e.g. corrupt compressed file
        raise DataError(f"{what} could not be read as CSV: {exc}", path=p) from None
    first = str(df.columns[0]) if len(df.columns) else ""
    if first == "" or first.startswith("Unnamed: 0"):
        df = df.set_index(df.columns[0])
        df.index.name = None
    return df


def _text(values: pd.Series) -> pd.Series:
    """Text column as ``str`` dtype with ``""`` for missing values."""
    return values.astype("str").fillna("") if values.dtype != "str" else values.fillna("")


def _repair_mojibake(X: pd.DataFrame) -> int:
    """Repair mojibake in the text columns in place; return the number of rows changed."""
    touched = np.zeros(len(X), dtype=bool)
    for column in TEXT_COLUMNS:
        values = X[column]
        candidates = values.str.contains(MOJIBAKE_PATTERN.pattern, regex=True).to_numpy(dtype=bool, na_value=False)
        if not candidates.any():
            continue
        before = values[candidates]
        repaired = {text: _repair_text(text) for text in pd.unique(before)}  # catalogues repeat descriptions
        after = pd.Series([repaired[v] for v in before], index=before.index, dtype="str")
        changed = (after != before).to_numpy()
        if changed.any():
            positions = np.flatnonzero(candidates)[changed]
            X.iloc[positions, X.columns.get_loc(column)] = after[changed].to_numpy()
            touched[positions] = True
    return int(touched.sum())


def _entry_is(entry: os.DirEntry, kind: str) -> bool:
    """``entry.is_file()``/``is_dir()``, False for entries that cannot be followed (symlink loops)."""
    try:
        return entry.is_file() if kind == "file" else entry.is_dir()
    except OSError:
        return False


def _existing(paths: np.ndarray) -> np.ndarray:
    """Which of ``paths`` (absolute str) exist as files: each distinct folder is listed once.

    A broken link or a symlink loop counts as missing; it does not hide the other files."""
    exists = np.zeros(len(paths), dtype=bool)
    folders: dict[str, set[str]] = {}
    for i, path in enumerate(paths):
        folder, name = os.path.split(path)
        if folder not in folders:
            try:
                with os.scandir(folder) as entries:
                    folders[folder] = {e.name for e in entries if _entry_is(e, "file")}
            except OSError:
                folders[folder] = set()
        exists[i] = name in folders[folder]
    return exists


def _check_images_dir(images_dir: str | Path) -> Path:
    folder = Path(images_dir).expanduser()
    if not folder.exists():
        raise DataError("images folder not found", path=folder)
    if not folder.is_dir():
        raise DataError("images folder is a file, expected a folder of JPEGs", path=folder)
    return folder.resolve()


def _set_image_paths(X: pd.DataFrame, expected: pd.Series) -> tuple[pd.DataFrame, int, list[str]]:
    """Put existing ``expected`` paths (absolute str or None) into ``X.image_path``."""
    has_path = expected.notna().to_numpy()
    wanted = expected[has_path].to_numpy(dtype=object)
    found = _existing(wanted)
    image_path = np.full(len(X), None, dtype=object)
    image_path[np.flatnonzero(has_path)[found]] = wanted[found]
    X = X.copy()
    X["image_path"] = pd.Series(image_path, index=X.index, dtype=object)
    return X, int(found.sum()), [str(p) for p in wanted[~found]]


def attach_images(X: pd.DataFrame, images_dir: str | Path) -> tuple[pd.DataFrame, int, list[str]]:
    """Set ``image_path`` from ``productid``/``imageid`` and the official file names in ``images_dir``.

    Returns ``(X with image_path, n_found, missing paths)``. Missing images are not an error:
    their ``image_path`` is ``None``. Rows without ids count as missing but have no path to list.
    The folder is listed once (no per-file ``stat``), so 85k products take well under a second.
    """
    validate.require_columns(X, ID_COLUMNS, None, "product frame")
    folder = str(_check_images_dir(images_dir))
    ids = X[list(ID_COLUMNS)]
    known = ids.notna().all(axis=1).to_numpy()
    names = pd.Series(None, index=X.index, dtype=object)
    if known.any():
        imageid = ids["imageid"][known].astype("int64").astype(str)
        productid = ids["productid"][known].astype("int64").astype(str)
        names[known] = (folder + os.sep + "image_" + imageid + "_product_" + productid + ".jpg").to_numpy(dtype=object)
    return _set_image_paths(X, names)


def _image_hint(folder: Path, n_found: int, n_rows: int) -> str | None:
    if n_found or not n_rows:
        return None
    try:
        with os.scandir(folder) as entries:
            subfolders = sorted(e.name for e in entries if _entry_is(e, "dir"))
    except OSError:
        subfolders = []
    if subfolders:
        return f"no image matched in {folder}; it has sub-folders {', '.join(subfolders[:5])}: pass one of them"
    return f"no image matched in {folder}: expected files named like {image_filename(1, 2)}"


def _empty_designation_warning(rows: list, X: pd.DataFrame, has_image: np.ndarray) -> str | None:
    if not rows:
        return None
    photo_only = set(X.index[has_image & (X["description"].str.strip() == "").to_numpy()])
    described = [r for r in rows if r not in photo_only]
    notes = []
    if described:
        notes.append(f"{len(described)} row(s) have an empty designation but a description (kept; the description "
                     f"is their only text): {validate.preview(described)}")
    if len(described) < len(rows):
        image_only = [r for r in rows if r in photo_only]
        notes.append(f"{len(image_only)} row(s) have no text, only an image (kept; text models see them as empty): "
                     f"{validate.preview(image_only)}")
    return "; ".join(notes)


def _finish(
    X: pd.DataFrame,
    y: pd.Series | None,
    *,
    path: Path,
    images_dir: str | Path | None,
    image_paths: pd.Series | None,
    repair: bool,
    warnings: list[str],
) -> Dataset:
    """Shared tail of the loaders: text checks, mojibake, images, report."""
    X["designation"] = _text(X["designation"])
    X["description"] = _text(X["description"])
    n_truncated, truncated_rows = _truncate_long_fields(X)
    if n_truncated:
        warnings.append(f"{n_truncated} text field(s) longer than {MAX_FIELD_CHARS:,} characters were truncated "
                        f"to that length: {validate.preview(truncated_rows)}")
    report = LoadReport(n_rows=len(X), source=str(path), warnings=warnings, n_truncated_fields=n_truncated)
    report.n_empty_descriptions = int((X["description"].str.strip() == "").sum())
    if repair:
        report.n_mojibake_fixed = _repair_mojibake(X)
    if image_paths is not None:
        X, found, missing = _set_image_paths(X, image_paths)
    elif images_dir is not None:
        X, found, missing = attach_images(X, images_dir)
    else:
        X["image_path"] = pd.Series(None, index=X.index, dtype=object)
        found, missing = 0, []
    if images_dir is not None or image_paths is not None:
        folder = _check_images_dir(images_dir) if images_dir is not None else path.parent.resolve()
        report.images_dir = str(folder)
        report.n_images_found = found
        report.n_images_missing = len(X) - found
        report.missing_images = missing[:MAX_LISTED_MISSING]
        hint = _image_hint(folder, found, len(X)) if image_paths is None else None
        if hint:
            warnings.append(hint)
    has_image = X["image_path"].notna().to_numpy()
    empty_designation = validate.check_text(X["designation"], X["description"], path, has_image)
    warning = _empty_designation_warning(empty_designation, X, has_image)
    if warning:
        warnings.append(warning)
    return Dataset(X=X[list(PRODUCT_COLUMNS)], y=y, report=report)


def _truncate_long_fields(X: pd.DataFrame, limit: int = MAX_FIELD_CHARS) -> tuple[int, list]:
    """Cut text fields over ``limit`` characters in place; returns (fields cut, their rows)."""
    count, rows = 0, []
    for column in TEXT_COLUMNS:
        long = (X[column].str.len() > limit).to_numpy()
        if long.any():
            X.loc[long, column] = X.loc[long, column].str.slice(0, limit)
            count += int(long.sum())
            rows.extend(X.index[long].tolist())
    return count, rows


def _labels(y_path: str | Path, *, encoding: str, what: str, column: str = LABEL_COLUMN) -> pd.Series:
    df = _read_csv(y_path, what=what, encoding=encoding)
    validate.require_columns(df, [column], y_path, what)
    validate.check_not_empty(df, y_path, what)
    validate.check_unique_index(df.index, y_path, what)
    codes = validate.parse_labels(df[column], y_path, column)
    codes.name = LABEL_COLUMN
    return codes


def read_labels(y_path: str | Path, *, encoding: str = "utf-8") -> pd.Series:
    """Read an official ``Y_*.csv`` file: ``int64`` codes named ``prdtypecode``, indexed like the file."""
    return _labels(y_path, encoding=encoding, what="label file")


def load_official(
    x_path: str | Path,
    y_path: str | Path | None = None,
    images_dir: str | Path | None = None,
    *,
    fix_mojibake: bool = True,
    encoding: str = "utf-8",
    align: bool = False,
) -> Dataset:
    """Load official challenge files (``X_*.csv``, optional ``Y_*.csv`` and image folder), validated.

    Labels whose rows match the products in another order are reordered to the products' order
    (with a warning); any other mismatch is an error, unless ``align`` is set: then only the rows
    present in both files are kept (an inner join on the index), and the warnings count the
    products without a label and the labels without a product that were left out.
    """
    path = Path(x_path)
    what = "product file"
    df = _read_csv(path, what=what, encoding=encoding, text_columns=TEXT_COLUMNS)
    validate.require_columns(df, [*TEXT_COLUMNS, *ID_COLUMNS], path, what)
    validate.check_not_empty(df, path, what)
    validate.check_unique_index(df.index, path, what)
    X = df[[*TEXT_COLUMNS]].copy()
    warnings: list[str] = []
    for column in ID_COLUMNS:
        X[column] = validate.parse_ids(df[column], column, path)
    n_no_ids = int(X[list(ID_COLUMNS)].isna().any(axis=1).sum())
    if n_no_ids:
        warnings.append(f"{n_no_ids} row(s) lack a productid or imageid (no image can be matched)")
    validate.check_unique_products(X, path)
    y = None
    if y_path is not None:
        y = read_labels(y_path, encoding=encoding)
        if align:
            X, y = _align(X, y, warnings)
        if not validate.check_aligned(X.index, y.index, path, y_path):
            warnings.append("labels were in a different row order than products; reordered to match")
            y = y.reindex(X.index)
    return _finish(X, y, path=path, images_dir=images_dir, image_paths=None, repair=fix_mojibake, warnings=warnings)


def _align(X: pd.DataFrame, y: pd.Series, warnings: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """Keep the rows of ``X`` that have a label (inner join on the index), reporting what was left out."""
    keep = X.index.intersection(y.index, sort=False)
    if len(keep) == 0:
        raise DataError(f"--align: no row index is in both files (X has {len(X)} rows, Y has {len(y)})")
    n_no_label, n_no_product = len(X) - len(keep), len(y) - len(keep)
    if n_no_label or n_no_product:
        warnings.append(f"aligned on the index: kept {len(keep)} products with a label; left out {n_no_label} "
                        f"product(s) without a label and {n_no_product} label(s) without a product")
    return X.loc[keep], y.loc[keep]


def load_generic_csv(
    path: str | Path,
    text_col: str,
    label_col: str | None = None,
    *,
    description_col: str | None = None,
    images_dir: str | Path | None = None,
    image_col: str | None = None,
    fix_mojibake: bool = True,
    encoding: str = "utf-8",
) -> Dataset:
    """Load any CSV with a text column (and optionally labels, a description and images).

    ``text_col`` becomes ``designation``. Images come from ``image_col`` (file names or paths,
    relative to ``images_dir`` or, without it, to the CSV's folder) or, when the CSV has
    ``productid``/``imageid`` columns, from the official names in ``images_dir``. Labels must be
    official ``prdtypecode`` values; the index is the file's unnamed first column, if any, else 0..n-1.
    """
    p = Path(path)
    what = "CSV file"
    columns = [c for c in (text_col, label_col, description_col, image_col) if c is not None]
    df = _read_csv(p, what=what, encoding=encoding, text_columns=[c for c in (text_col, description_col) if c])
    validate.require_columns(df, columns, p, what)
    validate.check_not_empty(df, p, what)
    validate.check_unique_index(df.index, p, what)
    X = pd.DataFrame(index=df.index)
    X["designation"] = df[text_col]
    X["description"] = df[description_col] if description_col else ""
    warnings: list[str] = []
    for column in ID_COLUMNS:
        X[column] = validate.parse_ids(df[column], column, p) if column in df.columns else pd.array(
            [pd.NA] * len(df), dtype="Int64"
        )
    if "productid" in df.columns and "imageid" in df.columns:
        validate.check_unique_products(X, p)
    y = None
    if label_col is not None:
        y = validate.parse_labels(df[label_col], p, label_col)
        y.name = LABEL_COLUMN
    image_paths = None
    if image_col is not None:
        base = str(_check_images_dir(images_dir) if images_dir is not None else p.parent.resolve())
        names = df[image_col]
        present = names.notna().to_numpy() & (names.astype("str").str.strip() != "").to_numpy()
        image_paths = pd.Series(None, index=df.index, dtype=object)
        image_paths[present] = [os.path.abspath(os.path.join(base, str(n).strip())) for n in names[present]]
    elif images_dir is not None and not ("productid" in df.columns and "imageid" in df.columns):
        raise DataError(
            "cannot match images: give image_col (file names) or include productid and imageid columns", path=p
        )
    dataset = _finish(
        X, y, path=p, images_dir=images_dir, image_paths=image_paths, repair=fix_mojibake, warnings=warnings
    )
    if description_col is None:  # no description column: nothing to count as empty
        dataset.report.has_description, dataset.report.n_empty_descriptions = False, 0
    return dataset


# ---------------------------------------------------------------- products for prediction


def _as_text(value: object) -> str:
    """``""`` for None/NaN, else the value as a string."""
    return "" if value is None or (isinstance(value, float) and value != value) else str(value)


def make_products(
    designations: str | Sequence[str | None],
    descriptions: str | Sequence[str | None] | None = None,
    image_paths: str | os.PathLike | Sequence[str | os.PathLike | None] | None = None,
    *,
    fix_mojibake: bool = True,
) -> pd.DataFrame:
    """Standard product frame (same columns as ``Dataset.X``) from plain lists, for classify and the API.

    A single string stands for one product. A product needs some text or an image; image paths
    are made absolute but not checked here (the image loader reports unreadable files).
    """

    def as_list(values: object) -> list:
        return [values] if isinstance(values, (str, os.PathLike)) else list(values)  # type: ignore[arg-type]

    titles = as_list(designations)
    texts = as_list(descriptions) if descriptions is not None else [None] * len(titles)
    images = as_list(image_paths) if image_paths is not None else [None] * len(titles)
    validate.check_sizes_match(len(titles), len(texts), "designations", "descriptions")
    validate.check_sizes_match(len(titles), len(images), "designations", "image_paths")
    X = pd.DataFrame(
        {
            "designation": pd.Series([_as_text(t) for t in titles], dtype="str"),
            "description": pd.Series([_as_text(t) for t in texts], dtype="str"),
            "productid": pd.array([pd.NA] * len(titles), dtype="Int64"),
            "imageid": pd.array([pd.NA] * len(titles), dtype="Int64"),
            "image_path": pd.Series(
                [None if p is None or str(p) == "" else os.path.abspath(os.fspath(p)) for p in images], dtype=object
            ),
        }
    )
    no_text = ((X["designation"].str.strip() == "") & (X["description"].str.strip() == "")).to_numpy()
    no_input = no_text & X["image_path"].isna().to_numpy()
    if no_input.any():
        rows = np.flatnonzero(no_input)
        raise DataError(
            f"{len(rows)} product(s) have no text and no image: {validate.preview(rows.tolist())}", row=int(rows[0])
        )
    _truncate_long_fields(X)
    if fix_mojibake:
        _repair_mojibake(X)
    return X


# ---------------------------------------------------------------- submissions


def write_submission(index: Sequence | pd.Index, codes: Sequence[int] | np.ndarray | pd.Series, path: str | Path) -> Path:
    """Write predictions in the challenge format: the X index as an unnamed first column, then ``prdtypecode``."""
    index = pd.Index(index)
    values = np.asarray(codes)
    validate.check_sizes_match(len(index), len(values), "index", "codes")
    validate.check_unique_index(index, path, "submission")
    codes_series = validate.parse_labels(pd.Series(values, index=index), path)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # atomic: a reader never sees half a file
    try:
        codes_series.rename_axis(None).rename(LABEL_COLUMN).to_csv(tmp, header=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def read_submission(path: str | Path) -> pd.Series:
    """Read a submission (or any file in the ``Y_*.csv`` format) back as ``int64`` codes indexed like the file."""
    return _labels(path, encoding="utf-8", what="submission file")
