"""Evaluate's pieces: scoring an exported model on holdout rows, the metric baseline it leaves
in the reference profile, and deciding whether the champion can be compared with the
candidate at all."""

from __future__ import annotations

import numpy as np

from mlops_core.data import schema as datasets
from mlops_core.data.profiles import MetricBaseline
from mlops_core.registry.signature import ModelSignature
from mlops_core.training import metrics


def predict_onnx(
    session_data: bytes, signature: ModelSignature, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """What the exported model answers for ``x``: its labels (or values) and, when it has
    them, its class probabilities."""
    from mlops_core.serving.sessions import load_session

    session = load_session(session_data, signature)
    names = [signature.label_output] + (
        [signature.probabilities_output] if signature.probabilities_output else []
    )
    dtype = np.float32 if signature.input_dtype == "float32" else np.float64
    outputs = session.run(names, {signature.input_name: x.astype(dtype)})
    probabilities = np.asarray(outputs[1], dtype=np.float64) if len(outputs) > 1 else None
    return np.asarray(outputs[0]).ravel(), probabilities


def score_onnx(
    session_data: bytes, signature: ModelSignature, x: np.ndarray, y: np.ndarray, task: metrics.Task
) -> dict[str, float]:
    predicted, probabilities = predict_onnx(session_data, signature, x)
    return metrics.score(task, y, predicted, probabilities, signature.classes)


#: The quantile of the held-out absolute errors that a live regression error is compared with.
ERROR_TOLERANCE_QUANTILE = 0.9


def holdout_baseline(
    task: metrics.Task, metric: str, scores: dict[str, float], y: np.ndarray, predicted: np.ndarray
) -> MetricBaseline:
    """The training metric baseline of the reference profile: the gate's metric on the
    holdout, and what live labels can be compared with (a classifier's accuracy; a
    regressor's mean absolute error, the 90th percentile of its absolute errors and the
    share of rows within it)."""
    rows = int(y.size)
    if task == "classification":
        return MetricBaseline(metric=metric, value=scores[metric], rows=rows, accuracy=scores["accuracy"])
    errors = np.abs(np.asarray(y, dtype=np.float64) - np.asarray(predicted, dtype=np.float64))
    tolerance = float(np.quantile(errors, ERROR_TOLERANCE_QUANTILE))
    return MetricBaseline(
        metric=metric,
        value=scores[metric],
        rows=rows,
        mae=float(errors.mean()),
        error_tolerance=tolerance,
        within_tolerance=float(np.mean(errors <= tolerance)),
    )


def why_not_comparable(
    champion: ModelSignature, candidate: ModelSignature, table: datasets.Table, metric: str
) -> str | None:
    """Why the champion cannot be scored like the candidate on this dataset (None if it can)."""
    if champion.task != candidate.task:
        return f"the champion is a {champion.task} model, the candidate a {candidate.task} one"
    missing = [f for f in champion.feature_names if f not in table.columns]
    if missing:
        return f"the champion needs features the dataset lacks: {missing[:5]}"
    if champion.classes != candidate.classes:
        return f"the champion's classes {champion.classes} are not the candidate's {candidate.classes}"
    if not champion.probabilities_output and metric in metrics.PROBABILITY_METRICS:
        return f"the champion outputs no probabilities, so it has no {metric}"
    return None
