"""The taxonomy table: 27 codes, names from the seeds, groups, official distribution."""

from __future__ import annotations

import pytest

from prodcat.taxonomy import CATEGORIES, CODES, GROUPS, OFFICIAL_COUNTS, group_of, label, name_of, official_distribution


def test_twenty_seven_codes_with_names_and_groups() -> None:
    assert len(CODES) == 27 and list(CODES) == sorted(CODES)
    assert name_of(2583) == "Aquatique" and name_of(10) == "Livre d'occasion"
    assert {c.group for c in CATEGORIES.values()} == set(GROUPS)
    assert group_of(2705) == group_of(10) == "livres"
    assert label(1280) == "1280 - Déguisement"


def test_unknown_codes() -> None:
    assert name_of(9999) == "9999"
    with pytest.raises(KeyError):
        group_of(9999)


def test_official_distribution_matches_the_label_file_total() -> None:
    assert sum(OFFICIAL_COUNTS.values()) == 84_916
    assert set(OFFICIAL_COUNTS) == set(CODES)
    assert abs(sum(official_distribution().values()) - 1) < 1e-12
