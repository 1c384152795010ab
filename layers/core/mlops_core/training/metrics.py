"""Model quality metrics in numpy, and which of them a dataset defines.

The Evaluate step scores the exported ONNX model with onnxruntime, in a function that
has no scikit-learn (the science and serving layers do not fit together under Lambda's
250 MiB), so the metrics the gate uses are computed here. Each one is tested against
``sklearn.metrics`` to 1e-9 on random data (``tests/unit/test_metric_properties.py``).

Every metric is defined for every classification dataset with two classes or more, and
``score`` always computes all of a task's metrics, so whichever one a run selects on is
there:

- ``accuracy``; ``log_loss`` over the model's classes.
- ``roc_auc``: two classes, the AUC of the second class's probability (scikit-learn's
  binary ``roc_auc_score``); more, the one-vs-rest macro average (``multi_class="ovr"``).
- ``f1``: two classes, the F1 of the second class (scikit-learn's ``pos_label``); more,
  the macro average over the classes that occur in the labels or the predictions.

Regression has ``rmse`` and ``r2``. Labels are compared as the signature's ``classes``
hold them (integers or strings).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from mlops_core.registry.entities import HIGHER_IS_BETTER

Task = Literal["classification", "regression"]

CLASSIFICATION_METRICS = ("accuracy", "roc_auc", "f1", "log_loss")
REGRESSION_METRICS = ("rmse", "r2")
METRICS: dict[Task, tuple[str, ...]] = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
}
DEFAULT_METRIC: dict[Task, str] = {"classification": "roc_auc", "regression": "rmse"}
# What a classifier that outputs no probabilities has no value for.
PROBABILITY_METRICS = ("log_loss", "roc_auc")
MIN_CLASSES = 2


class UndefinedMetric(ValueError):
    """The metric has no value on these rows (one class only, labels the model does not know)."""


def metric_problem(metric: str, task: Task) -> str | None:
    """Why ``metric`` cannot be the target metric of a ``task`` dataset; None if it can."""
    if metric in METRICS[task]:
        return None
    if metric not in HIGHER_IS_BETTER:
        known = sorted({m for names in METRICS.values() for m in names})
        return f"unknown target_metric '{metric}': one of {known}"
    return f"target_metric '{metric}' is not defined for {task}: one of {list(METRICS[task])}"


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Binary ROC AUC: the Mann-Whitney statistic with average ranks for ties."""
    y = np.asarray(y_true).astype(bool)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        raise UndefinedMetric("ROC AUC needs both classes in y_true")
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


def class_indices(labels: np.ndarray, classes: Sequence[object], what: str = "y_true") -> np.ndarray:
    """Each label's position in ``classes``; ``UndefinedMetric`` naming labels not among them."""
    index = {c: i for i, c in enumerate(classes)}
    values = np.asarray(labels).tolist()
    unknown = sorted({repr(v) for v in values if v not in index})
    if unknown:
        raise UndefinedMetric(
            f"{what} has labels the model's classes {list(classes)} lack: {', '.join(unknown[:5])}"
        )
    return np.asarray([index[v] for v in values], dtype=np.int64)


def roc_auc_ovr(y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[object]) -> float:
    """One-vs-rest macro ROC AUC: the mean over classes of each class's binary AUC,
    scored by its probability column.

    A class absent from ``y_true`` has no AUC (it has no positive row): it is left out
    of the mean, where scikit-learn answers NaN. At least two classes must be present.
    """
    columns = class_indices(y_true, classes)
    present = np.unique(columns)
    if present.size < MIN_CLASSES:
        raise UndefinedMetric(f"ROC AUC needs at least two classes in y_true, got {present.size}")
    p = np.asarray(probabilities)
    return float(np.mean([roc_auc(columns == i, p[:, i]) for i in present]))


def log_loss(y_true: np.ndarray, probabilities: np.ndarray, classes: Sequence[object]) -> float:
    columns = class_indices(y_true, classes)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), np.finfo(np.float64).eps, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(p[np.arange(len(columns)), columns])))


def f1(y_true: np.ndarray, y_pred: np.ndarray, positive: object = 1) -> float:
    truth, predicted = np.asarray(y_true) == positive, np.asarray(y_pred) == positive
    tp = float(np.sum(truth & predicted))
    denominator = 2 * tp + float(np.sum(~truth & predicted)) + float(np.sum(truth & ~predicted))
    return 0.0 if denominator == 0 else 2 * tp / denominator


def f1_macro(y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[object]) -> float:
    """The unweighted mean of each class's F1, over the classes in the labels or the
    predictions (scikit-learn's ``average="macro"``: a class neither present nor
    predicted has no F1 and does not count)."""
    truth = class_indices(y_true, classes)
    predicted = class_indices(y_pred, classes, "predictions")
    seen = np.union1d(truth, predicted)
    return float(np.mean([f1(truth, predicted, positive=i) for i in seen]))


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(
        np.sqrt(np.mean((np.asarray(y_true, dtype=float) - np.asarray(y_pred, dtype=float).ravel()) ** 2))
    )


def r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y = np.asarray(y_true, dtype=float)
    residual = np.sum((y - np.asarray(y_pred, dtype=float).ravel()) ** 2)
    total = np.sum((y - y.mean()) ** 2)
    return float(1.0 - residual / total) if total else 0.0


def score(
    task: Task,
    y_true: np.ndarray,
    predictions: np.ndarray,
    probabilities: np.ndarray | None = None,
    classes: Sequence[object] | None = None,
) -> dict[str, float]:
    """Every metric of ``task`` (the module's docstring says how each is defined).

    Classification needs the model's ``classes`` (in the order of the probability
    columns); ``roc_auc`` and ``log_loss`` also need ``probabilities``, and are left out
    for a model that outputs none. ``UndefinedMetric`` if a metric has no value here.
    """
    if task == "regression":
        return {"rmse": rmse(y_true, predictions), "r2": r2(y_true, predictions)}
    if not classes or len(classes) < MIN_CLASSES:
        raise UndefinedMetric(f"classification metrics need the model's classes (two or more), got {classes}")
    results = {"accuracy": accuracy(y_true, predictions)}
    binary = len(classes) == MIN_CLASSES
    if probabilities is not None:
        results["log_loss"] = log_loss(y_true, probabilities, classes)
        if binary:
            results["roc_auc"] = roc_auc(np.asarray(y_true) == classes[1], np.asarray(probabilities)[:, 1])
        else:
            results["roc_auc"] = roc_auc_ovr(y_true, probabilities, classes)
    if binary:
        results["f1"] = f1(y_true, predictions, positive=classes[1])
    else:
        results["f1"] = f1_macro(y_true, predictions, classes)
    return results


def better(metric: str) -> Callable[[float, float], bool]:
    """``better(metric)(a, b)``: is ``a`` strictly better than ``b``?"""
    if HIGHER_IS_BETTER[metric]:
        return lambda a, b: a > b
    return lambda a, b: a < b
