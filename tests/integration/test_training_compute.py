"""Where candidates train (against moto): the Lambda trainer by default, a SageMaker training
job above the dataset-size threshold or on request; what the job runs is the same fit as
TrainCandidate (``training_job.run_job``, run here in-process as the job would), and
CollectTrainingJob records its result; where there is no SageMaker (the local stack), a
request for it is a 422 before anything starts."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import pytest

from infra.local.stack import LOCAL_FUNCTION_ENVIRONMENT, SAGEMAKER_UNAVAILABLE_ENV
from mlops_core.config.settings import TrainingComputeSettings
from mlops_core.errors import NotFound
from mlops_core.registry.signature import ModelSignature
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.compute import job_input_key
from mlops_core.training.requests import InvalidTrainingRequest
from mlops_core.training.search_steps import search_round
from mlops_core.training.steps import train_candidate, validate_data
from mlops_core.training.tracking import RunTracker
from mlops_core.training.training_job import collect_training_job, run_job
from tests.integration.conftest import call
from tests.integration.sklearn_datasets import Dataset, sklearn_dataset
from tests.support import BUCKET, REGION, STATE_MACHINE_ARN, TABLE, body, load_event, upload


def _settings(**variables: Any) -> TrainingComputeSettings:
    """Settings as the functions read them: from their environment variables."""
    return TrainingComputeSettings.model_validate(variables)


LOCAL = _settings(MLOPS_SAGEMAKER_UNAVAILABLE=LOCAL_FUNCTION_ENVIRONMENT[SAGEMAKER_UNAVAILABLE_ENV])
CANDIDATES = {
    "classification": [
        {"family": "logistic_regression"},
        {"family": "random_forest", "params": {"n_estimators": 20}},
    ],
    "regression": [
        {"family": "ridge"},
        {"family": "hist_gradient_boosting_regressor", "params": {"max_iter": 20}},
    ],
}


def _store() -> ArtifactStore:
    return ArtifactStore(BUCKET)


def _tracker() -> RunTracker:
    return RunTracker(MetadataTable(TABLE))


def _validate(dataset: Dataset, settings: TrainingComputeSettings, **changes: Any) -> dict[str, Any]:
    for key, data in dataset.files().items():
        upload(key, data)
    request = {
        "run_id": "run-c",
        "model_name": dataset.name,
        "dataset_key": dataset.data_key,
        "candidates": CANDIDATES[dataset.task],
    } | changes
    return validate_data(request, _store(), _tracker(), settings)


def test_small_datasets_train_on_lambda_and_nothing_is_staged_for_a_job(aws: None) -> None:
    state = _validate(sklearn_dataset("iris"), _settings(SAGEMAKER_THRESHOLD_BYTES=10**9))

    assert {c["compute"] for c in state["candidates"]} == {"lambda"}
    with pytest.raises(NotFound):
        _store().get(job_input_key("run-c", "c000"))


@pytest.mark.parametrize("loader", ["wine", "diabetes"])
def test_a_dataset_above_the_threshold_trains_in_jobs_whose_outputs_equal_the_lambda_trainers(
    aws: None, loader: str
) -> None:
    dataset = sklearn_dataset(loader)  # type: ignore[arg-type]
    state = _validate(dataset, _settings(SAGEMAKER_THRESHOLD_BYTES=1000))

    assert state["compute"] == "sagemaker"
    assert _tracker().get("run-c")["compute"] == "sagemaker"
    store = _store()
    for candidate in state["candidates"]:
        assert candidate["compute"] == "sagemaker"
        # What the training job runs (launcher.py's last command), then the step after it.
        run_job(candidate["run_id"], candidate["candidate_id"], store)
        job = {
            "TrainingJobName": "mlops-x",
            "BillableTimeInSeconds": 61,
            "ResourceConfig": {"InstanceType": "ml.m5.large"},
        }
        collected = collect_training_job(candidate | {"training_job": job}, store, _tracker())
        # The Lambda trainer on the same candidate: the same model, byte for byte, and metrics.
        on_lambda = train_candidate(
            candidate | {"candidate_id": "L" + candidate["candidate_id"]}, store, _tracker()
        )
        assert collected["sha256"] == on_lambda["sha256"]
        assert collected["validation_metrics"] == on_lambda["validation_metrics"]
        signature = ModelSignature.model_validate_json(
            store.get(collected["artifact_key"].rsplit("/", 1)[0] + "/signature.json").data
        )
        assert signature.feature_names == dataset.features
    recorded = {c["candidate_id"]: c for c in _tracker().get_with_candidates("run-c")["candidates"]}
    assert recorded["c000"]["compute"] == "sagemaker"
    assert recorded["c000"]["training_job"] == {
        "name": "mlops-x",
        "billable_seconds": 61,
        "instance_type": "ml.m5.large",
    }


def test_a_job_result_that_does_not_match_its_artifact_is_refused(aws: None) -> None:
    state = _validate(sklearn_dataset("iris"), TrainingComputeSettings(), compute="sagemaker")
    candidate = state["candidates"][0]
    result = run_job(candidate["run_id"], candidate["candidate_id"], _store())
    # The model replaced after the job wrote its result (which now names the latest version).
    upload(result.artifact_key, b"not the model the job trained")
    result_key = result.artifact_key.rsplit("/", 1)[0] + "/result.json"
    tampered = json.loads(_store().get(result_key).data) | {"artifact_version_id": None}
    upload(result_key, json.dumps(tampered).encode())

    with pytest.raises(InvalidTrainingRequest, match="does not match its artifact"):
        collect_training_job(candidate | {"training_job": {}}, _store(), _tracker())


def test_search_trials_of_a_sagemaker_run_are_staged_for_jobs_too(aws: None) -> None:
    search = {
        "family": "ridge",
        "space": {"alpha": {"type": "float", "low": 0.1, "high": 10.0}},
        "n_trials": 2,
        "parallelism": 2,
    }
    state = _validate(
        sklearn_dataset("diabetes"),
        TrainingComputeSettings(),
        candidates=None,
        search=search,
        compute="sagemaker",
    )
    asked = search_round(state, _store(), _tracker())

    assert [c["compute"] for c in asked["candidates"]] == ["sagemaker", "sagemaker"]
    for candidate in asked["candidates"]:
        assert json.loads(_store().get(job_input_key("run-c", candidate["candidate_id"])).data) == candidate


def test_where_there_is_no_sagemaker_the_threshold_does_not_apply_and_a_request_for_it_is_refused(
    aws: None,
) -> None:
    local_with_threshold = _settings(
        MLOPS_SAGEMAKER_UNAVAILABLE=LOCAL.sagemaker_unavailable, SAGEMAKER_THRESHOLD_BYTES=1000
    )
    state = _validate(sklearn_dataset("iris"), local_with_threshold)
    assert {c["compute"] for c in state["candidates"]} == {"lambda"}

    with pytest.raises(InvalidTrainingRequest, match="not available on the local stack"):
        _validate(sklearn_dataset("iris"), LOCAL, compute="sagemaker")


def test_post_training_asking_for_sagemaker_on_the_local_stack_is_422_and_starts_nothing(
    training_api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(training_api, "compute", LOCAL)
    request = json.loads(load_event("training/start_training.json")["body"]) | {"compute": "sagemaker"}

    response = call(training_api, load_event("training/start_training.json", body=request))

    assert response["statusCode"] == 422, response["body"]
    problem = body(response)
    assert problem["message"] == (
        "compute 'sagemaker' is not available on the local stack (moto runs no training jobs); "
        "leave compute unset"
    )
    assert problem["detail"][0]["loc"] == ["body", "compute"]
    sfn = boto3.client("stepfunctions", region_name=REGION)
    assert sfn.list_executions(stateMachineArn=STATE_MACHINE_ARN)["executions"] == []
    # Lambda, asked for by name, is always there.
    lambda_request = request | {"compute": "lambda"}
    assert (
        call(training_api, load_event("training/start_training.json", body=lambda_request))["statusCode"]
        == 202
    )
