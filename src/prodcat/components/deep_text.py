"""``deep_text``: the torch text models of :mod:`prodcat.models.deep_text` by name
(``neural_simple``, ``neural_embedding``, ``use``, ``minilm``), with their own ``params``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from prodcat.components.base import ComponentSpec, check, register_component
from prodcat.components.text import TextReadingComponent

DEVICES = ("auto", "cpu", "cuda")  # as prodcat.models.torch_utils.DEVICES (not imported: it imports torch)

# Set by the component from the predictor, never by a preset.
_MANAGED_PARAMS = ("seed", "time_limit", "progress")


def deep_text_models() -> dict[str, type]:
    """Deep text model classes by name (empty on torch-free installs)."""
    try:
        from prodcat.models.deep_text import DEEP_TEXT_MODELS
    except ImportError:
        return {}
    return DEEP_TEXT_MODELS


@dataclass(frozen=True)
class DeepTextSpec(ComponentSpec):
    """A deep text model: ``model`` names it, ``params`` are its constructor parameters."""

    kind: str = "deep_text"
    model: str = "neural_simple"
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        models = deep_text_models()
        check(self.model in models, "model",
              f"unknown deep text model {self.model!r}; choose one of {', '.join(models) or '(none: torch missing)'}")
        check(isinstance(self.params, Mapping), "params", f"must be a mapping, got {self.params!r}")
        allowed = set(models[self.model]._get_param_names()) - set(_MANAGED_PARAMS)
        for key in self.params:
            check(key in allowed, f"params.{key}",
                  f"not a parameter of {self.model!r}; choose from {', '.join(sorted(allowed))}")
        device = self.params.get("device", "auto")
        check(device in DEVICES or (isinstance(device, str) and device.startswith("cuda:")), "params.device",
              f"must be one of {', '.join(DEVICES)}, got {device!r}")
        backbone = self.params.get("backbone")
        check(backbone is None or (isinstance(backbone, str) and backbone != ""), "params.backbone",
              f"must be the path of a local checkpoint folder, got {backbone!r}")  # checked on disk by fit


@register_component("deep_text")
class DeepTextComponent(TextReadingComponent):
    """A torch text model trained within the component's share of the time budget."""

    spec_class = DeepTextSpec

    def build(self, time_limit: float | None) -> Any:
        model_class = deep_text_models()[self.spec.model]
        model = model_class(seed=self.seed, time_limit=time_limit, progress=False, **self.spec.params)
        if self.checkpoint_dir is not None and hasattr(model, "set_checkpoint_dir"):  # minilm: mid-fit checkpoints
            model.set_checkpoint_dir(self.checkpoint_dir)
        return model
