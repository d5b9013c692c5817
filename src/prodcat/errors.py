"""Exceptions with messages meant for people: they name the file, row and problem."""

from __future__ import annotations


class ProdcatError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero."""


class DataError(ProdcatError):
    """Input data is missing, malformed or inconsistent."""

    def __init__(self, problem: str, *, path: object | None = None, row: object | None = None) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.row = row
        where = []
        if self.path:
            where.append(self.path)
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{': '.join([', '.join(where), problem]) if where else problem}")


class ModelError(ProdcatError):
    """A model bundle is missing, incompatible or used before fitting."""
