"""The component contract: a typed spec, what a component reads, ``fit`` under a time budget,
``predict_proba`` aligned on the predictor's classes, optional ``explain``; and the registry.

A component is one member of a preset (a text model, an image head, an early-fusion network...).
Its spec is a frozen dataclass checked when the preset is loaded; the component class is found
by the spec's ``kind`` in the registry, so adding a component is one class plus
``@register_component("kind")``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import pandas as pd

from prodcat.errors import ModelError

READS = ("text", "image", "text+image")


class SpecError(ValueError):
    """A bad value in a spec: ``key`` names the field, the message says what is wrong."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


def check(condition: bool, key: str, problem: str) -> None:
    """Raise :class:`SpecError` for ``key`` unless ``condition``."""
    if not condition:
        raise SpecError(key, problem)


@dataclass(frozen=True)
class ComponentSpec:
    """What every component spec has: its ``name`` in the preset, its ``kind`` (the registry key)
    and ``budget``, its share of the fit's ``time_limit``."""

    name: str
    kind: str
    budget: float = 0.1

    def __post_init__(self) -> None:
        check(isinstance(self.name, str) and bool(self.name) and not self.name.startswith("_"), "name",
              f"must be a non-empty name not starting with '_', got {self.name!r}")
        check(isinstance(self.budget, (int, float)) and not isinstance(self.budget, bool)
              and 0 < self.budget <= 1, "budget", f"must be a fraction in (0, 1], got {self.budget!r}")

    @property
    def reads(self) -> str:
        """What the component of this kind reads: ``"text"``, ``"image"`` or ``"text+image"``."""
        return get_component(self.kind).reads

    @property
    def reads_photo_text(self) -> bool:
        """True when the component of this kind reads the text on photos (OCR)."""
        return get_component(self.kind).reads_photo_text

    @property
    def label(self) -> str:
        """What the component is, for tables: its model name when it has one, else its kind."""
        return str(getattr(self, "model", None) or self.kind)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready), the inverse of :func:`parse_component`."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass
class Inputs:
    """What components read: the products and, when some component reads images, their embeddings
    (and, when some component reads it, the text on each photo: ``""`` where there is none)."""

    products: pd.DataFrame
    vectors: np.ndarray
    has_image: np.ndarray
    failures: list[tuple[str, str]] = field(default_factory=list)
    photo_text: list[str] | None = None
    backbone: str | None = None  # the backbone that made ``vectors``

    def take(self, positions: np.ndarray) -> "Inputs":
        """The inputs of the products at ``positions``."""
        vectors = self.vectors[positions] if self.vectors.shape[0] else self.vectors
        photo_text = None if self.photo_text is None else [self.photo_text[i] for i in positions]
        return Inputs(self.products.iloc[positions], vectors, self.has_image[positions], photo_text=photo_text,
                      backbone=self.backbone)


def aligned(raw: np.ndarray, own: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Probabilities over a model's ``own`` classes as columns of ``classes`` (zeros elsewhere)."""
    out = np.zeros((raw.shape[0], len(classes)))
    out[:, np.searchsorted(classes, np.asarray(own))] = raw
    return out


class Component:
    """Base class of every component: holds its spec and, once fitted, its ``model``.

    Subclasses set ``reads`` (``"text"``, ``"image"`` or ``"text+image"``) and ``spec_class``,
    and implement :meth:`build`, :meth:`fit` and :meth:`predict_proba`. ``predict_proba`` must
    give every product a row on the predictor's ``classes``, the ``prior`` where the
    component's input is missing. ``trusted`` lists the classes of its fitted model that are not
    scikit-learn's or prodcat's, so that bundles can store them (:func:`prodcat.persist.trust`).
    """

    kind: ClassVar[str] = ""
    reads: ClassVar[str] = "text"
    reads_photo_text: ClassVar[bool] = False
    """True when the component reads the text printed on photos (``Inputs.photo_text``, read by OCR)."""
    spec_class: ClassVar[type[ComponentSpec]] = ComponentSpec
    trusted: ClassVar[tuple[type, ...]] = ()

    def __init__(self, spec: ComponentSpec, *, seed: int = 42, model: Any = None) -> None:
        self.spec = spec
        self.seed = seed
        self.model = model
        self.checkpoint_dir: Path | None = None
        """Where the next :meth:`fit` may keep mid-fit checkpoints and resume from (set by the fit plan;
        components that cannot stop mid-way ignore it). Never part of the fitted model."""

    @property
    def name(self) -> str:
        return self.spec.name

    def build(self, time_limit: float | None) -> Any:
        """A fresh, unfitted estimator."""
        raise NotImplementedError

    def fit(self, inputs: Inputs, y: np.ndarray, *, time_limit: float | None = None) -> "Component | None":
        """Fit on ``inputs`` and codes ``y`` within ``time_limit`` seconds; ``self``, or None when
        this data cannot train it (e.g. too few images)."""
        raise NotImplementedError

    def predict_proba(self, inputs: Inputs, classes: np.ndarray, prior: np.ndarray) -> np.ndarray:
        """``(n, len(classes))`` probabilities; ``prior`` rows where the input is missing."""
        raise NotImplementedError

    def explain(self, inputs: Inputs, codes: np.ndarray, n_words: int) -> list[list[tuple[str, float]]] | None:
        """The words behind each product's score for ``codes``; None when the model cannot say."""
        return None


_REGISTRY: dict[str, type[Component]] = {}


def register_component(kind: str) -> Callable[[type[Component]], type[Component]]:
    """Class decorator: make ``cls`` the component of ``kind`` (its spec's ``kind`` value)."""

    def register(cls: type[Component]) -> type[Component]:
        if not issubclass(cls, Component):
            raise TypeError(f"{cls.__name__} is not a Component")
        if cls.reads not in READS:
            raise TypeError(f"{cls.__name__}.reads must be one of {', '.join(READS)}, got {cls.reads!r}")
        cls.kind = kind
        _REGISTRY[kind] = cls
        if cls.trusted:
            from prodcat.persist import trust

            trust(*cls.trusted)
        return cls

    return register


def get_component(kind: str) -> type[Component]:
    """The component class registered for ``kind``."""
    if kind not in _REGISTRY:
        raise ModelError(f"unknown component kind {kind!r}; choose one of {', '.join(registered_kinds())}")
    return _REGISTRY[kind]


def registered_kinds() -> tuple[str, ...]:
    """Every registered component kind."""
    return tuple(_REGISTRY)


def parse_component(entry: ComponentSpec | Mapping[str, Any], *, preset: str = "?") -> ComponentSpec:
    """A validated spec from plain data (or a spec, checked for a registered kind).

    Unknown keys, missing keys and bad values raise :class:`~prodcat.errors.ModelError` naming
    the preset, the component and the key.
    """
    if isinstance(entry, ComponentSpec):
        get_component(entry.kind)
        return entry
    if not isinstance(entry, Mapping):
        raise ModelError(f"preset {preset!r}: a component must be a mapping, got {entry!r}")
    where = f"preset {preset!r}, component {entry.get('name', '?')!r}"
    if "kind" not in entry:
        raise ModelError(f"{where}: kind: missing; choose one of {', '.join(registered_kinds())}")
    try:
        spec_class = get_component(entry["kind"]).spec_class
    except ModelError as error:
        raise ModelError(f"{where}: {error}") from None
    fields = {f.name: f for f in dataclasses.fields(spec_class)}
    unknown = sorted(set(entry) - set(fields))
    if unknown:
        raise ModelError(f"{where}: {unknown[0]}: unknown key; a {entry['kind']!r} component takes "
                         f"{', '.join(fields)}")
    missing = [name for name, f in fields.items() if name not in entry
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ModelError(f"{where}: {missing[0]}: missing")
    try:
        return spec_class(**dict(entry))
    except SpecError as error:
        raise ModelError(f"{where}: {error}") from None
