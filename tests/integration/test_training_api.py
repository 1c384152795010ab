"""POST /training, GET /runs/{id} and GET /models/{name}/runs, fed the events in events/training."""

from __future__ import annotations

import json
import time
from types import ModuleType

import boto3
import pytest

from mlops_core.storage.dynamo import MetadataTable
from mlops_core.training.tracking import RunTracker
from tests.integration.conftest import call
from tests.support import REGION, STATE_MACHINE_ARN, TABLE, body, load_event


def _wait(run_id: str) -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    arn = STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:") + f":{run_id}"
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        time.sleep(0.02)


def test_start_training_starts_a_named_execution_with_the_validated_request(training_api: ModuleType) -> None:
    response = call(training_api, load_event("training/start_training.json"))

    assert response["statusCode"] == 202, response["body"]
    started = body(response)
    run_id = started["run_id"]
    assert run_id.startswith("breast-cancer-")
    assert started["status_path"] == f"/runs/{run_id}"
    _wait(run_id)
    execution = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=started["execution_arn"]
    )
    execution_input = json.loads(execution["input"])
    assert execution_input["run_id"] == run_id
    assert execution_input["candidates"][1] == {"family": "random_forest", "params": {"n_estimators": 100}}
    assert execution_input["holdout_fraction"] == 0.2  # defaults are filled in before the start


def test_a_run_id_can_be_chosen_once(training_api: ModuleType) -> None:
    request = json.loads(load_event("training/start_training.json")["body"]) | {
        "run_id": "nightly-2026-11-27"
    }
    first = call(training_api, load_event("training/start_training.json", body=request))
    again = call(training_api, load_event("training/start_training.json", body=request | {"seed": 7}))
    assert first["statusCode"] == 202
    assert again["statusCode"] == 409
    assert body(again)["message"] == "a training run named 'nightly-2026-11-27' already exists"


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        ({"candidates": "many"}, ["body", "candidates"]),
        ({"holdout_fraction": 0.9}, ["body", "holdout_fraction"]),
        ({"promote_to": "production"}, ["body"]),
        ({"model_name": "bad name"}, ["body", "model_name"]),
    ],
)
def test_a_bad_request_is_422_and_starts_nothing(training_api: ModuleType, change: dict, loc: list) -> None:
    request = json.loads(load_event("training/start_training.json")["body"]) | change
    response = call(training_api, load_event("training/start_training.json", body=request))

    assert response["statusCode"] == 422
    assert any(d["loc"][: len(loc)] == loc for d in body(response)["detail"])
    sfn = boto3.client("stepfunctions", region_name=REGION)
    assert sfn.list_executions(stateMachineArn=STATE_MACHINE_ARN)["executions"] == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"candidates": [{"family": "svm", "params": {}}]}, "unknown estimator family 'svm'"),
        (
            {"candidates": [{"family": "logistic_regression", "params": {"C": -1}}]},
            "invalid hyper-parameters",
        ),
        ({"candidates": [{"family": "random_forest", "params": {"": 1}}]}, "invalid hyper-parameters"),
        ({"candidates": [], "search": None}, "no candidates"),
        ({"threshold": 5e-324}, "cannot be stored"),
        ({"search": {"family": "random_forest", "grid": {"": [1]}}}, "invalid hyper-parameters"),
    ],
)
def test_what_can_be_checked_without_the_dataset_is_422_before_any_run_starts(
    training_api: ModuleType, change: dict, message: str
) -> None:
    """Found by fuzzing: these were accepted (202) and the run failed in ValidateData."""
    request = json.loads(load_event("training/start_training.json")["body"]) | change
    response = call(training_api, load_event("training/start_training.json", body=request))

    assert response["statusCode"] == 422, response["body"]
    assert message in body(response)["message"]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    assert sfn.list_executions(stateMachineArn=STATE_MACHINE_ARN)["executions"] == []


def test_get_run_merges_the_record_with_the_execution(training_api: ModuleType) -> None:
    started = body(call(training_api, load_event("training/start_training.json")))
    _wait(started["run_id"])
    RunTracker(MetadataTable(TABLE)).start(started["run_id"], "breast-cancer", {"seed": 42})

    run = body(
        call(training_api, load_event("training/get_run.json", path_params={"run_id": started["run_id"]}))
    )
    runs = body(call(training_api, load_event("training/list_runs.json")))["runs"]

    assert run["status"] == "RUNNING"  # the record's status: the stand-in machine never finishes the run
    assert run["execution"]["status"] == "SUCCEEDED"
    assert [r["run_id"] for r in runs] == [started["run_id"]]


def test_unknown_run_is_404(training_api: ModuleType) -> None:
    response = call(training_api, load_event("training/get_run.json"))
    assert response["statusCode"] == 404
    assert body(response)["message"] == "run 'breast-cancer-20261127-120000-abc123' not found"


def test_a_caller_cannot_claim_a_run_was_triggered_by_drift(training_api: ModuleType) -> None:
    request = json.loads(load_event("training/start_training.json")["body"]) | {
        "triggered_by": {"drift_run_id": "drift-1", "event": {"type": "DriftDetected", "id": "e-1"}}
    }

    response = call(training_api, load_event("training/start_training.json", body=request))

    assert response["statusCode"] == 422, response["body"]
    assert any(d["loc"][:2] == ["body", "triggered_by"] for d in body(response)["detail"])
    assert (
        boto3.client("stepfunctions", region_name=REGION).list_executions(stateMachineArn=STATE_MACHINE_ARN)[
            "executions"
        ]
        == []
    )
