"""Model components: the contract (:mod:`~prodcat.components.base`), the registry, and the
built-in components, one module per family:

=================  ==============================  ===========  ==========================================
kind               class                           reads        model
=================  ==============================  ===========  ==========================================
``text``           :class:`TfidfTextComponent`     text         TF-IDF + linear model (or a baseline,
                                                                or the hierarchical model)
``deep_text``      :class:`DeepTextComponent`      text         a torch text model by name
``image``          :class:`ImageHeadComponent`     image        head on image embeddings
``pixels``         :class:`PixelsComponent`        image        colour histograms of the photos
``ocr``            :class:`PhotoTextComponent`     image        TF-IDF + logistic regression on the text
                                                                read on the photos (OCR)
``early_fusion``   :class:`EarlyFusionComponent`   text+image   one MLP over text and image features
=================  ==============================  ===========  ==========================================

A component is named by a preset entry such as ``{"name": "text", "kind": "text", "model": "linear"}``,
parsed into its typed spec by :func:`parse_component`.
"""

from __future__ import annotations

from prodcat.components.base import (
    READS,
    Component,
    ComponentSpec,
    Inputs,
    SpecError,
    aligned,
    check,
    registered_kinds,
    get_component,
    parse_component,
    register_component,
)
from prodcat.components.deep_text import DeepTextComponent, DeepTextSpec, deep_text_models
from prodcat.components.early_fusion import EarlyFusionComponent, EarlyFusionSpec
from prodcat.components.image import IMAGE_HEADS, ImageHeadComponent, ImageHeadSpec, ImageReadingComponent
from prodcat.components.ocr import PhotoTextComponent, PhotoTextSpec
from prodcat.components.pixels import PixelsComponent, PixelsSpec
from prodcat.components.text import TextReadingComponent, TextSpec, TfidfTextComponent, tfidf_model_names

__all__ = [
    "READS", "Component", "ComponentSpec", "DeepTextComponent", "DeepTextSpec", "EarlyFusionComponent",
    "EarlyFusionSpec", "IMAGE_HEADS", "ImageHeadComponent", "ImageHeadSpec", "ImageReadingComponent", "Inputs",
    "PhotoTextComponent", "PhotoTextSpec", "PixelsComponent", "PixelsSpec", "SpecError", "TextReadingComponent", "TextSpec", "TfidfTextComponent",
    "aligned", "check", "registered_kinds", "deep_text_models", "get_component", "make_component",
    "image_component_spec", "parse_component", "register_component", "text_component_spec",
    "text_model_names", "torch_params",
]


def text_model_names() -> tuple[str, ...]:
    """Every text model name a ``text`` or ``deep_text`` component takes."""
    return (*tfidf_model_names(), *deep_text_models())


def text_component_spec(name: str, model: str, **common: object) -> ComponentSpec:
    """The spec of a text component running ``model`` (TF-IDF or deep, chosen by the name)."""
    from prodcat.errors import ModelError

    if model in tfidf_model_names():
        return TextSpec(name=name, model=model, **common)
    if model in deep_text_models():
        return DeepTextSpec(name=name, model=model, **common)
    raise ModelError(f"unknown text model {model!r}; choose one of {', '.join(text_model_names())}")


def torch_params(spec: ComponentSpec) -> frozenset[str]:
    """The constructor parameters (``device``, ``backbone``, ...) that a spec's ``params`` may set
    on its torch model; empty for components without one."""
    if isinstance(spec, DeepTextSpec):
        return frozenset(deep_text_models()[spec.model]._get_param_names())
    if isinstance(spec, EarlyFusionSpec):
        from prodcat.models.early_fusion import EarlyFusionClassifier

        return frozenset(EarlyFusionClassifier._get_param_names())
    return frozenset()


def image_component_spec(name: str, model: str, *, network: str | None = None, **common: object) -> ComponentSpec:
    """The spec of an image component: a head on embeddings (reading ``network`` of a composite
    backbone, see :class:`ImageHeadSpec`), or ``"pixels"`` (which reads the photos themselves)."""
    from prodcat.errors import ModelError

    if model == "pixels":
        return PixelsSpec(name=name, **common)
    if model in IMAGE_HEADS:
        return ImageHeadSpec(name=name, model=model, network=network, **common)
    raise ModelError(f"unknown image model {model!r}; choose one of {', '.join((*IMAGE_HEADS, 'pixels'))}")


def make_component(spec: ComponentSpec, *, seed: int = 42, model: object = None) -> Component:
    """The registered component for ``spec`` (with an already fitted ``model`` when loading)."""
    return get_component(spec.kind)(spec, seed=seed, model=model)
