"""One chunk of products in, one chunk of output rows out: the work both engines share.

:class:`BatchPredictor` loads the bundle once (in the driver for the local engine, once per actor
for Ray) and turns a raw chunk (:func:`~prodcat.engines.source.read_chunks`) into the rows of the
submission (``prdtypecode``) or of the shop table (``--proba``/``--top``, see
:func:`prodcat.review.prediction_table`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from prodcat.engines.source import ProductSource, to_products
from prodcat.errors import ProdcatError

#: Output column that carries the file's own row index between a Ray actor and the driver.
INDEX_FIELD = "__index__"
#: Output column of a batch that failed: the :class:`~prodcat.errors.ProdcatError` message, for the driver to raise
#: (Ray Data passes on the text of a worker's exception, not the exception).
ERROR_FIELD = "__error__"


@dataclass(frozen=True)
class OutputSpec:
    """What to write per product: codes only (``top=None``) or the top-``top`` table with review flags."""

    top: int | None = None
    review_target: float = 0.95


class BatchPredictor:
    """Loads a bundle once; ``predictor(raw_chunk)`` returns the output rows of that chunk.

    The rows come back indexed like the input file (its index column, else positions from
    ``first_row``); ``with_index_field`` moves that index into the :data:`INDEX_FIELD` column (Ray
    batches keep no index), left out when the file has no index column of its own.
    """

    def __init__(self, model_dir: str, source: ProductSource, output: OutputSpec, model: Any = None) -> None:
        from prodcat.predictor import ProductClassifier
        from prodcat.review import ReviewPolicy

        self.model = model if model is not None else ProductClassifier.load(model_dir)
        self.source = source
        self.output = output
        self.policy = ReviewPolicy.for_model(self.model, output.review_target)

    def predict(self, raw: pd.DataFrame, first_row: int | None = None) -> tuple[pd.DataFrame, bool]:
        """The output rows of ``raw`` and whether their index came from the file."""
        from prodcat.review import prediction_table

        X, own_index = to_products(raw, self.source, first_row)
        if self.output.top is None:
            rows = pd.DataFrame({"prdtypecode": self.model.predict(X).astype("int64")}, index=X.index)
        else:
            rows = prediction_table(self.model.predict_proba(X), self.model.classes_, X.index, top=self.output.top,
                                    policy=self.policy)
        return rows, own_index

    def __call__(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Ray's ``map_batches`` entry: rows with the file's index in :data:`INDEX_FIELD` (when it has one), or
        one row with the message of a bad input in :data:`ERROR_FIELD`."""
        try:
            rows, own_index = self.predict(raw)
        except ProdcatError as error:
            return pd.DataFrame({ERROR_FIELD: [str(error)]})
        index = rows.index.to_numpy()
        rows = rows.reset_index(drop=True)
        if own_index:
            rows.insert(0, INDEX_FIELD, index)
        return rows
