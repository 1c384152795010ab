"""The training steps called one after another against moto (the state machine's own
run, from the synthesized template, is in tests/infra/test_training_workflow.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.local.sample_data import DATASET_PREFIX, breast_cancer
from mlops_core.data.schema import DataValidationError
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.requests import InvalidTrainingRequest
from mlops_core.training.steps import (
    evaluate,
    mark_failed,
    register_model,
    select_best,
    train_candidate,
    validate_data,
)
from mlops_core.training.tracking import RunTracker
from tests.support import BUCKET, TABLE, upload


@pytest.fixture
def services(aws: None) -> tuple[ArtifactStore, ModelRegistry, RunTracker]:
    store = ArtifactStore(BUCKET)
    table = MetadataTable(TABLE)
    for key, data in breast_cancer().files.items():
        upload(key, data)
    return store, ModelRegistry(table, store), RunTracker(table)


def _request(**changes: Any) -> dict[str, Any]:
    return {
        "run_id": "run-1",
        "model_name": "breast-cancer",
        "dataset_key": f"{DATASET_PREFIX}/data.csv",
        "expectations_key": f"{DATASET_PREFIX}/expectations.json",
        "threshold": 0.9,
        "candidates": [
            {"family": "logistic_regression", "params": {"C": 1.0}},
            {"family": "random_forest", "params": {"n_estimators": 50}},
        ],
    } | changes


def _run(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker], request: dict[str, Any]
) -> dict[str, Any]:
    store, registry, tracker = services
    state = validate_data(request, store, tracker)
    state["results"] = [train_candidate(c, store, tracker) for c in state["candidates"]]
    state = evaluate(select_best(state, tracker), store, registry, tracker)
    if not state["evaluation"]["passed"]:
        return state
    return register_model(state, registry, tracker)


def test_steps_train_select_evaluate_and_register(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker],
) -> None:
    _, registry, tracker = services
    result = _run(services, _request(promote_to="staging"))

    assert result["version"] == 1
    version = registry.get_version("breast-cancer", 1)
    assert version.run_id == "run-1"
    assert version.metrics["roc_auc"] > 0.9
    assert registry.get_alias("breast-cancer", "staging").version == 1
    run = tracker.get_with_candidates("run-1")
    assert run["status"] == "SUCCEEDED"
    assert run["registered_version"] == 1
    assert len(run["dataset"]["sha256"]) == 64
    assert [c["candidate_id"] for c in run["candidates"]] == ["c000", "c001"]
    assert {"scikit-learn", "onnx", "numpy"} <= set(run["candidates"][0]["package_versions"])


def test_the_gate_compares_with_the_champion(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker],
) -> None:
    _, registry, tracker = services
    _run(services, _request())
    registry.set_alias("breast-cancer", "production", 1)

    weak = _run(
        services,
        _request(
            run_id="run-2",
            threshold=None,
            candidates=[{"family": "random_forest", "params": {"n_estimators": 1, "max_depth": 1}}],
        ),
    )

    assert weak["evaluation"]["passed"] is False
    assert "worse than the champion v1" in weak["evaluation"]["reason"]
    assert weak["evaluation"]["champion"]["comparable"] is True
    assert tracker.get("run-2")["status"] == "REJECTED"
    assert [v.version for v in registry.list_versions("breast-cancer")] == [1]


def test_invalid_hyper_parameters_fail_before_any_training(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker],
) -> None:
    store, _, tracker = services
    with pytest.raises(
        InvalidTrainingRequest, match="n_estimators: Input should be greater than or equal to 1"
    ):
        validate_data(
            _request(candidates=[{"family": "random_forest", "params": {"n_estimators": 0}}]), store, tracker
        )


def test_a_bad_dataset_names_every_violation(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker],
) -> None:
    store, _, tracker = services
    csv = breast_cancer().csv.decode().splitlines()
    csv[1] = csv[1].replace("17.99", "-1", 1)
    csv[2] = ",".join(["x", *csv[2].split(",")[1:]])
    upload(f"{DATASET_PREFIX}/data.csv", "\n".join(csv).encode())

    with pytest.raises(DataValidationError) as raised:
        validate_data(_request(), store, tracker)
    assert raised.value.violations == [
        "line 3, column 'mean_radius' (double): could not convert string to float: 'x'",
        "column 'mean_radius': 1 value(s) below min 0.0 (lowest -1)",
    ]
    assert tracker.get("run-1")["status"] == "RUNNING"  # MarkFailed, after the Catch, records the failure


def test_mark_failed_records_the_lambda_error(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker],
) -> None:
    store, _, tracker = services
    validate_data(_request(), store, tracker)
    cause = json.dumps({"errorMessage": "2 violation(s): a; b", "errorType": "DataValidationError"})

    record = mark_failed(
        {"run_id": "run-1", "error": {"Error": "DataValidationError", "Cause": cause}}, tracker
    )

    assert record["cause"] == "2 violation(s): a; b"
    run = tracker.get("run-1")
    assert run["status"] == "FAILED"
    assert run["failure"] == {"error": "DataValidationError", "cause": "2 violation(s): a; b"}


def test_mark_failed_still_records_when_the_event_cannot_be_published(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker],
) -> None:
    from mlops_core.storage.eventbridge import EventPublisher

    store, _, tracker = services
    validate_data(_request(), store, tracker)

    record = mark_failed(
        {"run_id": "run-1", "error": {"Error": "Boom", "Cause": "x"}}, tracker, EventPublisher("no-such-bus")
    )

    assert record["error"] == "Boom"
    assert record["note"].startswith("TrainingRunFailed not published")
    assert tracker.get("run-1")["status"] == "FAILED"
