"""MLflow pyfunc face of a prodcat bundle: what ``mlflow.pyfunc.load_model`` calls on an exported model.

:func:`prodcat.export.export_mlflow` writes a model directory whose ``MLmodel`` names this module
as the ``python_function`` loader; MLflow then calls :func:`_load_pyfunc` with the bundle's
folder. Nothing here imports mlflow: the same classes serve without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from prodcat.data.io import make_products
from prodcat.errors import DataError
from prodcat.review import DEFAULT_REVIEW_TARGET, ReviewPolicy, prediction_table

DEFAULT_TOP = 1


def _products(model_input: Any) -> pd.DataFrame:
    """The products frame of what MLflow passes: a DataFrame, a dict of columns, records or titles."""
    if isinstance(model_input, pd.DataFrame):
        frame = model_input
    elif isinstance(model_input, Mapping):
        frame = pd.DataFrame({k: v if isinstance(v, (list, tuple)) else [v] for k, v in model_input.items()})
    elif isinstance(model_input, (list, tuple)) and all(isinstance(v, str) for v in model_input):
        frame = pd.DataFrame({"designation": list(model_input)})
    else:
        frame = pd.DataFrame(model_input)
    if "designation" not in frame.columns:
        raise DataError(f"the input needs a designation column (and optionally description, image_path); "
                        f"got {', '.join(map(str, frame.columns)) or 'no column'}")
    column = lambda name: frame[name].tolist() if name in frame.columns else None  # noqa: E731
    products = make_products(frame["designation"].tolist(), column("description"), column("image_path"))
    products.index = frame.index
    return products


class ProdcatPyfunc:
    """A loaded bundle answering ``predict(frame)`` with a shop-ready table per product:
    ``prdtypecode``, ``name``, ``probability``, ``needs_review`` (and ranks 2..``top``)."""

    def __init__(self, model_dir: str | Path) -> None:
        from prodcat.predictor import ProductClassifier

        self.model_dir = Path(model_dir)
        self.model = ProductClassifier.load(self.model_dir)

    def predict(self, model_input: Any, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Classify the products of ``model_input`` (columns ``designation``, optional ``description``,
        ``image_path``); ``params`` may set ``top`` and ``review_target``."""
        params = dict(params or {})
        products = _products(model_input)
        policy = ReviewPolicy.for_model(self.model, float(params.get("review_target") or DEFAULT_REVIEW_TARGET))
        proba = self.model.predict_proba(products)
        return prediction_table(proba, self.model.classes_, products.index, top=int(params.get("top") or DEFAULT_TOP),
                                policy=policy)


def _load_pyfunc(path: str) -> ProdcatPyfunc:
    """MLflow's loader hook: ``path`` is the bundle folder inside the exported model directory."""
    return ProdcatPyfunc(path)


class ProdcatPythonModel:
    """The same model as an ``mlflow.pyfunc.PythonModel``-compatible class (``load_context`` then
    ``predict(context, model_input, params)``), for teams that log it with ``python_model=``; the
    bundle is the artifact named ``bundle``."""

    def __init__(self) -> None:
        self.pyfunc: ProdcatPyfunc | None = None

    def load_context(self, context: Any) -> None:
        self.pyfunc = ProdcatPyfunc(context.artifacts["bundle"])

    def predict(self, context: Any, model_input: Any, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        if self.pyfunc is None:
            self.load_context(context)
        return self.pyfunc.predict(model_input, params)
