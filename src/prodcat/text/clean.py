"""Text cleaning pipeline for product titles and descriptions.

Steps, in order (each can be switched off with :class:`CleaningConfig`)::

    merge columns -> strip HTML -> repair mojibake -> detect language
    -> drop non-alphanumerics -> drop numbers -> lower-case -> strip accents
    -> drop 1-character tokens -> drop stop words -> stem (language of the text)

:func:`clean_steps` runs the steps one by one and shows each result (the CLI prints it as a
table); :func:`clean_text` and :func:`clean_texts` give the same final text through a fast
path: the text-level steps run on the whole string, then everything from "drop
non-alphanumerics" on is decided once per distinct whitespace-separated chunk and remembered
(product vocabularies repeat a lot, and Snowball stemmers are slow pure Python).
:class:`TextCleaner` wraps it for scikit-learn.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from tqdm.auto import tqdm

from ..errors import DataError
from .encoding import fix_mojibake
from .lang import UNKNOWN, detect_language, detect_languages

DEFAULT_LANGUAGE = "fr"
"""Language used for stemming when detection is off or finds a language without a stemmer."""

STEMMER_LANGUAGES: dict[str, str] = {"fr": "french", "en": "english", "de": "german"}
"""Languages stemmed with their own Snowball stemmer; others use :data:`DEFAULT_LANGUAGE`'s
(short French titles are often mistaken for Italian, Spanish or Portuguese)."""

STOP_WORD_LANGUAGES: tuple[str, ...] = ("fr", "en", "de")
"""The stop-word lists (``stop-words`` package) whose union is removed from every text."""

PRODUCT_WORDS: frozenset[str] = frozenset(
    # English list: brands, objects and units that name products in this catalogue
    "microsoft computer mug ring hello home room rooms fire force system world case keys "
    "little new old top pro big small large thick thin long high low full open face parts "
    "page pages tip men man card year years hat war car tv cd gb dj gt cm mm kg km ml mg gr "
    "vol vols "
    # French list: nouns that tell products apart (sac a dos, bon etat, 6 personnes...)
    "dos bon état pièce personne personnes dessous plein voie haut grande mot point".split()
)
"""Words of the generic stop-word lists kept anyway: they carry product meaning here
(the English list, 1,333 words, would otherwise remove ``microsoft``, ``mug``, ``cm``...)."""

_PROGRESS_MIN = 20_000  # show a progress bar (on a terminal) from this many texts
_CHUNK = 8192  # texts prepared, detected and finished together
_TOKEN_CACHE_MAX = 500_000  # distinct chunks remembered per configuration and language


@dataclass(frozen=True)
class CleaningConfig:
    """Which cleaning steps run (all on by default); see the module docstring for the order."""

    html: bool = True
    """Strip HTML tags, unescape entities (``&eacute;``, ``&#39;``), collapse whitespace."""
    mojibake: bool = True
    """Repair text decoded with the wrong charset (``TrÃ¨s`` -> ``Très``)."""
    lowercase: bool = True
    accents: bool = True
    """Remove diacritics and expand ligatures (``é`` -> ``e``, ``œ`` -> ``oe``)."""
    non_alnum: bool = True
    """Replace everything but letters and digits with spaces."""
    numbers: bool = True
    """Drop tokens made only of digits (``60 x 33 cm`` -> ``x cm``), as in the seed project."""
    short_tokens: bool = True
    """Drop tokens of one character."""
    stopwords: bool = True
    """Drop French, English and German stop words (minus :data:`PRODUCT_WORDS`)."""
    stem: bool = True
    """Reduce words to their Snowball stem, in the language of the text."""
    detect_language: bool = True
    """Detect each text's language for stemming; off: :data:`DEFAULT_LANGUAGE`."""


_FLAG_NAMES: tuple[str, ...] = tuple(f.name for f in fields(CleaningConfig))

# --- text-level steps --------------------------------------------------------------------

_HTML_BLOCK = re.compile(r"<(script|style)\b[^>]*>.*?(?:</\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.DOTALL)
# A tag: "<" + optional "/" + a letter; it ends at ">", before the next "<", or at the end
# of the text (broken or truncated markup such as '<span class="x' is still removed).
_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*(?:>|(?=<)|$)")
_HTML_CLOSED_TAG = re.compile(r"</?[A-Za-z][^<>]*>")
_NON_ALNUM = re.compile(r"[\W_]+")
# A UTF-8 lead byte read as Latin-1/cp1252 followed by a continuation byte read the same
# way (é -> "Ã©", ’ -> "â€™", ° -> "Â°"), or a lone "Ã"/"Â": only then is ftfy (slow) run.
_MOJIBAKE_HINT = re.compile(
    "[\u00c2-\u00f4](?:(?<=[\u00c2\u00c3])|[\u0080-\u00bf"
    "\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc\u2013\u2014\u2018"
    "\u2019\u201a\u201c\u201d\u201e\u2020\u2021\u2022\u2026\u2030\u2039\u203a\u20ac\u2122])"
)


def strip_html(text: str) -> str:
    """Remove HTML tags, comments and scripts, unescape entities, collapse whitespace."""
    if "<" in text:
        text = _HTML_BLOCK.sub(" ", text)
        text = _HTML_COMMENT.sub(" ", text)
        text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html_lib.unescape(text)
        if "&" in text:  # double-escaped entities: "&amp;eacute;"
            text = html_lib.unescape(text)
        if "<" in text:  # escaped markup: "&lt;br /&gt;"
            text = _HTML_CLOSED_TAG.sub(" ", text)
    return " ".join(text.split())


def repair_mojibake(text: str) -> str:
    """:func:`~prodcat.text.encoding.fix_mojibake`, run only when the text looks broken."""
    if text.isascii() or not _MOJIBAKE_HINT.search(text):
        return text
    return fix_mojibake(text)


_LIGATURES = {"ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o",
              "Ø": "O", "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "ı": "i", "þ": "th", "Þ": "TH"}


@functools.cache
def _accent_table() -> dict[int, str | None]:
    table: dict[int, str | None] = {}
    ranges = (range(0x80, 0x3000), range(0xFB00, 0xFB07), range(0xFF01, 0xFF5F))
    for code in (c for r in ranges for c in r):
        char = chr(code)
        if unicodedata.combining(char):
            table[code] = None
            continue
        if char in _LIGATURES:
            table[code] = _LIGATURES[char]
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        if base and base != char and not any(c.isspace() for c in base):
            table[code] = base if char.isupper() else base.lower()
    return table


def strip_accents(text: str) -> str:
    """Remove diacritics and expand ligatures and compatibility forms (``Œuvré`` -> ``Oeuvre``)."""
    return text if text.isascii() else text.translate(_accent_table())


# --- token-level steps -------------------------------------------------------------------


@functools.cache
def stop_words() -> frozenset[str]:
    """Union of the French, English and German stop words, with and without accents."""
    from stop_words import get_stop_words

    words = {w.lower() for lang in STOP_WORD_LANGUAGES for w in get_stop_words(lang)}
    words |= {strip_accents(w) for w in words}
    kept = PRODUCT_WORDS | {strip_accents(w) for w in PRODUCT_WORDS}
    return frozenset(words - kept)


_stem_lock = threading.Lock()  # Snowball stemmer objects keep state between calls


@functools.cache
def _stemmer(language: str) -> Any:
    import snowballstemmer

    return snowballstemmer.stemmer(STEMMER_LANGUAGES[language])


def stem_language(language: str | None) -> str:
    """The stemmer used for ``language``: itself for fr/en/de, :data:`DEFAULT_LANGUAGE` else."""
    return language if language in STEMMER_LANGUAGES else DEFAULT_LANGUAGE


def stem_word(word: str, language: str | None = DEFAULT_LANGUAGE) -> str:
    """Snowball stem of ``word`` for ``language`` (see :func:`stem_language`)."""
    return _stem_cached(word, stem_language(language))


@functools.lru_cache(maxsize=1 << 18)
def _stem_cached(word: str, language: str) -> str:
    stemmer = _stemmer(language)
    with _stem_lock:
        return stemmer.stemWord(word)


def _clean_word(token: str, config: CleaningConfig, language: str) -> str:
    """Every step from "drop numbers" on, for one token; "" when the token is dropped."""
    if config.numbers and token.isdigit():
        return ""
    if config.lowercase:
        token = token.lower()
    if config.accents:
        token = strip_accents(token)
    if config.short_tokens and len(token) <= 1:
        return ""
    if config.stopwords and (token if config.lowercase else token.lower()) in stop_words():
        return ""
    if config.stem and token:
        token = stem_word(token, language) or token  # French Snowball turns "H" into ""
    return token


def _clean_chunk(chunk: str, config: CleaningConfig, language: str) -> str:
    """Every step from "drop non-alphanumerics" on, for one whitespace-separated chunk
    (which may hold several words: ``l'outil``); "" when nothing is left."""
    words = _NON_ALNUM.sub(" ", chunk).split() if config.non_alnum else [chunk]
    return " ".join(filter(None, (_clean_word(w, config, language) for w in words)))


class _TokenCache(dict):
    """Whitespace-separated chunk -> cleaned text, for one configuration and language."""

    def __init__(self, config: CleaningConfig, language: str) -> None:
        super().__init__()
        self.config = config
        self.language = language

    def __missing__(self, chunk: str) -> str:
        if len(self) >= _TOKEN_CACHE_MAX:
            self.clear()
        cleaned = self[chunk] = _clean_chunk(chunk, self.config, self.language)
        return cleaned


_token_caches: dict[tuple[CleaningConfig, str], _TokenCache] = {}


def _token_cache(config: CleaningConfig, language: str) -> _TokenCache:
    key = (config, language)
    cache = _token_caches.get(key)
    if cache is None:
        cache = _token_caches.setdefault(key, _TokenCache(config, language))
    return cache


# --- pipeline ----------------------------------------------------------------------------


def _as_text(value: object) -> str:
    """A cell as text: None, NaN, NaT and pd.NA become ""."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    try:
        if value != value:  # NaN, NaT
            return ""
    except TypeError:  # pd.NA
        return ""
    except ValueError:  # arrays
        pass
    return str(value)


def merge_text(designation: object, description: object = None) -> str:
    """Title and description joined by a space; missing parts (None, NaN, "") are skipped."""
    title = _as_text(designation).strip()
    body = _as_text(description).strip()
    return f"{title} {body}" if title and body else title or body


def _prepare(text: str, config: CleaningConfig) -> str:
    """Text-level steps before language detection: HTML, then mojibake."""
    if not text.isascii() and not unicodedata.is_normalized("NFC", text):
        text = unicodedata.normalize("NFC", text)
    if config.html:
        text = strip_html(text)
    if config.mojibake:
        text = repair_mojibake(text)
    return text


def _finish(text: str, config: CleaningConfig, language: str) -> str:
    """Steps after language detection, each whitespace-separated chunk decided once."""
    cache = _token_cache(config, language)
    return " ".join(filter(None, map(cache.__getitem__, text.split())))


def _language_for_stemming(text: str, config: CleaningConfig, language: str | None) -> str:
    if not config.stem:
        return DEFAULT_LANGUAGE
    if language is None and config.detect_language:
        language = detect_language(text)
    return stem_language(language)


def clean_text(text: str | None, config: CleaningConfig = CleaningConfig(),
               language: str | None = None) -> str:
    """Clean one text. ``language`` (ISO code) skips detection and picks the stemmer."""
    text = _as_text(text)
    if not text:
        return ""
    prepared = _prepare(text, config)
    return _finish(prepared, config, _language_for_stemming(prepared, config, language))


def clean_texts(texts: Iterable[str | None], config: CleaningConfig = CleaningConfig(), *,
                progress: bool | None = None) -> list[str]:
    """Clean many texts (languages detected in batches). Same result as :func:`clean_text`.

    ``progress``: True/False forces the progress bar; None shows it from 20,000 texts on a
    terminal.
    """
    items = [_as_text(t) for t in texts]
    disable = (not progress) if progress is not None else (True if len(items) < _PROGRESS_MIN
                                                          else None)
    cleaned: list[str] = []
    with tqdm(total=len(items), desc="Cleaning text", unit="text", disable=disable) as bar:
        for start in range(0, len(items), _CHUNK):
            chunk = [_prepare(t, config) if t else "" for t in items[start:start + _CHUNK]]
            if config.stem and config.detect_language:
                languages = [stem_language(lang) for lang in detect_languages(chunk)]
            else:
                languages = [DEFAULT_LANGUAGE] * len(chunk)
            cleaned.extend(_finish(t, config, lang) if t else ""
                           for t, lang in zip(chunk, languages))
            bar.update(len(chunk))
    return cleaned


def clean_steps(designation: object, description: object = "",
                config: CleaningConfig = CleaningConfig(),
                language: str | None = None) -> list[tuple[str, str]]:
    """(step name, text after it) for each enabled step, in order, starting with the merge.

    The last text equals ``clean_text(merge_text(designation, description), config, language)``.
    """
    text = merge_text(designation, description)
    steps = [("Merge columns", text)]
    if text and not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if config.html:
        text = strip_html(text)
        steps.append(("Strip HTML", text))
    if config.mojibake:
        text = repair_mojibake(text)
        steps.append(("Repair mojibake", text))
    if config.detect_language and language is None:
        detected = detect_language(text)
        steps.append((f"Detect language ({detected})", text))
        if detected != UNKNOWN:
            language = detected
    stemming = stem_language(language)

    def keep(name: str, tokens: list[str]) -> list[str]:
        steps.append((name, " ".join(tokens)))
        return tokens

    if config.non_alnum:
        text = _NON_ALNUM.sub(" ", text)
        keep("Drop non-alphanumerics", text.split())
    tokens = text.split()
    if config.numbers:
        tokens = keep("Drop numbers", [t for t in tokens if not t.isdigit()])
    if config.lowercase:
        tokens = keep("Lower-case", [t.lower() for t in tokens])
    if config.accents:
        tokens = keep("Strip accents", [t for t in map(strip_accents, tokens) if t])
    if config.short_tokens:
        tokens = keep("Drop 1-character tokens", [t for t in tokens if len(t) > 1])
    if config.stopwords:
        stops = stop_words()
        tokens = keep("Drop stop words",
                      [t for t in tokens if (t if config.lowercase else t.lower()) not in stops])
    if config.stem:
        keep(f"Stem ({STEMMER_LANGUAGES[stemming]})",
             [stem_word(t, stemming) or t for t in tokens if t])
    return steps


# --- scikit-learn ------------------------------------------------------------------------


def texts_from(X: object) -> list[str]:
    """Texts from a DataFrame (``designation`` [+ ``description``], or ``text``), a Series,
    a 1-D sequence of strings, or a 2-D array of (designation[, description]) rows."""
    import pandas as pd

    if isinstance(X, pd.DataFrame):
        if "designation" in X.columns:
            titles = X["designation"].tolist()
            if "description" in X.columns:
                return [merge_text(t, d) for t, d in zip(titles, X["description"].tolist())]
            return [merge_text(t) for t in titles]
        if "text" in X.columns:
            return [merge_text(t) for t in X["text"].tolist()]
        raise DataError(f"expected a 'designation' column (and optionally 'description'), "
                        f"got columns {list(map(str, X.columns))}")
    if isinstance(X, pd.Series):
        return [merge_text(t) for t in X.tolist()]
    if isinstance(X, (str, bytes)):
        raise DataError("expected a sequence of texts, got a single string; wrap it in a list")
    if isinstance(X, np.ndarray):
        if X.ndim == 1:
            return [merge_text(t) for t in X.tolist()]
        if X.ndim == 2 and X.shape[1] in (1, 2):
            return [merge_text(*row) for row in X.tolist()]
        raise DataError(f"expected a 1-D array of texts or 2-D (designation, description) "
                        f"rows, got an array of shape {X.shape}")
    if isinstance(X, Iterable):
        return [merge_text(t) for t in X]
    raise DataError(f"expected a DataFrame or a sequence of texts, got {type(X).__name__}")


class TextCleaner(TransformerMixin, BaseEstimator):
    """scikit-learn transformer: product rows or texts -> list of cleaned texts.

    Each parameter switches one step of :class:`CleaningConfig` on or off. Stateless:
    ``fit`` learns nothing; caches live in the module, so the object pickles as its
    parameters only.
    """

    def __init__(self, html: bool = True, mojibake: bool = True, lowercase: bool = True,
                 accents: bool = True, non_alnum: bool = True, numbers: bool = True,
                 short_tokens: bool = True, stopwords: bool = True, stem: bool = True,
                 detect_language: bool = True) -> None:
        self.html = html
        self.mojibake = mojibake
        self.lowercase = lowercase
        self.accents = accents
        self.non_alnum = non_alnum
        self.numbers = numbers
        self.short_tokens = short_tokens
        self.stopwords = stopwords
        self.stem = stem
        self.detect_language = detect_language

    @classmethod
    def from_config(cls, config: CleaningConfig) -> TextCleaner:
        """A cleaner running the steps that ``config`` enables."""
        return cls(**asdict(config))

    def cleaning_config(self) -> CleaningConfig:
        """The :class:`CleaningConfig` built from the current parameters."""
        return CleaningConfig(**{name: bool(getattr(self, name)) for name in _FLAG_NAMES})

    def fit(self, X: object, y: object = None) -> TextCleaner:
        """Nothing to learn; returns ``self``."""
        return self

    def transform(self, X: object) -> list[str]:
        """Cleaned text of each row (see :func:`texts_from` for accepted inputs)."""
        return clean_texts(texts_from(X), self.cleaning_config())

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.string = True
        tags.input_tags.one_d_array = True
        tags.input_tags.two_d_array = True
        tags.input_tags.allow_nan = True
        return tags

