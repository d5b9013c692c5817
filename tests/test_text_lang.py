"""Language detection (py3langid model, restricted to a few European languages)."""

from __future__ import annotations

import pandas as pd
import pytest

from prodcat.text import lang
from prodcat.text.lang import LANGUAGES, MAX_CHARS, UNKNOWN, detect_language, detect_languages

FRENCH = "Une table très jolie en bois massif, livrée avec quatre chaises assorties"
ENGLISH = "The timeless seat can now be paired with more types of legs and a wooden frame"
GERMAN = "Personalisiertes Notizbuch mit Punktraster und schönem Rosen-Design für die Schule"


@pytest.mark.parametrize(("text", "expected"), [(FRENCH, "fr"), (ENGLISH, "en"), (GERMAN, "de")])
def test_detects_clear_sentences(text: str, expected: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize("blank", ["", "   ", "\n\t", None])
def test_blank_text_is_unknown(blank: str | None) -> None:
    assert detect_language(blank) == UNKNOWN
    assert detect_languages([blank, FRENCH]) == [UNKNOWN, "fr"]


def test_empty_input_gives_empty_list() -> None:
    assert detect_languages([]) == []
    assert detect_languages(iter(())) == []


def test_batched_scoring_matches_one_by_one() -> None:
    # Enough texts for the vectorised walk; every answer must equal the single-text path.
    texts = [FRENCH, ENGLISH, GERMAN, "", "Peluche Donald Disneyland",
             "Bildungsprozessen Auf Der Spur", "Schlafsack mit Applikation",
             "Coque silicone pour iPhone"] * 20
    texts += [t[: 5 + i % 40] for i, t in enumerate(texts)]
    batched = detect_languages(texts)
    assert len(batched) == len(texts) > lang._VECTOR_MIN
    assert batched == [detect_language(t) for t in texts]
    assert set(batched) <= set(LANGUAGES) | {UNKNOWN}


def test_only_the_beginning_is_read() -> None:
    french = ((FRENCH + " ") * 10)[:MAX_CHARS]
    long_text = french + (GERMAN + " ") * 20
    assert detect_language(long_text[MAX_CHARS:]) == "de"
    assert detect_language(long_text) == "fr"
    assert detect_languages([long_text] * (lang._VECTOR_MIN + 1))[0] == "fr"


def test_title_case_and_upper_case_titles() -> None:
    assert detect_language("Grand Stylet Ergonomique Bleu Pour Manette De Jeu") == "fr"
    assert detect_language("CAHIER DE TEXTE POUR L'ECOLE AVEC COUVERTURE RIGIDE") == "fr"


def test_model_is_loaded_once() -> None:
    detect_language(FRENCH)
    assert lang._get_detector() is lang._get_detector()


def test_real_sample_rows(shared_data) -> None:
    x = pd.read_csv(shared_data / "rakuten_sample" / "X_train_sample.csv", index_col=0)
    titles = x["designation"].tolist()
    found = detect_languages(titles)
    # German, English and French titles from the official training file
    assert titles[0].startswith("Olivia: Personalisiertes Notizbuch") and found[0] == "de"
    assert titles[6].startswith("Christof E: Bildungsprozessen") and found[6] == "de"
    assert titles[10].startswith("Eames Inspired Sxw Chair") and found[10] == "en"
    assert titles[2].startswith("Grand Stylet Ergonomique") and found[2] == "fr"
    # The catalogue is mostly French
    assert found.count("fr") / len(found) > 0.7
