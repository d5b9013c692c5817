"""The one test for "no value here", shared by loaders, the predictor and the image embedder."""

from __future__ import annotations

import math

import pandas as pd


def is_missing(value: object) -> bool:
    """True for None, NaN, ``pd.NA``, and empty or blank strings and bytes."""
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (bytes, bytearray)):
        return not value
    return False
