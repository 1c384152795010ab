"""The batch scoring functions fed their sample events (events/batch/) against moto: the API
(with a stand-in state machine under its ARN), the scoring step, Finalize and MarkFailed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from tests.batch_data import csv_object
from tests.integration.conftest import call
from tests.support import (
    BATCH_STATE_MACHINE_ARN,
    BUCKET,
    REGION,
    FakeLambdaContext,
    body,
    load_event,
    trained_model,
    upload,
)

MODEL = "breast-cancer"
MACHINE = BATCH_STATE_MACHINE_ARN  # tests/conftest.py sets it before any handler is imported
JOB = "batch-20261127T120000Z-1a2b3c4d"


@pytest.fixture
def batch_api(aws: None, production_model: int) -> Iterator[ModuleType]:
    """breast-cancer v1 in production; the API's workflow is a one-Wait-state machine."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Accepted", "States": {"Accepted": {"Type": "Wait", "Seconds": 60, "End": True}}}
    created = sfn.create_state_machine(
        name="batch", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )
    assert created["stateMachineArn"] == MACHINE
    from functions.batch import api

    yield api
    for execution in sfn.list_executions(stateMachineArn=MACHINE, statusFilter="RUNNING")["executions"]:
        sfn.stop_execution(executionArn=execution["executionArn"])


def start(api: ModuleType, **changes: Any) -> dict[str, Any]:
    request = json.loads(load_event("batch/start_batch_job.json")["body"]) | changes
    return call(api, load_event("batch/start_batch_job.json", body=request))


def refusal(response: dict[str, Any]) -> tuple[int, str]:
    return response["statusCode"], body(response)["message"]


def test_start_answers_202_pins_the_production_version_and_starts_the_map(batch_api: ModuleType) -> None:
    upload("batch-input/nightly/part-00.csv", csv_object("x", 10, seed=1).data)

    response = start(batch_api)

    assert response["statusCode"] == 202, response["body"]
    started = body(response)
    job = started["job"]
    assert started["status_path"] == f"/batch-predictions/{started['job_id']}"
    assert (job["status"], job["version"], job["alias"]) == ("running", 1, "production")
    assert job["input_prefix"] == "batch-input/nightly/"
    assert job["output_prefix"] == f"batch/{started['job_id']}/"
    assert job["actor"] == "arn:aws:sts::123456789012:assumed-role/MLEngineer/ml-engineer"
    execution = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=job["execution_arn"]
    )
    assert json.loads(execution["input"]) == {
        "job_id": started["job_id"],
        "model_name": MODEL,
        "version": 1,
        "input_prefix": "batch-input/nightly/",
    }
    shown = call(batch_api, load_event("batch/get_batch_job.json", path_params={"job_id": started["job_id"]}))
    assert shown["statusCode"] == 200 and body(shown)["job_id"] == started["job_id"]
    listed = body(call(batch_api, load_event("batch/list_batch_jobs.json")))["jobs"]
    assert [j["job_id"] for j in listed] == [started["job_id"]]


def test_an_unknown_model_is_404(batch_api: ModuleType) -> None:
    upload("batch-input/nightly/part-00.csv", b"1\n")
    assert refusal(start(batch_api, model_name="no-such-model")) == (404, "model 'no-such-model' not found")


def test_a_model_without_a_production_version_is_404(batch_api: ModuleType, registry: ModelRegistry) -> None:
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/other.onnx", data)
    registry.register_version(
        "other", RegisterVersionRequest(artifact_key="uploads/other.onnx", signature=signature)
    )
    upload("batch-input/nightly/part-00.csv", b"1\n")
    status, message = refusal(start(batch_api, model_name="other"))
    assert (status, message) == (
        404,
        "model 'other' has no production version: promote one, or name a version to score with",
    )


def test_an_unknown_version_is_404(batch_api: ModuleType) -> None:
    upload("batch-input/nightly/part-00.csv", b"1\n")
    assert refusal(start(batch_api, version=9)) == (404, "model 'breast-cancer' has no version 9")


def test_an_input_prefix_without_objects_is_422_and_writes_nothing(batch_api: ModuleType) -> None:
    upload("batch-input/nightly/", b"")  # a console "folder": not an object to score
    status, message = refusal(start(batch_api))
    assert (status, message) == (422, "the input prefix holds no objects: upload the files to score first")
    assert body(call(batch_api, load_event("batch/list_batch_jobs.json")))["jobs"] == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("s3://someone-elses-bucket/batch-input/x/", "input must be in the stack's artifacts bucket"),
        (f"s3://{BUCKET}/models/breast-cancer/", "input must be under batch-input/ in the artifacts bucket"),
        ("datasets/breast-cancer/v1/", "input must be under batch-input/ in the artifacts bucket"),
        ("batch-input/", "name a folder below batch-input/, not all of it"),
        ("batch-input/../models/", "input must be under batch-input/ in the artifacts bucket"),
    ],
)
def test_an_input_outside_the_batch_input_prefix_is_422(
    batch_api: ModuleType, value: str, message: str
) -> None:
    assert refusal(start(batch_api, input=value)) == (422, message)


def test_version_and_alias_together_are_422(batch_api: ModuleType) -> None:
    response = start(batch_api, version=1, alias="staging")
    assert response["statusCode"] == 422
    assert "give version or alias, not both" in json.dumps(body(response))


def test_an_unknown_job_is_404_and_a_malformed_id_422(batch_api: ModuleType) -> None:
    assert refusal(call(batch_api, load_event("batch/get_batch_job.json"))) == (
        404,
        f"batch job '{JOB}' not found",
    )
    malformed = call(batch_api, load_event("batch/get_batch_job.json", path_params={"job_id": "nope"}))
    assert malformed["statusCode"] == 422


@pytest.fixture
def step(aws: None, production_model: int) -> Any:
    def load(module: str) -> ModuleType:
        import importlib

        return importlib.import_module(f"functions.batch.{module}")

    return load


def test_the_scoring_step_writes_predictions_and_refused_rows(step: Any) -> None:
    obj = csv_object("batch-input/nightly/part-00.csv", 200, seed=3, malformed_share=0.05)
    upload(obj.key, obj.data)

    summary = step("score").lambda_handler(load_event("batch/score_object.json"), FakeLambdaContext())

    assert (summary["key"], summary["rows"], summary["failed"]) == ("part-00.csv", 200, len(obj.malformed))
    assert summary["scored"] == 200 - len(obj.malformed)
    assert [r["line"] for r in summary["failed_rows"]] == sorted(obj.malformed)[:20]
    s3 = boto3.client("s3", region_name=REGION)
    predictions = (
        s3.get_object(Bucket=BUCKET, Key=summary["predictions_key"])["Body"].read().decode().splitlines()
    )
    assert predictions[0] == "line,prediction,probability_0,probability_1,model_version"
    assert [int(line.split(",")[0]) for line in predictions[1:]] == sorted(obj.rows)
    errors = s3.get_object(Bucket=BUCKET, Key=summary["errors_key"])["Body"].read().decode().splitlines()
    assert [json.loads(e)["line"] for e in errors] == sorted(obj.malformed)


def test_finalize_counts_the_map_results_and_mark_failed_records_the_error(
    step: Any, batch_api: ModuleType
) -> None:
    upload("batch-input/nightly/part-00.csv", b"1\n")
    job_id = body(start(batch_api))["job_id"]
    summary = {
        "key": "part-00.csv",
        "rows": 5,
        "scored": 4,
        "failed": 1,
        "failed_rows": [{"key": "part-00.csv", "line": 3, "reason": "expected 10 fields, got 9"}],
    }
    folder = "batch/map-runs/0f3c2b1a-1111-2222-3333-444455556666"
    succeeded = [{"Status": "SUCCEEDED", "Input": "{}", "Output": json.dumps(summary)}]
    failed = [
        {
            "Status": "FAILED",
            "Input": json.dumps({"key": "batch-input/nightly/bad.csv"}),
            "Error": "ObjectNotScorable",
            "Cause": json.dumps(
                {
                    "errorType": "ObjectNotScorable",
                    "errorMessage": "bad.csv: the first line is not UTF-8 text",
                }
            ),
        }
    ]
    upload(f"{folder}/SUCCEEDED_0.json", json.dumps(succeeded).encode())
    upload(f"{folder}/FAILED_0.json", json.dumps(failed).encode())
    manifest = {
        "ResultFiles": {
            "SUCCEEDED": [{"Key": f"{folder}/SUCCEEDED_0.json"}],
            "FAILED": [{"Key": f"{folder}/FAILED_0.json"}],
            "PENDING": [],
        }
    }
    upload(f"{folder}/manifest.json", json.dumps(manifest).encode())

    event = load_event("batch/finalize.json") | {"job_id": job_id}
    assert step("finalize").lambda_handler(event, FakeLambdaContext()) == {
        "job_id": job_id,
        "status": "succeeded",
    }
    job = body(call(batch_api, load_event("batch/get_batch_job.json", path_params={"job_id": job_id})))
    assert (job["objects"], job["objects_failed"], job["rows"], job["rows_scored"], job["rows_failed"]) == (
        2,
        1,
        5,
        4,
        1,
    )
    assert job["failed_objects"] == [
        {"key": "bad.csv", "error": "ObjectNotScorable", "cause": "bad.csv: the first line is not UTF-8 text"}
    ]
    assert job["failed_rows"] == summary["failed_rows"]

    failed_event = load_event("batch/mark_failed.json") | {"job_id": job_id}
    answer = step("mark_failed").lambda_handler(failed_event, FakeLambdaContext())
    assert (answer["status"], answer["error"]) == ("failed", "States.ExceedToleratedFailureThreshold")
