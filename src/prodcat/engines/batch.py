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

    :meth:`predict` returns rows indexed like the input file (its index column, else positions from
    ``first_row``) and counts the photos the model could not use. Called as a Ray actor, the index
    travels in the :data:`INDEX_FIELD` column (Ray batches keep no index) and a bad input or, with
    ``keep_error``, a bundle that cannot be loaded comes back as a message in :data:`ERROR_FIELD`.
    """

    def __init__(self, model_dir: str, source: ProductSource, output: OutputSpec, model: Any = None,
                 cache_dir: str | None = None, *, keep_error: bool = False) -> None:
        from prodcat.predictor import ProductClassifier
        from prodcat.review import ReviewPolicy

        self.source = source
        self.output = output
        self.error: str | None = None  # a bundle an actor could not load: reported with its first batch
        self.n_unusable_photos = 0
        self.n_images_found = 0  # products whose photo file exists (with an images folder)
        self.unusable_photos: list[tuple[str, str]] = []  # the first few (path, reason)
        try:
            self.model = model if model is not None else ProductClassifier.load(model_dir, cache_dir=cache_dir)
            self.policy = ReviewPolicy.for_model(self.model, output.review_target)
        except ProdcatError as error:
            if not keep_error:
                raise
            self.error = str(error)

    def predict(self, raw: pd.DataFrame, first_row: int | None = None) -> tuple[pd.DataFrame, bool]:
        """The output rows of ``raw`` and whether their index came from the file."""
        X, own_index = to_products(raw, self.source, first_row)
        rows = self._rows(X)
        self.n_images_found += int(X["image_path"].notna().sum())
        failures = getattr(self.model, "last_image_failures_", None) or []
        self.n_unusable_photos += len(failures)
        self.unusable_photos += failures[: max(0, 3 - len(self.unusable_photos))]
        return rows, own_index

    def _rows(self, X: pd.DataFrame) -> pd.DataFrame:
        from prodcat.review import prediction_table

        if self.output.top is None:
            return pd.DataFrame({"prdtypecode": self.model.predict(X).astype("int64")}, index=X.index)
        return prediction_table(self.model.predict_proba(X), self.model.classes_, X.index, top=self.output.top,
                                policy=self.policy)

    def __call__(self, raw: pd.DataFrame) -> pd.DataFrame:
        """Ray's ``map_batches`` entry: rows with the file's index in :data:`INDEX_FIELD` (when it has one), or
        one row with the message of a bad input in :data:`ERROR_FIELD`."""
        if self.error is not None:
            return pd.DataFrame({ERROR_FIELD: [self.error]})
        try:
            rows, own_index = self.predict(raw)
        except ProdcatError as error:
            return pd.DataFrame({ERROR_FIELD: [str(error)]})
        index = rows.index.to_numpy()
        rows = rows.reset_index(drop=True)
        if own_index:
            rows.insert(0, INDEX_FIELD, index)
        return rows
