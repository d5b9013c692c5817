"""The Rakuten France product taxonomy: 27 ``prdtypecode`` values, French names, coarse groups.

Names follow the project seeds' table. Groups are coarse families used by the hierarchical
model (predict the group, then the code within it). ``OFFICIAL_COUNTS`` is the class
distribution of the official training label file (84,916 products); the demo data
generator samples from it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    """One product type: its code, French name and coarse group."""

    code: int
    name: str
    group: str


_TABLE: tuple[tuple[int, str, str], ...] = (
    (10, "Livre d'occasion", "livres"),
    (40, "Jeu Console", "jeux_video"),
    (50, "Accessoire Console", "jeux_video"),
    (60, "Tech", "jeux_video"),
    (1140, "Figurine", "jouets"),
    (1160, "Carte collect.", "jouets"),
    (1180, "Jeu Plateau", "jouets"),
    (1280, "Déguisement", "jouets"),
    (1281, "Boite de jeu", "jouets"),
    (1300, "Jouet Tech", "jouets"),
    (1301, "Chaussette", "bebe"),
    (1302, "Gadget", "jouets"),
    (1320, "Bébé", "bebe"),
    (1560, "Salon", "maison"),
    (1920, "Chambre", "maison"),
    (1940, "Cuisine", "maison"),
    (2060, "Chambre enfant", "maison"),
    (2220, "Animaux", "animaux"),
    (2280, "Affiche", "livres"),
    (2403, "Revue", "livres"),
    (2462, "Jeu oldschool", "jeux_video"),
    (2522, "Bureautique", "bureau"),
    (2582, "Décoration", "jardin"),
    (2583, "Aquatique", "jardin"),
    (2585, "Soin et Bricolage", "jardin"),
    (2705, "Livre neuf", "livres"),
    (2905, "Jeu PC", "jeux_video"),
)

CATEGORIES: dict[int, Category] = {code: Category(code, name, group) for code, name, group in _TABLE}
CODES: tuple[int, ...] = tuple(sorted(CATEGORIES))
GROUPS: tuple[str, ...] = tuple(sorted({c.group for c in CATEGORIES.values()}))

OFFICIAL_COUNTS: dict[int, int] = {
    10: 3116, 40: 2508, 50: 1681, 60: 832, 1140: 2671, 1160: 3953, 1180: 764, 1280: 4870,
    1281: 2070, 1300: 5045, 1301: 807, 1302: 2491, 1320: 3241, 1560: 5073, 1920: 4303,
    1940: 803, 2060: 4993, 2220: 824, 2280: 4760, 2403: 4774, 2462: 1421, 2522: 4989,
    2582: 2589, 2583: 10209, 2585: 2496, 2705: 2761, 2905: 872,
}


def name_of(code: int) -> str:
    """French name of a code; ``str(code)`` for codes outside the official taxonomy."""
    category = CATEGORIES.get(int(code))
    return category.name if category else str(code)


def group_of(code: int) -> str:
    """Coarse group of a code (raises ``KeyError`` for unknown codes)."""
    return CATEGORIES[int(code)].group


def label(code: int) -> str:
    """Display label such as ``"2583 - Aquatique"``."""
    return f"{int(code)} - {name_of(code)}"


def official_distribution() -> dict[int, float]:
    """Share of each code in the official training set."""
    total = sum(OFFICIAL_COUNTS.values())
    return {code: count / total for code, count in OFFICIAL_COUNTS.items()}
