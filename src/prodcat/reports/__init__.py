"""Human-readable reports: the evaluation report (report.html) and data exploration (eda.html)."""

from __future__ import annotations

__all__ = ["write_eda", "write_evaluation_report"]


def __getattr__(name: str):  # lazy: importing the package does not pull in matplotlib
    if name == "write_eda":
        from prodcat.reports.eda import write_eda

        return write_eda
    if name == "write_evaluation_report":
        from prodcat.reports.evaluation_report import write_evaluation_report

        return write_evaluation_report
    raise AttributeError(name)
