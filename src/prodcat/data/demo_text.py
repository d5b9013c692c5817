"""Titles and descriptions for the demo dataset, built from :mod:`prodcat.data.demo_vocabulary`.

Each row gets a *text mode* that sets how much its text says about its class:

- ``clear``: class words (with words shared by its family), the usual case;
- ``family``: only family words (e.g. a bare work title for a book or a console game);
- ``generic``: catalogue filler ("Lot De 3 Articles") that says nothing of the class;
- ``neighbour``: written like a product of a confusable class (label-noise-like ambiguity).

The image generator uses the mode too: rows with uninformative text keep a faithful image,
which is what lets a text + image model beat a text-only one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from prodcat.data.demo_vocabulary import (
    CLASSES,
    FAMILIES,
    FEATURE_LABELS,
    GLOBAL,
    HTML_CLASSES,
    WORK_SLOTS,
    ClassVocabulary,
    Slots,
)

TEXT_MODES: tuple[str, ...] = ("clear", "family", "generic", "neighbour")
_SLOT = re.compile(r"\{([a-z_0-9]+)\}")
_ENTITIES = {
    "é": "&eacute;", "è": "&egrave;", "ê": "&ecirc;", "à": "&agrave;", "â": "&acirc;", "ç": "&ccedil;",
    "ô": "&ocirc;", "î": "&icirc;", "ù": "&ugrave;", "û": "&ucirc;", "É": "&Eacute;", "ë": "&euml;",
    "'": "&#39;", '"': "&quot;", "°": "&deg;",
}


@dataclass(frozen=True)
class TextMix:
    """Shares that shape the generated text (defaults imitate the real catalogue)."""

    mode_weights: tuple[float, float, float, float] = (0.82, 0.09, 0.05, 0.04)
    german: float = 0.08
    english: float = 0.10
    mojibake: float = 0.045
    html: float = 0.55
    entities: float = 0.2
    title_entity: float = 0.03
    upper_title: float = 0.03


@dataclass(frozen=True)
class TextRow:
    """One generated product text."""

    designation: str
    description: str
    mode: str
    lang: str
    shown_code: int


def _numeric(name: str, rng: np.random.Generator) -> str | None:
    """Values of the numeric slots; ``None`` when ``name`` is not numeric."""
    if name == "n":
        return str(int(rng.integers(2, 13)) if rng.random() < 0.8 else int(rng.integers(13, 120)))
    if name == "small":
        return str(int(rng.integers(1, 6)))
    if name == "cm":
        return str(int(rng.integers(5, 81)))
    if name == "dim":
        return str(int(rng.integers(2, 51)) * 5)
    if name == "n3":
        return str(int(rng.integers(100, 400)))
    if name == "n4":
        return str(int(rng.integers(1000, 10000)))
    if name == "year_old":
        return str(int(rng.integers(1850, 1986)))
    if name == "year_new":
        return str(int(rng.integers(1995, 2021)))
    if name == "year_any":
        return str(int(rng.integers(1900, 2021)))
    if name == "date_old":
        return f"{int(rng.integers(1, 29)):02d}/{int(rng.integers(1, 13)):02d}/{int(rng.integers(1850, 1980))}"
    if name == "issue":
        return str(int(rng.integers(1, 3500)))
    if name == "pegi":
        return str(rng.choice(["3", "7", "12", "16", "18"]))
    return None


class _Filler:
    """Fills ``{slot}`` templates for one class and language."""

    def __init__(self, code: int, lang: str, rng: np.random.Generator) -> None:
        vocab = CLASSES[code]
        family = FAMILIES[vocab.family]
        self._rng = rng
        self._tables: list[Slots] = []
        for source in (vocab.slots, family.slots, GLOBAL, WORK_SLOTS):
            self._tables.append(source.get(lang, {}))
            self._tables.append(source.get("*", {}))
        for source in (vocab.slots, family.slots, GLOBAL, WORK_SLOTS):
            self._tables.append(source.get("fr", {}))

    def choice(self, options: tuple[str, ...]) -> str:
        return options[int(self._rng.integers(len(options)))]

    def fill(self, template: str, depth: int = 0) -> str:
        if depth > 6:
            raise RecursionError(f"demo vocabulary: slots nest too deep in {template!r}")
        return _SLOT.sub(lambda match: self._value(match.group(1), depth), template)

    def _value(self, name: str, depth: int) -> str:
        number = _numeric(name, self._rng)
        if number is not None:
            return number
        for table in self._tables:
            if name in table:
                return self.fill(self.choice(table[name]), depth + 1)
        raise KeyError(f"demo vocabulary: no words for slot {{{name}}}")


def fill_template(template: str, code: int, lang: str, rng: np.random.Generator) -> str:
    """Fill every ``{slot}`` of ``template`` with words of class ``code`` in ``lang``."""
    return _Filler(code, lang, rng).fill(template)


def _templates(table: dict[str, tuple[str, ...]], lang: str) -> tuple[str, ...]:
    return table.get(lang) or table["fr"]


def _sentences(vocab: ClassVocabulary, lang: str, mode: str) -> tuple[str, ...]:
    family = FAMILIES[vocab.family]
    if mode == "generic":
        return GLOBAL[lang]["generic_sentence"]
    if mode == "family":
        return family.sentences.get(lang) or GLOBAL[lang]["generic_sentence"]
    return vocab.sentences.get(lang) or family.sentences.get(lang) or GLOBAL[lang]["generic_sentence"]


def title_case(text: str) -> str:
    """Capitalise each space-separated word the way the catalogue does ("L'art Et Son Marche")."""
    return " ".join(word[:1].upper() + word[1:].lower() for word in text.split(" "))


def to_entities(text: str) -> str:
    """Write accents and quotes as HTML entities (``é`` -> ``&eacute;``, ``'`` -> ``&#39;``)."""
    text = text.replace("&", "&amp;")
    return "".join(_ENTITIES.get(char, char) for char in text)


def to_mojibake(text: str) -> str:
    """UTF-8 bytes read as Windows-1252 (Latin-1 for its holes): ``é`` -> ``Ã©``."""
    out = []
    for byte in text.encode("utf-8"):
        try:
            out.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(bytes([byte]).decode("latin-1"))
    return "".join(out)


def _html(sentences: list[str], filler: _Filler, lang: str, rng: np.random.Generator) -> str:
    style = int(rng.integers(5))
    if style == 0:
        text = "<br>".join(sentences) + ("<br>" if rng.random() < 0.5 else "")
    elif style == 1:
        text = "".join(f"<p>{sentence}</p>" for sentence in sentences)
    elif style == 2:
        label = filler.choice(FEATURE_LABELS[lang])
        items = "".join(f"<li>{sentence}</li>" for sentence in sentences[1:]) or "<li></li>"
        text = f"{sentences[0]}<br /><b>{label}</b><ul>{items}</ul>"
    elif style == 3:
        first, *rest = sentences
        words = first.split(" ")
        cut = int(rng.integers(1, len(words) + 1))
        bold = "strong" if rng.random() < 0.5 else "b"
        text = f"<{bold}>{' '.join(words[:cut])}</{bold}> {' '.join(words[cut:])} " + "<br> ".join(rest)
    else:
        css = filler.choice(HTML_CLASSES)
        text = f'<span class="{css}">' + " ".join(sentences) + "</span>"
    if rng.random() < 0.15:
        text += f'<br> <span class="{filler.choice(HTML_CLASSES)}"><b></b><br>'
    return text


def _description(vocab: ClassVocabulary, filler: _Filler, lang: str, mode: str,
                 mix: TextMix, rng: np.random.Generator) -> str:
    empty = {"clear": vocab.empty_description, "neighbour": vocab.empty_description,
             "family": max(vocab.empty_description, 0.4), "generic": 0.5}[mode]
    if rng.random() < empty:
        return ""
    own = _sentences(vocab, lang, mode)
    generic = GLOBAL[lang]["generic_sentence"]
    count = int(rng.integers(1, 6))
    pool = list(dict.fromkeys([*own, *generic]))
    weights = np.array([2.0 / len(own) if t in own else 1.0 / len(generic) for t in pool])
    chosen = rng.choice(len(pool), size=min(count, len(pool)), replace=False, p=weights / weights.sum())
    picked = [filler.fill(pool[i]) for i in chosen]
    if rng.random() < mix.entities:
        picked = [to_entities(sentence) for sentence in picked]
    return _html(picked, filler, lang, rng) if rng.random() < mix.html else " ".join(picked)


def make_text(code: int, rng: np.random.Generator, mix: TextMix = TextMix()) -> TextRow:
    """Generate the designation and description of one product of class ``code``."""
    mode = TEXT_MODES[int(rng.choice(len(TEXT_MODES), p=np.asarray(mix.mode_weights) / sum(mix.mode_weights)))]
    draw = rng.random()
    lang = "de" if draw < mix.german else "en" if draw < mix.german + mix.english else "fr"
    shown = code
    if mode == "neighbour":
        neighbours = CLASSES[code].neighbours
        shown = neighbours[int(rng.integers(len(neighbours)))]
    vocab = CLASSES[shown]
    filler = _Filler(shown, lang, rng)
    if mode == "generic":
        title = filler.fill(filler.choice(GLOBAL[lang]["generic_title"]))
    elif mode == "family":
        title = filler.fill(filler.choice(_templates(FAMILIES[vocab.family].templates, lang)))
    else:
        title = filler.fill(filler.choice(_templates(vocab.templates, lang)))
        if rng.random() < 0.08:
            title += " " + filler.fill("{ref}")
    if rng.random() < mix.upper_title:
        title = title.upper()
    elif rng.random() < vocab.title_case:
        title = title_case(title)
    if rng.random() < mix.title_entity:
        title = title.replace("&", "&amp;").replace("+", "&#43;").replace("'", "&#39;")
    description = _description(vocab, filler, lang, mode, mix, rng)
    if rng.random() < mix.mojibake:
        where = rng.random()
        if where < 0.6 or not description:
            title = to_mojibake(title)
        if where >= 0.4 and description:
            description = to_mojibake(description)
    return TextRow(designation=title, description=description, mode=mode, lang=lang, shown_code=shown)
