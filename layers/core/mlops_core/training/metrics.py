"""Model quality metrics in numpy.

The Evaluate step scores the exported ONNX model with onnxruntime, in a function that
has no scikit-learn (the science and serving layers do not fit together under Lambda's
250 MiB), so the few metrics the gate uses are computed here. Each one is tested
against ``sklearn.metrics`` to 1e-12.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from mlops_core.registry.entities import HIGHER_IS_BETTER

Task = Literal["classification", "regression"]


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC AUC: the Mann-Whitney statistic with average ranks for ties."""
    y = np.asarray(y_true).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise ValueError("ROC AUC needs both classes in y_true")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    ranks = np.empty(len(order), dtype=np.float64)
    # Average rank over each run of tied scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(order)]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def log_loss(y_true: np.ndarray, probabilities: np.ndarray, classes: list) -> float:
    index = {c: i for i, c in enumerate(classes)}
    columns = np.asarray([index[c] for c in np.asarray(y_true).tolist()])
    p = np.clip(np.asarray(probabilities, dtype=np.float64), np.finfo(np.float64).eps, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(columns)), columns])))


def f1(y_true: np.ndarray, y_pred: np.ndarray, positive: object = 1) -> float:
    truth, predicted = np.asarray(y_true) == positive, np.asarray(y_pred) == positive
    tp = float(np.sum(truth & predicted))
    denominator = 2 * tp + float(np.sum(~truth & predicted)) + float(np.sum(truth & ~predicted))
    return 0.0 if denominator == 0 else 2 * tp / denominator


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(
        np.sqrt(np.mean((np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float).ravel()) ** 2))
    )


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y = np.asarray(y_true, dtype=float)
    residual = np.sum((y - np.asarray(y_pred, dtype=float).ravel()) ** 2)
    total = np.sum((y - y.mean()) ** 2)
    return float(1.0 - residual / total) if total else 0.0


CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "f1", "log_loss")
REGRESSION_METRICS = ("rmse", "r2")


def score(
    task: Task,
    y_true: np.ndarray,
    predictions: np.ndarray,
    probabilities: np.ndarray | None = None,
    classes: list | None = None,
) -> dict[str, float]:
    """Every metric that applies to ``task`` (ROC AUC and F1 for binary classification only)."""
    if task == "regression":
        return {"rmse": rmse(y_true, predictions), "r2": r2(y_true, predictions)}
    results = {"accuracy": accuracy(y_true, predictions)}
    if probabilities is not None and classes is not None:
        results["log_loss"] = log_loss(y_true, probabilities, classes)
        if len(classes) == 2:
            results["roc_auc"] = roc_auc(np.asarray(y_true) == classes[1], np.asarray(probabilities)[:, 1])
            results["f1"] = f1(y_true, predictions, positive=classes[1])
    return results


def better(metric: str) -> Callable[[float, float], bool]:
    """``better(metric)(a, b)``: is ``a`` strictly better than ``b``?"""
    if HIGHER_IS_BETTER[metric]:
        return lambda a, b: a > b
    return lambda a, b: a < b
