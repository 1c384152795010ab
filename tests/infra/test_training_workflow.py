"""The training state machine from the synthesized template, run by moto's Step Functions
interpreter with the real handlers invoked in-process (infra/local/lambda_runtime.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from synthesized_app import SynthesizedApp

from infra.local import lambda_runtime
from infra.local.sample_data import DATASET_PREFIX, breast_cancer
from infra.local.stack import DeployedResources, deploy_template
from mlops_core.registry.service import ModelRegistry
from mlops_core.serving.sessions import LoadedModel
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.estimators import build
from mlops_core.training.export import export_sklearn
from mlops_core.training.splits import split_indices
from tests.support import BUCKET, TABLE, upload

pytestmark = pytest.mark.infra

CANDIDATES = [
    {"family": "logistic_regression", "params": {"C": 1.0}},
    {"family": "logistic_regression", "params": {"C": 0.05}},
    {"family": "random_forest", "params": {"n_estimators": 50, "max_depth": 6}},
    {"family": "hist_gradient_boosting", "params": {"max_iter": 50}},
]


def _with_test_names(template: dict[str, Any]) -> dict[str, Any]:
    """The template with the bucket and table named as the tests' environment names them
    (handlers read those names at import, and other tests may have imported them)."""
    pinned = json.loads(json.dumps(template))
    resources, outputs = pinned["Resources"], pinned["Outputs"]
    resources[outputs["ArtifactsBucketName"]["Value"]["Ref"]]["Properties"]["BucketName"] = BUCKET
    resources[outputs["MetadataTableName"]["Value"]["Ref"]]["Properties"]["TableName"] = TABLE
    return pinned


@pytest.fixture
def stack(synthesized: SynthesizedApp, moto_session: Any) -> Iterator[DeployedResources]:
    moto_session.reset()
    lambda_runtime.install()
    deployed = deploy_template(_with_test_names(synthesized.template_json))
    for key, data in breast_cancer().files.items():
        upload(key, data)
    yield deployed


def _execute(deployed: DeployedResources, name: str, **changes: Any) -> dict[str, Any]:
    execution_input = {
        "run_id": name,
        "model_name": "breast-cancer",
        "dataset_key": f"{DATASET_PREFIX}/data.csv",
        "expectations_key": f"{DATASET_PREFIX}/expectations.json",
        "threshold": 0.9,
        "candidates": CANDIDATES,
        "seed": 7,
    } | changes
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=deployed.state_machine_arn, name=name, input=json.dumps(execution_input)
    )["executionArn"]
    deadline = time.monotonic() + 120
    while (result := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "execution did not finish in 120 s"
        time.sleep(0.05)
    result["states"] = [
        e["stateEnteredEventDetails"]["name"]
        for e in sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        if "stateEnteredEventDetails" in e
    ]
    return dict(result)


def _registry() -> ModelRegistry:
    return ModelRegistry(MetadataTable(TABLE), ArtifactStore(BUCKET))


def _run_record(run_id: str) -> dict[str, Any]:
    from mlops_core.training.tracking import RunTracker

    return RunTracker(MetadataTable(TABLE)).get_with_candidates(run_id)


def test_the_template_state_machine_trains_and_registers_a_model_matching_scikit_learn(
    stack: DeployedResources,
) -> None:
    started = time.perf_counter()
    result = _execute(stack, "run-ok")
    elapsed = time.perf_counter() - started

    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["version"] == 1
    assert result["states"][:4] == ["TrainingData", "ValidateData", "Search", "TrainCandidates"]
    assert result["states"].count("TrainCandidate") == len(CANDIDATES)
    assert result["states"][-3:] == ["Gate", "RegisterModel", "Registered"]

    version = _registry().get_version("breast-cancer", 1)
    assert version.run_id == "run-ok"
    run = _run_record("run-ok")
    assert run["status"] == "SUCCEEDED"
    best = next(c for c in run["candidates"] if c["candidate_id"] == run["best_candidate"])

    # Refit the winning candidate here, on the same deterministic split, and compare.
    sample = breast_cancer()
    from mlops_core.data.schema import DatasetSchema, load_csv

    schema = DatasetSchema.model_validate(sample.schema)
    table = load_csv(sample.csv, schema)
    x, y = table.matrix(version.signature.feature_names), table.columns["benign"].astype(np.int64)
    train, _, holdout = split_indices(
        y, task="classification", seed=7, holdout_fraction=0.2, validation_fraction=0.2
    )
    estimator = build(best["family"], best["params"], seed=7).fit(x[train], y[train])
    stored = ArtifactStore(BUCKET).get(version.artifact.key, version.artifact.s3_version_id).data
    _, probabilities = LoadedModel.from_bytes(version, stored).run(x[holdout].astype(np.float32))
    np.testing.assert_allclose(probabilities, estimator.predict_proba(x[holdout]), atol=1e-5)
    # ...and the registered bytes are exactly what exporting that refit gives.
    refit_bytes, _ = export_sklearn(estimator, version.signature.feature_names)
    assert refit_bytes == stored
    print(f"\nlocal end-to-end execution with {len(CANDIDATES)} candidates: {elapsed:.2f} s")


def test_same_input_and_seed_give_byte_identical_artifacts(stack: DeployedResources) -> None:
    first = _execute(stack, "run-a")
    second = _execute(stack, "run-b")

    assert first["status"] == second["status"] == "SUCCEEDED"
    digests_a = {c["candidate_id"]: c["sha256"] for c in _run_record("run-a")["candidates"]}
    digests_b = {c["candidate_id"]: c["sha256"] for c in _run_record("run-b")["candidates"]}
    assert digests_a == digests_b
    registry = _registry()
    assert (
        registry.get_version("breast-cancer", 1).artifact.sha256
        == registry.get_version("breast-cancer", 2).artifact.sha256
    )


def test_a_model_below_the_gate_ends_in_model_rejected_and_registers_nothing(
    stack: DeployedResources,
) -> None:
    result = _execute(
        stack,
        "run-weak",
        threshold=0.999,
        candidates=[{"family": "random_forest", "params": {"n_estimators": 1, "max_depth": 1}}],
    )

    assert result["status"] == "FAILED"
    assert result["error"] == "ModelRejected"
    run = _run_record("run-weak")
    assert run["status"] == "REJECTED"
    assert "below the threshold 0.999" in run["evaluation"]["reason"]
    assert _registry().list_models() == []


def test_a_bad_dataset_fails_at_validate_data_naming_every_violation(stack: DeployedResources) -> None:
    rows = breast_cancer().csv.decode().splitlines()
    rows[1] = rows[1].replace("17.99", "-3", 1)
    rows[5] = ",".join(["", *rows[5].split(",")[1:]])
    upload(f"{DATASET_PREFIX}/data.csv", "\n".join(rows).encode())

    result = _execute(stack, "run-bad-data")

    assert result["status"] == "FAILED"
    assert result["error"] == "DataValidationError"
    assert "column 'mean_radius': 1 value(s) below min 0.0 (lowest -3)" in result["cause"]
    assert "column 'mean_radius': 1 null value(s) (not nullable)" in result["cause"]
    assert "TrainCandidates" not in result["states"]
    assert _run_record("run-bad-data")["status"] == "FAILED"
    assert _registry().list_models() == []


def test_unknown_estimator_family_fails_before_any_training(stack: DeployedResources) -> None:
    result = _execute(stack, "run-bad-family", candidates=[{"family": "xgboost"}])

    assert result["status"] == "FAILED"
    assert result["error"] == "InvalidTrainingRequest"
    assert "unknown estimator family 'xgboost'" in result["cause"]
    assert "TrainCandidates" not in result["states"]
