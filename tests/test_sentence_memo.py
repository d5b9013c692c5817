"""Inside sentence_memo(), each distinct text is encoded once; outside, nothing is kept."""

from __future__ import annotations

import numpy as np

from prodcat.models import sentence
from prodcat.models.sentence import encode_sentences, sentence_memo


def test_a_fit_encodes_each_text_once(monkeypatch) -> None:
    texts = ["drone camera 4k", "piscine tubulaire", "livre de poche"]
    plain = encode_sentences(texts)
    encoded: list[str] = []
    real = sentence._encoder(1)

    class Counting:
        def encode(self, chunk):
            encoded.extend(chunk)
            return real.encode(chunk)

    monkeypatch.setattr(sentence, "_encoder", lambda threads: Counting())
    with sentence_memo():
        first = encode_sentences(texts[:2])
        both = encode_sentences(texts)
        with sentence_memo():  # nested: the same memo
            again = encode_sentences(texts[::-1])
    assert encoded == texts  # each text once, however many calls read it
    np.testing.assert_allclose(both, plain, atol=1e-6)
    np.testing.assert_allclose(first, plain[:2], atol=1e-6)
    np.testing.assert_allclose(again, plain[::-1], atol=1e-6)
    assert sentence._memo is None
    encode_sentences(texts[:1])
    assert encoded == texts + texts[:1]  # outside the block every call encodes
