"""Metrics for a set of predictions: weighted/macro F1, accuracy, per-class table, confusion matrix."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from prodcat.taxonomy import name_of


@dataclass
class Evaluation:
    """Scores of predictions against true labels (codes as ints)."""

    weighted_f1: float
    macro_f1: float
    accuracy: float
    n: int
    per_class: pd.DataFrame = field(repr=False)
    confusion: pd.DataFrame = field(repr=False)

    def headline(self) -> dict[str, float]:
        """The three headline numbers plus the sample count, for JSON and tables."""
        return {"weighted_f1": self.weighted_f1, "macro_f1": self.macro_f1, "accuracy": self.accuracy, "n": self.n}

    def top_confusions(self, k: int = 10) -> list[tuple[int, int, int, float]]:
        """The ``k`` most frequent (true, predicted, count, share of true) mistakes."""
        cm = self.confusion.to_numpy()
        support = cm.sum(axis=1)
        pairs = []
        for i, true in enumerate(self.confusion.index):
            for j, pred in enumerate(self.confusion.columns):
                if i != j and cm[i, j] > 0:
                    pairs.append((int(true), int(pred), int(cm[i, j]), float(cm[i, j] / max(support[i], 1))))
        pairs.sort(key=lambda p: (-p[2], -p[3]))
        return pairs[:k]


def evaluate_predictions(
    y_true: Sequence[int], y_pred: Sequence[int], classes: Sequence[int] | None = None
) -> Evaluation:
    """Score ``y_pred`` against ``y_true``; ``classes`` fixes the row/column order."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    labels = sorted(set(classes) if classes is not None else set(y_true) | set(y_pred))
    labels = sorted(set(labels) | set(y_true.tolist()) | set(y_pred.tolist()))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    per_class = pd.DataFrame(
        {
            "code": labels,
            "name": [name_of(c) for c in labels],
            "support": support.astype(int),
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    )
    cm = confusion_matrix(y_true, y_pred, labels=labels)
    confusion = pd.DataFrame(cm, index=pd.Index(labels, name="true"), columns=pd.Index(labels, name="predicted"))
    return Evaluation(
        weighted_f1=float(f1_score(y_true, y_pred, labels=labels, average="weighted", zero_division=0)),
        macro_f1=float(f1_score(y_true, y_pred, labels=sorted(set(y_true)), average="macro", zero_division=0)),
        accuracy=float(accuracy_score(y_true, y_pred)),
        n=int(len(y_true)),
        per_class=per_class,
        confusion=confusion,
    )


_ALONE_PRESETS = {"text": "fast", "image": "image"}


def fusion_warnings(combined: Evaluation, components: dict[str, Evaluation]) -> list[str]:
    """One warning per component that scores a higher weighted F1 alone than the fused model on the
    same products (fusion is then not worth it here)."""
    out = []
    for name, alone in components.items():
        if alone.weighted_f1 > combined.weighted_f1:
            preset = _ALONE_PRESETS.get(name)
            hint = f"; train --preset {preset} instead" if preset else ""
            out.append(f"fusion loses: the fused model's weighted F1 {combined.weighted_f1:.4f} is below {name} alone "
                       f"({alone.weighted_f1:.4f}) on the same {combined.n:,} products{hint}")
    return out
