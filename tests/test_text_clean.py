"""Text cleaning: each step, the whole pipeline, and the scikit-learn transformer."""

from __future__ import annotations

import math
import pickle
from dataclasses import fields, replace

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.pipeline import make_pipeline

from prodcat.errors import DataError
from prodcat.text.clean import (
    CleaningConfig,
    TextCleaner,
    clean_steps,
    clean_text,
    clean_texts,
    merge_text,
    stem_word,
    stop_words,
    strip_accents,
    strip_html,
    texts_from,
)

FLAGS = [f.name for f in fields(CleaningConfig)]
NOTHING = CleaningConfig(**{name: False for name in FLAGS})


def only(*names: str) -> CleaningConfig:
    """A configuration with only the named steps on."""
    return replace(NOTHING, **{name: True for name in names})


def step(steps: list[tuple[str, str]], prefix: str) -> str:
    """The text after the step whose name starts with ``prefix``."""
    matches = [text for name, text in steps if name.startswith(prefix)]
    assert len(matches) == 1, (prefix, steps)
    return matches[0]


# --- the seeds' example --------------------------------------------------------------------


def test_seed_example_step_by_step() -> None:
    steps = clean_steps("Une table très jolie!", "Dimensions : 60 x 33 cm")
    names = [name for name, _ in steps]
    assert names == [
        "Merge columns", "Strip HTML", "Repair mojibake", "Detect language (fr)",
        "Drop non-alphanumerics", "Drop numbers", "Lower-case", "Strip accents",
        "Drop 1-character tokens", "Drop stop words", "Stem (french)",
    ]
    assert step(steps, "Merge") == "Une table très jolie! Dimensions : 60 x 33 cm"
    assert step(steps, "Drop non-alpha") == "Une table très jolie Dimensions 60 x 33 cm"
    assert step(steps, "Drop numbers") == "Une table très jolie Dimensions x cm"
    assert step(steps, "Lower") == "une table très jolie dimensions x cm"
    assert step(steps, "Strip accents") == "une table tres jolie dimensions x cm"
    assert step(steps, "Drop 1-char") == "une table tres jolie dimensions cm"
    final = steps[-1][1].split()
    # stems, no stop words, no accents, units kept
    assert final[0] == stem_word("table", "fr") == "tabl"
    assert stem_word("jolie", "fr") in final and stem_word("dimensions", "fr") in final
    assert "cm" in final and "une" not in final and "très" not in final
    merged = merge_text("Une table très jolie!", "Dimensions : 60 x 33 cm")
    assert steps[-1][1] == clean_text(merged)


def test_disabled_steps_are_not_listed() -> None:
    steps = clean_steps("Une table", "", only("lowercase", "stem"), language="fr")
    assert [name for name, _ in steps] == ["Merge columns", "Lower-case", "Stem (french)"]


# --- each step on its own ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("flag", "text", "expected"),
    [
        ("html", "<b>Bonjour</b>&nbsp;le&amp;monde<br>", "Bonjour le&monde"),
        ("mojibake", "TrÃ¨s jolie cafÃ©", "Très jolie café"),
        ("lowercase", "Table JOLIE", "table jolie"),
        ("accents", "Très Ärger cœur straße Œ", "Tres Arger coeur strasse OE"),
        ("non_alnum", "jolie! l'outil (60x33) snake_case", "jolie l outil 60x33 snake case"),
        ("numbers", "table 60 x 33 cm 4m50", "table x cm 4m50"),
        ("short_tokens", "a table x cm 中", "table cm"),
        ("stopwords", "la table et les chaises with the und mit", "table chaises"),
    ],
)
def test_each_step_alone(flag: str, text: str, expected: str) -> None:
    config = only(flag)
    assert clean_text(text, config) == expected
    assert clean_steps(text, "", config)[-1] == (clean_steps(text, "", config)[-1][0], expected)
    # and switching that step off in the full pipeline changes the result
    assert clean_text(text, replace(CleaningConfig(), **{flag: False})) != clean_text(text)


def test_stemming_alone_uses_the_given_language() -> None:
    assert clean_text("tables jolies", only("stem"), language="fr") == "tabl jol"
    assert clean_text("running shoes", only("stem"), language="en") == "run shoe"


def test_stemming_never_deletes_a_word() -> None:
    assert stem_word("H", "fr") in ("", "h")  # Snowball's French stemmer empties "H"...
    stemmed = clean_text("Dimensions 106 x H 75", only("stem"), language="fr")
    assert stemmed.split()[-2:] == ["H", "75"]


def test_all_steps_off_only_collapses_whitespace() -> None:
    assert clean_text("  Une  <b>Table</b>\n très! ", NOTHING) == "Une <b>Table</b> très!"


def test_switching_off_accents_keeps_them() -> None:
    assert clean_text("Écran", CleaningConfig(stem=False)) == "ecran"
    assert clean_text("Écran", CleaningConfig(stem=False, accents=False)) == "écran"


def test_numbers_inside_words_are_kept() -> None:
    no_stem = CleaningConfig(stem=False)
    assert clean_text("Console PS4 2x35 pièces 2019", no_stem) == "console ps4 2x35 pieces"
    assert "2019" in clean_text("Console PS4 2019", CleaningConfig(stem=False, numbers=False))


# --- HTML -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Luc a des id&eacute;es.<br> Il veut &ecirc;tre", "Luc a des idées. Il veut être"),
        ("poign&eacute;es d&#39;indexage &amp; coulissants", "poignées d'indexage & coulissants"),
        ('Couleur: Bleu<br> <span class=""vga_style2""><b></b><br>', "Couleur: Bleu"),
        ("un <strong>stand</strong> robuste", "un stand robuste"),
        ("double &amp;eacute;chappement", "double échappement"),
        ("texte &lt;br /&gt;suite", "texte suite"),
        ('fin coupée <span class="abc', "fin coupée"),
        ("avant <!-- commentaire --> apr&egrave;s", "avant après"),
        ("<style>p {color: red}</style>Texte<script>alert(1)</script>", "Texte"),
        ("taille < 3 cm et > 2 cm", "taille < 3 cm et > 2 cm"),
        ("\tligne 1\n\nligne\u00a02  ", "ligne 1 ligne 2"),
    ],
)
def test_strip_html(raw: str, expected: str) -> None:
    assert strip_html(raw) == expected


# --- mojibake ------------------------------------------------------------------------------


def test_mojibake_repaired_before_accents() -> None:
    steps = clean_steps("TrÃ¨s jolie")
    assert step(steps, "Repair mojibake") == "Très jolie"
    assert step(steps, "Strip accents") == "tres jolie"
    broken = clean_steps("TrÃ¨s jolie", "", replace(CleaningConfig(), mojibake=False))
    assert "tres" not in step(broken, "Strip accents").split()


def test_mojibake_with_curly_quote_and_degree() -> None:
    assert clean_text("lâ€™outil NÂ° 5", only("mojibake")) == "l’outil N° 5"


def test_accents_and_compatibility_forms() -> None:
    assert strip_accents("Ça coûte 5€ – m² ﬁn") == "Ca coute 5€ – m2 fin"
    assert strip_accents("e\u0301te\u0301") == "ete"  # decomposed accents
    assert strip_accents("plain ascii") == "plain ascii"


# --- stop words and languages -----------------------------------------------------------


def test_stop_words_union_with_and_without_accents() -> None:
    words = stop_words()
    assert {"le", "the", "und", "très", "tres", "à", "etre", "être"} <= words
    # product words are kept even though the generic lists contain them
    assert not {"microsoft", "mug", "cm", "tv", "pièce", "piece"} & words
    assert clean_text("Mug Microsoft TV", CleaningConfig(stem=False)) == "mug microsoft tv"


def test_german_and_english_texts_are_stemmed_in_their_language() -> None:
    german = "Schlafsack mit Applikation Sternchen für die kleinen Kinder"
    steps = clean_steps(german)
    assert step(steps, "Detect language") == german
    assert [name for name, _ in steps if name.startswith("Detect")] == ["Detect language (de)"]
    assert steps[-1][0] == "Stem (german)"
    tokens = clean_text(german).split()
    assert stem_word("sternchen", "de") in tokens and stem_word("kleinen", "de") in tokens
    assert stem_word("sternchen", "de") != stem_word("sternchen", "fr")

    english = "Running shoes for children with reflective stickers"
    assert clean_steps(english)[-1][0] == "Stem (english)"
    assert clean_text(english) == "run shoe children reflect sticker"


def test_given_language_overrides_detection() -> None:
    english = "Running shoes for children"
    assert clean_text(english, language="en") == "run shoe children"
    assert clean_text(english, language="fr") != clean_text(english, language="en")
    assert [n for n, _ in clean_steps(english, language="fr") if n.startswith("Detect")] == []


def test_detection_off_stems_in_french() -> None:
    config = replace(CleaningConfig(), detect_language=False)
    assert clean_text("Running shoes", config) == clean_text("Running shoes", language="fr")
    assert clean_steps("Running shoes", "", config)[-1][0] == "Stem (french)"


def test_languages_without_own_stemmer_fall_back_to_french() -> None:
    assert clean_text("tables jolies", language="it") == clean_text("tables jolies", language="fr")


# --- missing values --------------------------------------------------------------------------


@pytest.mark.parametrize("missing", [None, float("nan"), np.nan, pd.NA, "", "   "])
def test_missing_values(missing: object) -> None:
    assert clean_text(missing) == ""  # type: ignore[arg-type]
    assert merge_text(missing) == ""
    assert merge_text("Table", missing) == "Table"
    assert merge_text(missing, "Description") == "Description"
    assert clean_texts([missing, "Table"]) == ["", "tabl"]


def test_merge_text() -> None:
    assert merge_text(" Une table ", "  En bois ") == "Une table En bois"
    assert merge_text(123, None) == "123"
    assert clean_steps(None, None) == [(name, "") for name, _ in clean_steps(None, None)]


# --- scikit-learn transformer -------------------------------------------------------------------


def test_transformer_accepts_dataframes_and_sequences() -> None:
    frame = pd.DataFrame({"designation": ["Une table très jolie!", "Running shoes", None],
                          "description": ["Dimensions : 60 x 33 cm", np.nan, "Chaise"]})
    cleaner = TextCleaner()
    expected = [clean_text(merge_text(a, b)) for a, b in zip(frame.designation, frame.description)]
    assert cleaner.fit(frame) is cleaner
    assert cleaner.transform(frame) == expected
    assert cleaner.fit_transform(frame) == expected
    assert cleaner.transform(frame[["designation"]]) == [clean_text(t) for t in frame.designation]
    assert cleaner.transform(["Une table", None]) == [clean_text("Une table"), ""]
    assert cleaner.transform(pd.Series(["Une table"])) == [clean_text("Une table")]
    assert cleaner.transform(np.array(["Une table"])) == [clean_text("Une table")]
    assert cleaner.transform(frame.to_numpy()) == expected
    assert cleaner.transform(pd.DataFrame({"text": ["Une table"]})) == [clean_text("Une table")]
    assert cleaner.transform([]) == []


@pytest.mark.parametrize("bad", ["a single string", 42, pd.DataFrame({"title": ["x"]}),
                                 np.zeros((2, 3))])
def test_transformer_rejects_bad_input(bad: object) -> None:
    with pytest.raises(DataError):
        TextCleaner().transform(bad)


def test_transformer_parameters_switch_steps() -> None:
    assert TextCleaner(stem=False).transform(["Tables Jolies"]) == ["tables jolies"]
    keep_case = TextCleaner(stem=False, lowercase=False)
    assert keep_case.transform(["Tables Jolies"]) == ["Tables Jolies"]
    keep_markup = TextCleaner(html=False, non_alnum=False, stem=False)
    assert keep_markup.transform(["<b>x</b>"]) == ["<b>x</b>"]
    config = CleaningConfig(stem=False, numbers=False)
    assert TextCleaner.from_config(config).cleaning_config() == config
    assert set(TextCleaner().get_params()) == set(FLAGS)


def test_transformer_pickles_and_clones() -> None:
    cleaner = TextCleaner(stem=False, accents=False)
    restored = pickle.loads(pickle.dumps(cleaner))
    assert restored.get_params() == cleaner.get_params()
    assert restored.transform(["Écran Géant"]) == cleaner.transform(["Écran Géant"])
    assert restored.transform(["Écran Géant"]) == ["écran géant"]
    assert len(pickle.dumps(TextCleaner().fit(["Une table"]))) < 1000  # parameters only
    copy = clone(cleaner)
    assert copy is not cleaner and copy.get_params() == cleaner.get_params()


def test_transformer_in_a_pipeline() -> None:
    pipeline = make_pipeline(TextCleaner(), TfidfVectorizer())
    matrix = pipeline.fit_transform(["Une table très jolie", "Des tables jolies", "Running shoes"])
    vocabulary = pipeline[-1].vocabulary_
    assert matrix.shape[0] == 3 and {"tabl", "jol", "run"} <= set(vocabulary)


def test_texts_from_rejects_wide_arrays() -> None:
    with pytest.raises(DataError, match="shape"):
        texts_from(np.zeros((1, 3), dtype=object))


# --- real data ---------------------------------------------------------------------------------


def test_fast_path_matches_step_by_step_on_real_rows(shared_data) -> None:
    x = pd.read_csv(shared_data / "rakuten_sample" / "X_train_sample.csv", index_col=0)
    rows = list(zip(x["designation"], x["description"]))[:200]
    merged = [merge_text(a, b) for a, b in rows]
    for config in (CleaningConfig(), CleaningConfig(stem=False, numbers=False),
                   CleaningConfig(lowercase=False, accents=False), only("html", "stem")):
        batch = clean_texts(merged, config)
        for (designation, description), text, cleaned in zip(rows, merged, batch):
            assert clean_steps(designation, description, config)[-1][1] == cleaned
            assert clean_text(text, config) == cleaned


def test_real_rows_are_clean(shared_data) -> None:
    x = pd.read_csv(shared_data / "rakuten_sample" / "X_train_sample.csv", index_col=0)
    cleaned = TextCleaner().transform(x)
    assert len(cleaned) == len(x)
    joined = " ".join(cleaned)
    assert joined.isascii() and joined == joined.lower()
    for leftover in ("<br", "&eacute", "&#39", "span", "  "):
        assert leftover not in joined
    assert not math.isnan(len(joined)) and all(cleaned)
    # row 4: description full of HTML entities
    assert "ide" in cleaned[4].split() and "grandeur" in cleaned[4].split()
