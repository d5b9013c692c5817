"""Language identification with the model bundled in ``py3langid`` (offline).

The catalogue is mostly French with some English and German titles, so the model is
restricted to a few European languages: restricting it removes absurd answers on short
product titles and makes scoring cheaper.

Speed: py3langid walks a byte automaton in pure Python and then scores with numpy. For
many texts, :func:`detect_languages` walks every text, then scores them all with one
sparse matrix product, which avoids the per-text numpy overhead (about 3-5x faster than
calling ``classify`` per text). Only the first :data:`MAX_CHARS` characters are read:
longer descriptions barely change the answer but cost linear time.
"""

from __future__ import annotations

import threading
import unicodedata
from collections.abc import Iterable

import numpy as np
from scipy import sparse

from ..errors import ModelError

LANGUAGES: tuple[str, ...] = ("fr", "en", "de", "es", "it", "nl", "pt")
"""ISO 639-1 codes the detector may return (besides :data:`UNKNOWN`)."""

UNKNOWN = "unknown"
"""Returned for empty or blank text, or text with no usable character."""

MAX_CHARS = 300
"""Only this many leading characters are used for detection."""

_CHUNK = 8192  # texts scored together (bounds memory: _CHUNK x MAX_CHARS bytes)
_VECTOR_MIN = 96  # below this many texts, walking each text in Python is faster

_detector: _Detector | None = None
_detector_lock = threading.Lock()


class _Detector:
    """py3langid's naive Bayes model restricted to :data:`LANGUAGES`, scored in batches."""

    def __init__(self) -> None:
        try:
            from py3langid.langid import MODEL_FILE, LanguageIdentifier

            identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
            identifier.set_languages(list(LANGUAGES))
        except Exception as exc:  # pragma: no cover - depends on the installed package
            raise ModelError(f"cannot load the py3langid language model: {exc}") from exc
        self._identifier = identifier
        try:
            self._nextmove = identifier.tk_nextmove
            self._rowbase = [row << 8 for row in identifier.tk_row]
            self._output = identifier.tk_output
            self._table = np.ascontiguousarray(identifier.nb_ptc, dtype=np.float32)
            self._prior = np.asarray(identifier.nb_pc, dtype=np.float32)
            self._classes = np.asarray(list(identifier.nb_classes), dtype=object)
            self._nextmove_np = np.frombuffer(identifier.tk_nextmove,
                                              dtype=identifier.tk_nextmove.typecode)
            self._rowbase_np = np.asarray(self._rowbase, dtype=np.int64)
            self._output_np = np.asarray(identifier.tk_output, dtype=np.int64)
            self._batched = len(set(identifier.nb_classes)) == len(identifier.nb_classes)
        except (AttributeError, TypeError):  # pragma: no cover - other py3langid layout
            self._batched = False

    @staticmethod
    def _encode(text: str) -> bytes:
        # Lower-case always: catalogue titles are Title Case, which the model rarely saw.
        text = text[:MAX_CHARS].lower()
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        return text.encode("utf-8", errors="ignore")

    def detect(self, texts: list[str]) -> list[str]:
        """One language code per text; :data:`UNKNOWN` for blank or featureless text."""
        if not self._batched:  # pragma: no cover - fallback for another py3langid layout
            return [self._identifier.classify(self._encode(t))[0] if t and not t.isspace()
                    else UNKNOWN for t in texts]
        encoded = [b"" if not t or t.isspace() else self._encode(t) for t in texts]
        if len(encoded) < _VECTOR_MIN:
            return [self._detect_one(data) for data in encoded]
        result = np.full(len(texts), UNKNOWN, dtype=object)
        for start in range(0, len(encoded), _CHUNK):
            chunk = encoded[start:start + _CHUNK]
            rows, features = self._walk_numpy(chunk)
            if len(features) == 0:
                continue
            counts = sparse.csr_matrix(
                (np.ones(len(features), dtype=np.float32), (rows, features)),
                shape=(len(chunk), self._table.shape[0]),
            )
            counts.sum_duplicates()
            np.log1p(counts.data, out=counts.data)
            scores = counts @ self._table + self._prior
            has_features = np.diff(counts.indptr) > 0
            best = self._classes[scores.argmax(axis=1)]
            result[start:start + len(chunk)] = np.where(has_features, best, UNKNOWN)
        return result.tolist()

    def _detect_one(self, data: bytes) -> str:
        """Walk one text in Python and score it densely (cheapest for a few texts)."""
        nextmove, rowbase, output = self._nextmove, self._rowbase, self._output
        found: dict[int, int] = {}
        state = 0
        for byte in data:
            state = nextmove[rowbase[state] + byte]
            feature = output[state]
            if feature >= 0:
                found[feature] = found.get(feature, 0) + 1
        if not found:
            return UNKNOWN
        index = np.fromiter(found.keys(), dtype=np.intp, count=len(found))
        counts = np.fromiter(found.values(), dtype=np.float32, count=len(found))
        scores = np.log1p(counts) @ self._table[index] + self._prior
        return str(self._classes[int(scores.argmax())])

    def _walk_numpy(self, encoded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """(text index, feature id) of every feature hit, advancing all texts one byte at a
        time with numpy (the automaton is walked for every text at once)."""
        lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
        order = np.argsort(-lengths, kind="stable")  # longest first: active texts are a prefix
        sorted_lengths = lengths[order]
        width = int(sorted_lengths[0]) if len(sorted_lengths) else 0
        if width == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        flat = np.frombuffer(b"".join(encoded[i] for i in order), dtype=np.uint8)
        grid = np.zeros((len(encoded), width), dtype=np.uint8)
        grid[np.arange(width) < sorted_lengths[:, None]] = flat
        # active[k]: how many (sorted) texts are longer than k bytes
        active = np.searchsorted(-sorted_lengths, -np.arange(width), side="left")
        states = np.zeros(len(encoded), dtype=np.int64)
        row_parts: list[np.ndarray] = []
        feature_parts: list[np.ndarray] = []
        for k in range(width):
            n = int(active[k])
            current = self._nextmove_np[self._rowbase_np[states[:n]] + grid[:n, k]]
            states[:n] = current
            found = self._output_np[current]
            hit = np.flatnonzero(found >= 0)
            if len(hit):
                row_parts.append(order[hit])
                feature_parts.append(found[hit])
        if not feature_parts:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
        return np.concatenate(row_parts), np.concatenate(feature_parts)


def _get_detector() -> _Detector:
    global _detector
    if _detector is None:
        with _detector_lock:
            if _detector is None:
                _detector = _Detector()
    return _detector


def detect_languages(texts: Iterable[str | None]) -> list[str]:
    """ISO 639-1 code of each text (one of :data:`LANGUAGES`), :data:`UNKNOWN` when blank.

    ``None`` and non-string values count as blank. The model is loaded once, on first use.
    """
    cleaned = [t if isinstance(t, str) else "" for t in texts]
    if not cleaned:
        return []
    return _get_detector().detect(cleaned)


def detect_language(text: str | None) -> str:
    """ISO 639-1 code of ``text`` (one of :data:`LANGUAGES`), :data:`UNKNOWN` when blank."""
    return detect_languages([text])[0]
