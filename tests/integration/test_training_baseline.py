"""Evaluate completes the run's reference profile (against moto): the candidate's output
distribution on the holdout and the metric baseline concept drift compares live labels with
— the gate's metric with the holdout's size, and a classifier's accuracy or a regressor's
absolute errors (mean, 90th percentile, share within it)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from mlops_core.data.profiles import ReferenceProfile
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.splits import split_indices
from mlops_core.training.steps import evaluate, select_best, train_candidate, validate_data
from mlops_core.training.tracking import RunTracker
from tests.integration.sklearn_datasets import Dataset, sklearn_dataset
from tests.support import BUCKET, TABLE, upload


def _evaluate(dataset: Dataset, family: str, **request: Any) -> tuple[dict[str, Any], ReferenceProfile]:
    for key, data in dataset.files().items():
        upload(key, data)
    store, table = ArtifactStore(BUCKET), MetadataTable(TABLE)
    tracker = RunTracker(table)
    state = validate_data(
        {
            "run_id": "run-1",
            "model_name": dataset.name,
            "dataset_key": dataset.data_key,
            "candidates": [{"family": family, "params": {}}],
            **request,
        },
        store,
        tracker,
    )
    before = ReferenceProfile.model_validate(json.loads(store.get(state["reference_profile_key"]).data))
    assert before.metric_baseline is None and before.prediction is None  # ValidateData has no model yet
    state["results"] = [train_candidate(c, store, tracker) for c in state["candidates"]]
    evaluated = evaluate(select_best(state, tracker), store, ModelRegistry(table, store), tracker)
    profile = ReferenceProfile.model_validate(json.loads(store.get(state["reference_profile_key"]).data))
    return evaluated, profile


def _holdout_outputs(dataset: Dataset, evaluated: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """What the candidate's ONNX answers on the holdout rows (onnxruntime directly), and the truth."""
    import onnxruntime

    best = evaluated["best"]
    data = ArtifactStore(BUCKET).get(best["artifact_key"], best["artifact_version_id"]).data
    _, _, holdout = split_indices(
        dataset.y, task=dataset.task, seed=42, holdout_fraction=0.2, validation_fraction=0.2
    )
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    (name,) = [i.name for i in session.get_inputs()]
    outputs = session.run(None, {name: dataset.x[holdout].astype(np.float32)})
    return np.asarray(outputs[0], dtype=np.float64).ravel(), dataset.y[holdout]


def test_a_classifiers_profile_gets_its_holdout_accuracy_and_predicted_class_frequencies(aws: None) -> None:
    wine = sklearn_dataset("wine")
    evaluated, profile = _evaluate(wine, "logistic_regression", target_metric="f1")

    evaluation = evaluated["evaluation"]
    baseline = profile.metric_baseline
    assert baseline is not None
    assert (baseline.metric, baseline.value) == ("f1", evaluation["holdout_metrics"]["f1"])
    assert baseline.rows == evaluation["holdout_rows"] == 36
    assert baseline.accuracy == evaluation["holdout_metrics"]["accuracy"]
    assert baseline.error_tolerance is None and baseline.mae is None
    predicted, _ = _holdout_outputs(wine, evaluated)
    assert profile.prediction is not None and profile.prediction.kind == "categorical"
    assert profile.prediction.frequencies == {
        f"{c:g}": int(n) for c, n in zip(*np.unique(predicted, return_counts=True), strict=True)
    }
    assert set(profile.features) == set(wine.features)  # ValidateData's part is kept as it was


def test_a_regressors_profile_gets_its_absolute_errors(aws: None) -> None:
    diabetes = sklearn_dataset("diabetes")
    evaluated, profile = _evaluate(diabetes, "ridge")

    baseline = profile.metric_baseline
    assert baseline is not None and baseline.accuracy is None
    assert (baseline.metric, baseline.value) == ("rmse", evaluated["evaluation"]["holdout_metrics"]["rmse"])
    predicted, y = _holdout_outputs(diabetes, evaluated)
    errors = np.abs(y - predicted)
    assert baseline.rows == errors.size
    assert baseline.mae == pytest.approx(errors.mean(), rel=1e-6)
    assert baseline.error_tolerance == pytest.approx(np.quantile(errors, 0.9), rel=1e-6)
    assert baseline.within_tolerance == pytest.approx(0.9, abs=0.02)
    assert profile.prediction is not None and profile.prediction.kind == "numeric"
    assert profile.prediction.count == errors.size
