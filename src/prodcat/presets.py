"""Presets: named model recipes, plain data so they can be listed, diffed and saved in bundles.

A preset lists its ``components`` (see :mod:`prodcat.components`), the image ``backbone`` and
how the components are fused:

- ``{"method": "auto" | "classwise" | "stack" | "blend", "folds": K}`` (``auto``: the fuser with the
  lowest out-of-fold log-loss, see :func:`prodcat.models.fusion.choose_fuser`): the fuser learns from K-fold out-of-fold
  predictions, then every component is refitted on all the training data;
- ``{"method": ..., "folds": 0, "holdout": 0.15, "refit": [names]}``: components train on 85% and
  the fuser learns from their predictions on the other 15%; then the components named in
  ``refit`` (the cheap ones) are trained again on all the data, the others are kept as they are.

``time_limit`` (seconds) is the default budget of a fit when the user gives none.
:func:`load_preset` turns a name, plain data or a :class:`PresetSpec` into a validated
:class:`PresetSpec`: a misspelt key or a bad value is an error naming the preset and the key.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from prodcat.components import ComponentSpec, SpecError, check, parse_component
from prodcat.errors import ModelError, ProdcatError

_TEXT = {"name": "text", "kind": "text", "model": "linear"}
_STACK = {"name": "text", "kind": "text", "model": "stack"}
_IMAGE = {"name": "image", "kind": "image", "model": "logreg"}

PRESETS: dict[str, dict[str, Any]] = {
    "fast": {
        "description": "Text only: LinearSVC (words + word shapes + layout), SGD (words + characters), "
                       "complement naive Bayes (word counts) and LinearSVC (raw tokens, case kept), stacked by a "
                       "logistic regression on 5-fold out-of-fold scores.",
        "components": [_STACK],
        "backbone": None,
        "fusion": None,
    },
    "image": {
        "description": "Image only: EfficientNet-Lite1 and -Lite2 multi-scale embeddings (pooled head + last two "
                       "blocks, white border cropped, 260 px) -> one linear discriminant analysis each (shrunk "
                       "covariance), and the text printed on the photos (OCR) -> TF-IDF logistic regression; late "
                       "fusion on 5-fold out-of-fold probabilities, the fuser chosen by its out-of-fold log-loss.",
        "components": [{"name": "image", "kind": "image", "model": "lda", "network": "lite1-ms"},
                       {"name": "image_lite2", "kind": "image", "model": "lda", "network": "lite2-ms"},
                       {"name": "photo_text", "kind": "ocr"}],
        "backbone": "lite1-ms+lite2-ms",
        "fusion": {"method": "auto", "folds": 5},
    },
    "balanced": {
        "description": "Text TF-IDF model + image embeddings model, late fusion on 5-fold out-of-fold "
                       "probabilities, the fuser (class-wise, blend or stack) chosen by its out-of-fold log-loss "
                       "(default when images are given).",
        "components": [_TEXT, _IMAGE],
        "backbone": "lite0",
        "fusion": {"method": "auto", "folds": 5},
    },
    "best": {
        "description": "Everything stacked: the stacked TF-IDF text model with a fifth member on Universal Sentence "
                       "Encoder embeddings, dense net on TF-IDF, MiniLM transformer fine-tuned (top 3 layers), image "
                       "MLP head and early fusion; "
                       "fuser chosen and fitted on a 15% holdout, then the TF-IDF models refitted on all the data.",
        "components": [
            {"name": "text", "kind": "text", "model": "stack_sentences"},
            {"name": "neural_simple", "kind": "deep_text", "model": "neural_simple"},
            {"name": "minilm", "kind": "deep_text", "model": "minilm", "budget": 0.55, "params": {"epochs": 6, "evaluations": 4}},
            {"name": "image", "kind": "image", "model": "mlp"},
            {"name": "early_fusion", "kind": "early_fusion"},
        ],
        "backbone": "lite0",
        "fusion": {"method": "auto", "folds": 0, "holdout": 0.15, "refit": ["text", "neural_simple"]},
        "time_limit": 1200,
    },
}

DEFAULT_PRESET = "fast"
FUSION_METHODS = ("auto", "classwise", "stack", "blend")


@dataclass(frozen=True)
class FusionSpec:
    """How a multi-component preset fuses: ``method``, and K ``folds`` or a ``holdout`` share."""

    method: str = "auto"
    folds: int = 5
    holdout: float = 0.15
    refit: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check(self.method in FUSION_METHODS, "fusion.method",
              f"must be one of {', '.join(FUSION_METHODS)}, got {self.method!r}")
        check(isinstance(self.folds, int) and not isinstance(self.folds, bool) and self.folds >= 0, "fusion.folds",
              f"must be a whole number >= 0 (0: holdout), got {self.folds!r}")
        check(isinstance(self.holdout, (int, float)) and 0 < self.holdout < 1, "fusion.holdout",
              f"must be a fraction in (0, 1), got {self.holdout!r}")
        check(not isinstance(self.refit, str), "fusion.refit", "must be a list of component names")
        object.__setattr__(self, "refit", tuple(self.refit))

    @property
    def out_of_fold(self) -> bool:
        """True for K-fold out-of-fold fitting, False for a single holdout."""
        return self.folds >= 2


@dataclass(frozen=True)
class PresetSpec:
    """A validated recipe: components, image backbone, fusion, default time limit."""

    name: str
    components: tuple[ComponentSpec, ...]
    description: str = ""
    backbone: str | None = None
    fusion: FusionSpec | None = None
    time_limit: float | None = None

    def __post_init__(self) -> None:
        check(len(self.components) > 0, "components", "a preset needs at least one component")
        names = [c.name for c in self.components]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        check(not duplicated, "components", f"names must be unique, {', '.join(duplicated)} repeats")
        if self.fusion is not None:
            unknown = [n for n in self.fusion.refit if n not in names]
            check(not unknown, "fusion.refit", f"names no component: {', '.join(unknown)}")
        check(self.backbone is None or isinstance(self.backbone, str), "backbone",
              f"must be a backbone name or null, got {self.backbone!r}")
        check(self.backbone is not None or not self.reads_images, "backbone",
              "components read images: name an image backbone (e.g. 'lite0')")
        for c in self.components:
            network = getattr(c, "network", None)
            if network is not None:
                from prodcat.image.backbone import network_columns

                try:
                    network_columns(str(self.backbone), network)
                except ModelError as error:
                    raise SpecError(f"components.{c.name}.network", str(error)) from None
        check(self.time_limit is None or (isinstance(self.time_limit, (int, float)) and self.time_limit > 0),
              "time_limit", f"must be positive seconds or null, got {self.time_limit!r}")

    @property
    def reads_images(self) -> bool:
        """True when some component reads image embeddings."""
        return any(c.reads != "text" for c in self.components)

    @property
    def reads_photo_text(self) -> bool:
        """True when some component reads the text on photos (OCR)."""
        return any(c.reads_photo_text for c in self.components)

    def with_backbone(self, backbone: str) -> "PresetSpec":
        """This recipe on another image ``backbone``: a head that read one network of the old
        (composite) backbone that the new one lacks reads the whole new embedding, and of heads that
        then read the same embedding with the same model only the first is kept."""
        from prodcat.image.backbone import parts

        networks = parts(backbone)
        components, seen = [], set()
        for c in self.components:
            if hasattr(c, "network"):
                network = c.network if c.network in networks and len(networks) > 1 else None  # None: the whole
                c = dataclasses.replace(c, network=network)
                if (c.kind, c.model, network) in seen:
                    continue
                seen.add((c.kind, c.model, network))
            components.append(c)
        fusion = self.fusion
        if fusion is not None:  # one component left: nothing to fuse
            kept = {c.name for c in components}
            fusion = None if len(components) < 2 else dataclasses.replace(
                fusion, refit=tuple(n for n in fusion.refit if n in kept))
        return dataclasses.replace(self, backbone=backbone, components=tuple(components), fusion=fusion)

    def component(self, name: str) -> ComponentSpec:
        """The spec of the component called ``name``."""
        return next(c for c in self.components if c.name == name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready); :func:`load_preset` reads it back."""
        fusion = None if self.fusion is None else {**dataclasses.asdict(self.fusion), "refit": list(self.fusion.refit)}
        return {"name": self.name, "description": self.description,
                "components": [c.to_dict() for c in self.components], "backbone": self.backbone,
                "fusion": fusion, "time_limit": self.time_limit}


_PRESET_KEYS = {f.name for f in dataclasses.fields(PresetSpec)}
_FUSION_KEYS = {f.name for f in dataclasses.fields(FusionSpec)}


def get_preset(name: str) -> dict[str, Any]:
    """A copy of the named preset's plain data; raises a clear error for unknown names."""
    if name not in PRESETS:
        raise ProdcatError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def load_preset(preset: "str | Mapping[str, Any] | PresetSpec") -> PresetSpec:
    """A validated :class:`PresetSpec` from a preset name, plain data or a spec.

    Unknown keys and bad values raise :class:`~prodcat.errors.ModelError` naming the preset and the key.
    """
    if isinstance(preset, PresetSpec):
        return preset
    if isinstance(preset, str):
        data: Mapping[str, Any] = {"name": preset, **get_preset(preset)}
    elif isinstance(preset, Mapping):
        data = preset
    else:
        raise ModelError(f"a preset is a name, a mapping or a PresetSpec, got {type(preset).__name__}")
    name = str(data.get("name", "custom"))
    unknown = sorted(set(data) - _PRESET_KEYS)
    if unknown:
        raise ModelError(f"preset {name!r}: {unknown[0]}: unknown key; a preset takes {', '.join(sorted(_PRESET_KEYS))}")
    entries = data.get("components")
    if not isinstance(entries, (list, tuple)):
        raise ModelError(f"preset {name!r}: components: must be a list of components, got {entries!r}")
    components = tuple(parse_component(entry, preset=name) for entry in entries)
    try:
        return PresetSpec(name=name, components=components, description=str(data.get("description", "")),
                          backbone=data.get("backbone"), fusion=_fusion(data.get("fusion"), name),
                          time_limit=data.get("time_limit"))
    except SpecError as error:
        raise ModelError(f"preset {name!r}: {error}") from None


def _fusion(data: Any, preset: str) -> FusionSpec | None:
    if data is None or isinstance(data, FusionSpec):
        return data
    if not isinstance(data, Mapping):
        raise ModelError(f"preset {preset!r}: fusion: must be a mapping or null, got {data!r}")
    unknown = sorted(set(data) - _FUSION_KEYS)
    if unknown:
        raise ModelError(f"preset {preset!r}: fusion.{unknown[0]}: unknown key; fusion takes "
                         f"{', '.join(sorted(_FUSION_KEYS))}")
    return FusionSpec(**data)
