"""Mojibake repair (text decoded with the wrong charset, e.g. ``Ã©`` for ``é``)."""

from __future__ import annotations

import ftfy


def fix_mojibake(text: str) -> str:
    """Repair mis-decoded characters; leaves HTML entities alone (text cleaning handles those)."""
    if not text:
        return text
    return ftfy.fix_text(text, unescape_html=False, uncurl_quotes=False, normalization="NFC", fix_line_breaks=False)


def has_mojibake(text: str) -> bool:
    """True when :func:`fix_mojibake` would change ``text``."""
    return bool(text) and fix_mojibake(text) != text
