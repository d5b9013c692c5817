"""``text``: TF-IDF text models (:class:`~prodcat.models.text.TextClassifier` by name, the stacked
model ``stack`` / ``stack_sentences`` or the hierarchical model), and the shared behaviour of every
component that reads text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from prodcat.components.base import Component, ComponentSpec, Inputs, aligned, check, register_component


def tfidf_model_names() -> tuple[str, ...]:
    """The model names a ``text`` component takes."""
    from prodcat.models.text import TEXT_MODELS

    return (*TEXT_MODELS, "stack", "stack_sentences", "hierarchical")


@dataclass(frozen=True)
class TextSpec(ComponentSpec):
    """A TF-IDF text model: ``model`` is one of :func:`tfidf_model_names`."""

    kind: str = "text"
    model: str = "linear"

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.model in tfidf_model_names(), "model",
              f"unknown text model {self.model!r}; choose one of {', '.join(tfidf_model_names())}")


class TextReadingComponent(Component):
    """A component whose estimator reads the products frame (``fit(products, y)``)."""

    reads = "text"

    def fit(self, inputs: Inputs, y: np.ndarray, *, time_limit: float | None = None) -> "TextReadingComponent":
        self.model = self.build(time_limit).fit(inputs.products, y)
        return self

    def predict_proba(self, inputs: Inputs, classes: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return aligned(self.model.predict_proba(inputs.products), self.model.classes_, classes)


@register_component("text")
class TfidfTextComponent(TextReadingComponent):
    """TF-IDF features -> linear (or baseline) classifier; explains with the words behind a score."""

    spec_class = TextSpec

    def build(self, time_limit: float | None) -> Any:
        if self.spec.model in ("stack", "stack_sentences"):
            from prodcat.models.text_stack import StackedTextClassifier

            return StackedTextClassifier(sentences=self.spec.model == "stack_sentences", seed=self.seed)
        if self.spec.model == "hierarchical":
            from prodcat.models.hierarchical import HierarchicalTextClassifier

            return HierarchicalTextClassifier(seed=self.seed)
        from prodcat.models.text import TextClassifier

        return TextClassifier(self.spec.model, seed=self.seed)

    def explain(self, inputs: Inputs, codes: np.ndarray, n_words: int) -> list[list[tuple[str, float]]] | None:
        if not hasattr(self.model, "top_terms"):
            return None
        cleaned = self.model.clean(inputs.products)
        return [self.model.top_terms(text, int(code), n_words) for text, code in zip(cleaned, codes)]
