"""``early_fusion``: one network over text features and image embeddings together
(:class:`~prodcat.models.early_fusion.EarlyFusionClassifier`); products without an image get
zeros and a "no image" flag, so it scores every product."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from prodcat.components.base import Component, ComponentSpec, Inputs, aligned, check, register_component

_MANAGED_PARAMS = ("seed", "time_limit")


@dataclass(frozen=True)
class EarlyFusionSpec(ComponentSpec):
    """``params``: constructor parameters of the early-fusion network."""

    kind: str = "early_fusion"
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        from prodcat.models.early_fusion import EarlyFusionClassifier

        check(isinstance(self.params, Mapping), "params", f"must be a mapping, got {self.params!r}")
        allowed = set(EarlyFusionClassifier._get_param_names()) - set(_MANAGED_PARAMS)
        for key in self.params:
            check(key in allowed, f"params.{key}", f"not an early-fusion parameter; choose from {', '.join(sorted(allowed))}")


@register_component("early_fusion")
class EarlyFusionComponent(Component):
    """MLP on [reduced TF-IDF text, standardised image embedding, has-image flag]."""

    reads = "text+image"
    spec_class = EarlyFusionSpec

    def build(self, time_limit: float | None) -> Any:
        from prodcat.models.early_fusion import EarlyFusionClassifier

        return EarlyFusionClassifier(seed=self.seed, time_limit=time_limit, **self.spec.params)

    def fit(self, inputs: Inputs, y: np.ndarray, *, time_limit: float | None = None) -> "EarlyFusionComponent | None":
        if not inputs.has_image.any():
            return None
        self.model = self.build(time_limit).fit(inputs.products, y, vectors=inputs.vectors, has_image=inputs.has_image)
        return self

    def predict_proba(self, inputs: Inputs, classes: np.ndarray, prior: np.ndarray) -> np.ndarray:
        raw = self.model.predict_proba(inputs.products, vectors=inputs.vectors, has_image=inputs.has_image)
        return aligned(raw, self.model.classes_, classes)
