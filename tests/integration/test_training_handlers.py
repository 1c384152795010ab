"""Each training step's Lambda handler fed its sample event from events/training, against moto.

The events are what Step Functions passes between the states of one run (run
`breast-cancer-20261127-120000-abc123`); S3 object versions are left out so that the
events replay against any bucket holding the sample dataset.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.sample_data import breast_cancer
from mlops_core.data.schema import DataValidationError
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.requests import InvalidTrainingRequest
from mlops_core.training.tracking import RunTracker
from tests.support import BUCKET, EVENTS, TABLE, FakeLambdaContext, upload

RUN_ID = "breast-cancer-20261127-120000-abc123"


def _event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / "training" / f"{name}.json").read_text()))


def _invoke(module: str, event: dict[str, Any]) -> Any:
    import importlib

    handler = importlib.import_module(f"functions.training.{module}")
    return handler.lambda_handler(event, FakeLambdaContext())


@pytest.fixture
def dataset(aws: None) -> Iterator[None]:
    for key, data in breast_cancer().files.items():
        upload(key, data)
    yield


def test_each_step_handler_takes_its_sample_event(dataset: None) -> None:
    state = _invoke("validate_data", _event("execution_input"))
    assert [c["family"] for c in state["candidates"]] == [
        "logistic_regression",
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
    ]
    assert state["candidates"][2] | {"dataset": None} == _event("train_candidate") | {"dataset": None}

    trained = {}
    for candidate in state["candidates"]:
        trained[candidate["candidate_id"]] = _invoke("train_candidate", candidate)
    assert trained["c002"]["validation_metrics"]["roc_auc"] > 0.9

    selected = _invoke("select_best", _event("select_best"))
    assert selected["best"]["candidate_id"] == _event("evaluate")["best"]["candidate_id"]

    evaluated = _invoke("evaluate", _event("evaluate"))
    assert evaluated["evaluation"]["passed"] is True

    register_event = _event("register_model")
    best = register_event["best"]["candidate_id"]
    register_event["best"]["sha256"] = trained[best]["sha256"]  # exports are byte-stable, but per platform
    registered = _invoke("register_model", register_event)

    assert registered["version"] == 1
    assert registered["alias"] == "staging"
    registry = ModelRegistry(MetadataTable(TABLE), ArtifactStore(BUCKET))
    assert registry.get_alias("breast-cancer", "staging").version == 1
    run = RunTracker(MetadataTable(TABLE)).get(RUN_ID)
    assert (run["status"], run["registered_version"]) == ("SUCCEEDED", 1)


def test_mark_failed_takes_the_catch_output(dataset: None) -> None:
    _invoke("validate_data", _event("execution_input"))

    record = _invoke("mark_failed", _event("mark_failed"))

    assert record["error"] == "DataValidationError"
    assert record["cause"].startswith("1 violation(s): column 'mean_radius'")
    assert RunTracker(MetadataTable(TABLE)).get(RUN_ID)["status"] == "FAILED"


def test_step_handlers_raise_named_errors_for_step_functions(dataset: None) -> None:
    bad_request = _event("execution_input") | {"candidates": [{"family": "xgboost"}]}
    with pytest.raises(InvalidTrainingRequest, match="unknown estimator family 'xgboost'"):
        _invoke("validate_data", bad_request)
    upload("datasets/breast-cancer/v1/data.csv", b"mean_radius\n1\n")
    with pytest.raises(DataValidationError, match="missing column 'mean_texture'"):
        _invoke("validate_data", _event("execution_input"))
