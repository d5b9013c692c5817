"""Data exploration: ``eda.html`` (self-contained) and PNGs describing texts, labels and images.

Text statistics use every row (vectorised pandas string methods); image statistics use a seeded
random sample of ``image_path`` values whose size the page states.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from prodcat.errors import DataError
from prodcat.reports import plots
from prodcat.reports.html import Page
from prodcat.taxonomy import name_of, official_distribution

HTML_PATTERN = r"<[a-zA-Z/!][^>]*>|&[a-zA-Z]{2,8};|&#x?[0-9a-fA-F]{2,6};"
TAG_PATTERN = r"<[^>]*>"
NOT_PLAIN_ASCII = r"[^\x20-\x7e\t\n\r]"
SAMPLES_PER_CLASS = 5
TOP_DUPLICATES = 10


def _text_column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series("", index=frame.index, dtype=object)
    return frame[name].fillna("").astype(str)


def normalise_title(titles: pd.Series) -> pd.Series:
    """Lower-cased titles with runs of whitespace collapsed, for duplicate detection."""
    return titles.str.lower().str.replace(r"\s+", " ", regex=True).str.strip()


def word_counts(texts: pd.Series) -> pd.Series:
    """Words per text, HTML tags removed (vectorised)."""
    return texts.str.replace(TAG_PATTERN, " ", regex=True).str.count(r"\S+").astype(int)


def mojibake_flags(texts: pd.Series, *, progress: bool = False, desc: str = "mojibake") -> pd.Series:
    """:func:`prodcat.text.encoding.has_mojibake` per text; plain printable ASCII is skipped (never mojibake)."""
    from prodcat.text.encoding import has_mojibake

    flags = pd.Series(False, index=texts.index)
    candidates = texts[texts.str.contains(NOT_PLAIN_ASCII, regex=True)]
    unique = pd.unique(candidates.to_numpy())  # catalogues repeat descriptions: check each text once
    verdict = {t: has_mojibake(t) for t in tqdm(unique, desc=desc, disable=not progress, leave=False)}
    flags.loc[candidates.index] = candidates.map(verdict).to_numpy(dtype=bool)
    return flags


@dataclass
class TextSummary:
    """Per-row text statistics of one frame."""

    title_words: pd.Series
    description_words: pd.Series
    empty_description: pd.Series
    html: pd.DataFrame  # designation, description: bool
    mojibake: pd.DataFrame  # designation, description: bool
    languages: pd.Series
    title_key: pd.Series  # normalised title


def summarise_texts(X: pd.DataFrame, *, progress: bool = False) -> TextSummary:
    """Word counts, empty descriptions, HTML, mojibake and language of every row of ``X``."""
    from prodcat.text.lang import detect_languages

    title = _text_column(X, "designation")
    description = _text_column(X, "description")
    stages = tqdm(total=4, desc="text statistics", disable=not progress, leave=False)
    title_words = word_counts(title)
    description_words = word_counts(description)
    html = pd.DataFrame({
        "designation": title.str.contains(HTML_PATTERN, regex=True),
        "description": description.str.contains(HTML_PATTERN, regex=True),
    })
    stages.update()
    mojibake = pd.DataFrame({
        "designation": mojibake_flags(title, progress=progress, desc="mojibake (titles)"),
        "description": mojibake_flags(description, progress=progress, desc="mojibake (descriptions)"),
    })
    stages.update()
    plain = (title + " " + description.str.slice(0, 600).str.replace(TAG_PATTERN, " ", regex=True)).str.slice(0, 300)
    languages = pd.Series(detect_languages(plain.tolist()), index=X.index)
    stages.update()
    key = normalise_title(title)
    stages.update()
    stages.close()
    return TextSummary(
        title_words=title_words,
        description_words=description_words,
        empty_description=description.str.strip() == "",
        html=html,
        mojibake=mojibake,
        languages=languages,
        title_key=key,
    )


@dataclass
class ImageSummary:
    """Size and white-border ratio of a sample of images."""

    n_with_path: int
    sample: pd.DataFrame  # row (position in X), path, width, height, white_ratio, error
    errors: list[str] = field(default_factory=list)


def summarise_images(paths: pd.Series, sample_size: int, seed: int, *, progress: bool = False) -> ImageSummary:
    """Decode a seeded sample of image paths: original size and share of near-white pixels."""
    from prodcat.image.io import ImageError, load_rgb, white_ratio

    has_path = paths.notna() & (paths.astype(str).str.len() > 0)
    positions = np.flatnonzero(has_path.to_numpy())
    rng = np.random.default_rng(seed)
    if len(positions) > sample_size:
        positions = np.sort(rng.choice(positions, size=sample_size, replace=False))
    rows = []
    errors = []
    for pos in tqdm(positions, desc="image sample", disable=not progress, leave=False):
        path = str(paths.iloc[pos])
        record = {"row": int(pos), "path": path, "width": np.nan, "height": np.nan, "white_ratio": np.nan, "error": ""}
        try:
            img = load_rgb(path, draft=(200, 200))  # JPEG draft decode: the ratio barely moves, 3-4x faster
            record["width"], record["height"] = img.info.get("original_size", img.size)
            record["white_ratio"] = white_ratio(img)
        except ImageError as exc:
            record["error"] = exc.reason
            if len(errors) < 5:
                errors.append(str(exc))
        rows.append(record)
    sample = pd.DataFrame(rows, columns=["row", "path", "width", "height", "white_ratio", "error"])
    return ImageSummary(n_with_path=int(has_path.sum()), sample=sample, errors=errors)


def _pct(part: float, whole: float) -> str:
    if not whole:
        return "n/a"
    share = 100 * part / whole
    return "<0.1%" if 0 < share < 0.05 else f"{share:.1f}%"


def _stats(values: pd.Series) -> dict[str, float]:
    return {
        "min": int(values.min()), "median": float(values.median()), "mean": round(float(values.mean()), 1),
        "95th pct": float(values.quantile(0.95)), "max": int(values.max()),
    }


def _labels(y: pd.Series | np.ndarray | list | None, n: int) -> pd.Series | None:
    if y is None:
        return None
    if isinstance(y, pd.DataFrame):
        if y.shape[1] != 1:
            raise DataError(f"y must have one label column, got {list(y.columns)}")
        y = y.iloc[:, 0]
    values = np.asarray(y)
    if len(values) != n:
        raise DataError(f"y has {len(values)} labels but X has {n} rows")
    try:
        return pd.Series(values.astype(int))
    except (TypeError, ValueError):
        raise DataError("y must hold integer product type codes") from None


def _text_sections(page: Page, X: pd.DataFrame, texts: TextSummary, codes: pd.Series | None, out_dir: Path) -> None:
    n = len(X)
    has_description = "description" in X.columns
    page.section("Text lengths", "lengths")
    page.paragraph("Words per text (HTML tags removed)." + (" Empty descriptions count as 0 words." if has_description
                                                            else " The data has no description column."))
    rows = [{"field": "designation", **_stats(texts.title_words)}]
    if has_description:
        rows += [{"field": "description", **_stats(texts.description_words)},
                 {"field": "description (non-empty only)", **_stats(texts.description_words[~texts.empty_description])}
                 if (~texts.empty_description).any() else {"field": "description (non-empty only)"}]
    page.table(pd.DataFrame(rows), formats={"median": "g", "mean": "g", "95th pct": "g"})
    figures = []
    columns = (("designation", texts.title_words), ("description", texts.description_words))
    for column, words in columns[:2 if has_description else 1]:
        fig = plots.histogram(words, title=f"{column}: words per product", xlabel="words")
        figures.append((plots.save_png(fig, out_dir / f"{column}_words.png"), f"{column} length histogram"))
    page.figures(figures)
    if has_description:
        _empty_description_section(page, n, texts, codes)
    _language_and_encoding_sections(page, X, texts, out_dir)


def _empty_description_section(page: Page, n: int, texts: TextSummary, codes: pd.Series | None) -> None:
    empty = int(texts.empty_description.sum())
    page.section("Empty descriptions", "empty")
    page.paragraph(f"{empty:,} of {n:,} products ({_pct(empty, n)}) have an empty description.")
    if codes is not None:
        by_class = texts.empty_description.groupby(codes.to_numpy()).mean().sort_values(ascending=False)
        table = pd.DataFrame({"code": by_class.index, "name": [name_of(c) for c in by_class.index],
                              "empty descriptions": [f"{100 * v:.1f}%" for v in by_class.to_numpy()]})
        page.paragraph("Share of empty descriptions per class (highest first):", note=True)
        page.table(table)


def _language_and_encoding_sections(page: Page, X: pd.DataFrame, texts: TextSummary, out_dir: Path) -> None:
    n = len(X)
    page.section("Languages", "languages")
    counts = texts.languages.value_counts()
    page.paragraph(
        "Language of each product's title and the start of its description (prodcat.text.lang, first 300 characters). "
        + ", ".join(f"{lang}: {_pct(c, n)}" for lang, c in counts.items())
    )
    fig = plots.barh(counts / n, title="Detected language (share of products)", xlabel="% of products", as_percent=True)
    page.image(plots.save_png(fig, out_dir / "languages.png"), alt="languages", width=650)

    page.section("HTML and mojibake", "encoding")
    rows = []
    for column in ("designation", "description") if "description" in X.columns else ("designation",):
        rows.append({
            "field": column,
            "with HTML tags or entities": f"{int(texts.html[column].sum()):,} ({_pct(texts.html[column].sum(), n)})",
            "with mojibake": f"{int(texts.mojibake[column].sum()):,} ({_pct(texts.mojibake[column].sum(), n)})",
        })
    page.table(pd.DataFrame(rows))
    page.paragraph(
        "HTML: tags such as <br> or entities such as &eacute;. Mojibake: text that "
        "prodcat.text.encoding.has_mojibake would repair (e.g. Ã© for é).", note=True)


def _duplicate_section(page: Page, X: pd.DataFrame, texts: TextSummary, codes: pd.Series | None,
                       X_other: pd.DataFrame | None) -> None:
    n = len(X)
    page.section("Duplicates", "duplicates")
    title = _text_column(X, "designation")
    exact = title.duplicated(keep=False) & (title.str.strip() != "")
    key = texts.title_key
    loose = key.duplicated(keep=False) & (key != "")
    full = (title + "\x00" + _text_column(X, "description")).duplicated(keep=False)
    findings = [
        f"{int(exact.sum()):,} products ({_pct(exact.sum(), n)}) share their exact title with another product "
        f"({title[exact].nunique():,} distinct titles).",
        f"{int(loose.sum()):,} products ({_pct(loose.sum(), n)}) once case and spacing are ignored.",
    ]
    if "description" in X.columns:
        findings.append(f"{int(full.sum()):,} products ({_pct(full.sum(), n)}) share both title and description.")
    groups = pd.DataFrame({"key": key, "title": title})
    if codes is not None:
        groups["code"] = codes.to_numpy()
        dup = groups[loose]
        n_codes = dup.groupby("key")["code"].nunique()
        conflicting = n_codes[n_codes > 1]
        findings.append(
            f"{len(conflicting):,} duplicated titles carry more than one product type code "
            f"({int(dup['key'].isin(conflicting.index).sum()):,} products): no text model can get all of them right."
        )
    page.bullets(findings)
    if loose.any():
        top = groups[loose].groupby("key").agg(title=("title", "first"), products=("title", "size"))
        if codes is not None:
            top["codes"] = groups[loose].groupby("key")["code"].agg(
                lambda s: ", ".join(f"{c} {name_of(c)}" for c in sorted(s.unique())))
        top = top.sort_values("products", ascending=False, kind="stable").head(TOP_DUPLICATES).reset_index(drop=True)
        top["title"] = top["title"].str.slice(0, 90)
        page.paragraph("Most repeated titles:", note=True)
        page.table(top)
    if X_other is not None:
        other_key = normalise_title(_text_column(X_other, "designation"))
        known = set(key[key != ""])
        shared = other_key.isin(known) & (other_key != "")
        page.heading("Across the two sets")
        lines = [f"{int(shared.sum()):,} of {len(X_other):,} products of the other set ({_pct(shared.sum(), len(X_other))}) "
                 "have a title (case and spacing ignored) that also appears in this set."]
        if "imageid" in X.columns and "imageid" in X_other.columns:
            same_image = X_other["imageid"].isin(set(X["imageid"].dropna())) & X_other["imageid"].notna()
            lines.append(f"{int(same_image.sum()):,} products of the other set reuse an imageid of this set.")
        page.bullets(lines)


def _image_sections(page: Page, X: pd.DataFrame, codes: pd.Series | None, image_sample: int, seed: int,
                    out_dir: Path, progress: bool) -> None:
    page.section("Images", "images")
    if "image_path" not in X.columns or not X["image_path"].notna().any():
        page.paragraph("No image paths were given: image statistics are not shown.", note=True)
        return
    summary = summarise_images(X["image_path"], image_sample, seed, progress=progress)
    sample = summary.sample
    ok = sample[sample["error"] == ""]
    page.paragraph(
        f"Sample: {len(sample):,} images drawn at random (seed {seed}) from the {summary.n_with_path:,} products "
        f"with an image path ({len(X) - summary.n_with_path:,} products have none); "
        f"{len(ok):,} decoded, {len(sample) - len(ok):,} unreadable."
    )
    if summary.errors:
        page.bullets(summary.errors)
    if ok.empty:
        return
    sizes = (ok["width"].astype(int).astype(str) + " x " + ok["height"].astype(int).astype(str)).value_counts()
    page.heading("Image sizes (width x height, pixels)")
    page.table(pd.DataFrame({"size": sizes.index[:10], "images": sizes.to_numpy()[:10],
                             "share": [_pct(v, len(ok)) for v in sizes.to_numpy()[:10]]}))
    ratio = ok["white_ratio"]
    page.heading("White ratio (taux de blanc)")
    page.paragraph(
        f"Share of near-white pixels per image: median {ratio.median():.2f}, mean {ratio.mean():.2f}; "
        f"{_pct((ratio > 0.5).sum(), len(ok))} of the images are more than half white and "
        f"{_pct((ratio > 0.8).sum(), len(ok))} more than 80% white: cropping white borders keeps more product pixels."
    )
    fig = plots.histogram(ratio, title="White ratio per image (sample)", xlabel="share of near-white pixels",
                          bins=40, clip_quantile=None)
    page.image(plots.save_png(fig, out_dir / "white_ratio.png"), alt="white ratio histogram", width=650)
    if codes is not None:
        per_class = ok.assign(code=codes.to_numpy()[ok["row"].to_numpy()]).groupby("code")["white_ratio"].agg(
            ["size", "median"])
        page.paragraph("Median white ratio per class in the sample:", note=True)
        page.table(pd.DataFrame({"code": per_class.index, "name": [name_of(c) for c in per_class.index],
                                 "images": per_class["size"].to_numpy(), "median white ratio": per_class["median"].to_numpy()}),
                   formats={"median white ratio": ".2f"})
    _sample_grid(page, X, codes, seed, out_dir)


def _thumbnail(path: str, size: int = 120) -> np.ndarray | None:
    """The image at ``path`` fitted on a white ``size`` square; None when unreadable."""
    from prodcat.image.io import ImageError, fit_square, load_rgb

    try:
        img = load_rgb(path, draft=(size, size))
    except ImageError:
        return None
    return np.asarray(fit_square(img, size))


def _sample_grid(page: Page, X: pd.DataFrame, codes: pd.Series | None, seed: int, out_dir: Path) -> None:
    paths = X["image_path"]
    has_path = (paths.notna() & (paths.astype(str).str.len() > 0)).to_numpy()
    rng = np.random.default_rng(seed + 1)
    rows = []
    missing: list[str] = []
    if codes is not None:
        for code in sorted(codes.unique()):
            candidates = np.flatnonzero(has_path & (codes.to_numpy() == code))
            if len(candidates) == 0:
                missing.append(str(code))
                continue
            chosen = rng.choice(candidates, size=min(SAMPLES_PER_CLASS, len(candidates)), replace=False)
            rows.append((f"{code} - {name_of(code)}", [_thumbnail(str(paths.iloc[i])) for i in chosen]))
        title = f"Sample images per class (up to {SAMPLES_PER_CLASS}, random)"
    else:
        candidates = np.flatnonzero(has_path)
        chosen = rng.choice(candidates, size=min(4 * 8, len(candidates)), replace=False)
        for start in range(0, len(chosen), 8):
            rows.append(("", [_thumbnail(str(paths.iloc[i])) for i in chosen[start:start + 8]]))
        title = "Sample images (random)"
    page.heading(title)
    png = plots.save_png(plots.image_grid(rows, title=title, label_inches=2.4 if codes is not None else 0.2),
                         out_dir / "sample_images.png")
    caption = "Grey tiles: unreadable files."
    if missing:
        caption += f" Classes without any image path: {', '.join(missing)}."
    page.image(png, alt="sample images", caption=caption)


def _class_section(page: Page, codes: pd.Series, texts: TextSummary, out_dir: Path, X_columns: pd.Index) -> None:
    n = len(codes)
    page.section("Classes", "classes")
    counts = codes.value_counts()
    official = official_distribution()
    page.paragraph(
        f"{len(counts)} classes; the largest ({counts.index[0]} {name_of(counts.index[0])}, {counts.iloc[0]:,}) "
        f"is {counts.iloc[0] / max(counts.iloc[-1], 1):.1f}x the smallest "
        f"({counts.index[-1]} {name_of(counts.index[-1])}, {counts.iloc[-1]:,}). "
        "Red ticks: the official training distribution scaled to this data."
    )
    fig = plots.class_distribution(counts, official)
    page.image(plots.save_png(fig, out_dir / "class_distribution.png"), alt="class distribution", width=900)
    grouped = pd.DataFrame({"code": codes.to_numpy(), "title": texts.title_words.to_numpy(),
                            "description": texts.description_words.to_numpy(),
                            "empty": texts.empty_description.to_numpy()}).groupby("code")
    table = pd.DataFrame({
        "code": counts.index,
        "name": [name_of(c) for c in counts.index],
        "products": counts.to_numpy(),
        "share": [_pct(v, n) for v in counts.to_numpy()],
        "official share": [f"{100 * official[c]:.1f}%" if c in official else "-" for c in counts.index],
        "median title words": grouped["title"].median().reindex(counts.index).to_numpy(),
        "median description words": grouped["description"].median().reindex(counts.index).to_numpy(),
    })
    if "description" not in X_columns:
        table = table.drop(columns="median description words")
    page.table(table, formats={"median title words": "g", "median description words": "g"})


def write_eda(
    out_dir: str | Path,
    X: pd.DataFrame,
    y: pd.Series | None = None,
    *,
    X_other: pd.DataFrame | None = None,
    image_sample: int = 2000,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write ``eda.html`` (self-contained) and its PNGs into ``out_dir``; return the HTML path.

    ``X`` needs ``designation``; ``description``, ``productid``, ``imageid`` and ``image_path`` are
    used when present. ``y`` holds the codes in the order of ``X``. ``X_other`` (e.g. the test set)
    adds duplicate checks across the two sets. Image statistics use ``image_sample`` random images.
    """
    if not isinstance(X, pd.DataFrame):
        raise DataError(f"X must be a pandas DataFrame, got {type(X).__name__}")
    if "designation" not in X.columns:
        raise DataError(f"X has no 'designation' column (columns: {', '.join(map(str, X.columns))})")
    if X_other is not None and "designation" not in X_other.columns:
        raise DataError("X_other has no 'designation' column")
    if image_sample < 0:
        raise ValueError(f"image_sample must be >= 0, got {image_sample}")
    X = X.reset_index(drop=True)
    codes = _labels(y, len(X))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    texts = summarise_texts(X, progress=progress)
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    subtitle = f"{len(X):,} products" + (f", {codes.nunique()} classes" if codes is not None else ", no labels")
    if X_other is not None:
        subtitle += f"; other set: {len(X_other):,} products"
    page = Page("prodcat data exploration", subtitle=f"{subtitle}; written {stamp}")
    page.section("Summary", "summary")
    cards = {"products": f"{len(X):,}"}
    if "description" in X.columns:
        cards["empty descriptions"] = _pct(texts.empty_description.sum(), len(X))
    cards["duplicated titles"] = _pct((texts.title_key.duplicated(keep=False) & (texts.title_key != "")).sum(), len(X))
    if "description" in X.columns:
        cards["HTML in descriptions"] = _pct(texts.html["description"].sum(), len(X))
    languages = texts.languages.value_counts()
    if len(languages):
        cards[f"language: {languages.index[0]}"] = _pct(languages.iloc[0], len(X))
    page.cards(cards)
    if codes is not None:
        _class_section(page, codes, texts, out_dir, X.columns)
    _text_sections(page, X, texts, codes, out_dir)
    _duplicate_section(page, X, texts, codes, X_other)
    if image_sample > 0:
        _image_sections(page, X, codes, image_sample, seed, out_dir, progress)
    else:
        page.section("Images", "images")
        page.paragraph("Image statistics skipped (image_sample=0).", note=True)
    return page.write(out_dir / "eda.html")
