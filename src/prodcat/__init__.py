"""prodcat: classify e-commerce products into the Rakuten France taxonomy from text and photo."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "ProductClassifier"]


def __getattr__(name: str):  # lazy: `import prodcat` stays cheap for the CLI
    if name == "ProductClassifier":
        from prodcat.predictor import ProductClassifier

        return ProductClassifier
    raise AttributeError(name)
