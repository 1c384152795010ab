"""Batch scoring in the template: a Distributed Map whose ItemReader lists the job's input and
whose ResultWriter writes the manifest, tolerated failures, retries on throttling, every
failure caught into MarkFailed, and roles that allow exactly what each function does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp
from test_infra_functions import _arn, _arn_with_suffix, _baseline_grants, _grants

from infra.cdk.constructs.batch import MAX_CONCURRENCY, TOLERATED_FAILURE_PERCENTAGE
from infra.cdk.constructs.functions import ServiceFunction

pytestmark = pytest.mark.infra

ITEM_READ_WRITE = (
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)


def _definition(synthesized: SynthesizedApp) -> dict[str, Any]:
    return synthesized.state_machine_definition(synthesized.stack.batch.state_machine)


def _grants_of(synthesized: SynthesizedApp, function: ServiceFunction) -> set[tuple[tuple[str, ...], str]]:
    return _grants(synthesized.role_policy_statements(function.role)) - _baseline_grants(
        synthesized, function
    )


def test_a_distributed_map_reads_the_input_s_objects_and_writes_a_manifest(
    synthesized: SynthesizedApp,
) -> None:
    definition = _definition(synthesized)
    states = definition["States"]
    bucket = json.dumps({"Ref": synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)})

    assert definition["StartAt"] == "ScoreObjects"
    assert {name: state["Type"] for name, state in states.items()} == {
        "ScoreObjects": "Map",
        "Finalize": "Task",
        "Scored": "Succeed",
        "MarkFailed": "Task",
        "BatchJobFailed": "Fail",
    }
    score = states["ScoreObjects"]
    assert score["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert score["ItemReader"]["Resource"].endswith(":states:::s3:listObjectsV2")
    assert score["ItemReader"]["Parameters"]["Prefix.$"] == "$.input_prefix"
    assert score["ItemReader"]["Parameters"]["Bucket"] == bucket
    assert score["ResultWriter"]["Resource"].endswith(":states:::s3:putObject")
    assert score["ResultWriter"]["Parameters"]["Prefix"] == "batch/map-runs"
    assert score["ResultSelector"] == {"manifest_key.$": "$.ResultWriterDetails.Key"}
    assert score["ToleratedFailurePercentage"] == TOLERATED_FAILURE_PERCENTAGE
    assert score["MaxConcurrency"] == MAX_CONCURRENCY
    assert score["ItemSelector"]["key.$"] == "$$.Map.Item.Value.Key"
    assert score["Next"] == "Finalize"
    assert states["Finalize"]["Parameters"]["Payload"] == {
        "job_id.$": "$.job_id",
        "manifest_key.$": "$.map.manifest_key",
    }


def test_scoring_retries_throttling_and_transient_errors_and_every_failure_is_caught(
    synthesized: SynthesizedApp,
) -> None:
    states = _definition(synthesized)["States"]
    task = states["ScoreObjects"]["ItemProcessor"]["States"]["ScoreObject"]
    retried = {error: r for r in task["Retry"] for error in r["ErrorEquals"]}
    throttled = retried["Lambda.TooManyRequestsException"]
    assert (throttled["MaxAttempts"], throttled["JitterStrategy"], throttled["MaxDelaySeconds"]) == (
        8,
        "FULL",
        60,
    )
    assert "Unavailable" in retried and "Lambda.ServiceException" in retried
    for name in ("ScoreObjects", "Finalize"):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "MarkFailed"}
        ]
    assert states["MarkFailed"]["Next"] == "BatchJobFailed"
    assert any(r["ErrorEquals"] == ["States.ALL"] for r in states["MarkFailed"]["Retry"])


def test_the_scoring_function_reads_inputs_and_models_and_writes_batch_outputs_only(
    synthesized: SynthesizedApp,
) -> None:
    batch = synthesized.stack.batch
    table = _arn(synthesized.logical_id(synthesized.stack.storage.metadata_table))
    bucket_id = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    properties = synthesized.resources[synthesized.logical_id(batch.score.function)]["Properties"]
    layers = {json.dumps(layer, sort_keys=True) for layer in properties["Layers"]}
    assert layers == {
        json.dumps({"Ref": synthesized.logical_id(getattr(synthesized.stack.layers, name))})
        for name in ("core", "serving", "parquet")  # parquet: Parquet inputs (arro3-io)
    }
    grants = _grants_of(synthesized, batch.score)
    assert grants == {
        (("dynamodb:GetItem",), table),
        (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, "/batch-input/*")),
        (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, "/models/*")),
        (("s3:PutObject",), _arn_with_suffix(bucket_id, "/batch/*")),
        (("s3:ListBucket",), _arn(bucket_id)),
    }
    conditions = [
        s["Condition"]["StringLike"]["s3:prefix"]
        for s in synthesized.role_policy_statements(batch.score.role)
        if s["Action"] == "s3:ListBucket"
    ]
    assert sorted(p for c in conditions for p in c) == ["batch-input/*", "models/*"]


def test_finalize_reads_map_results_and_the_api_may_start_this_machine_only(
    synthesized: SynthesizedApp,
) -> None:
    batch = synthesized.stack.batch
    table = _arn(synthesized.logical_id(synthesized.stack.storage.metadata_table))
    index = json.dumps(
        {
            "Fn::Join": [
                "",
                [
                    {"Fn::GetAtt": [synthesized.logical_id(synthesized.stack.storage.metadata_table), "Arn"]},
                    "/index/gsi1",
                ],
            ]
        },
        sort_keys=True,
    )
    bucket_id = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    assert _grants_of(synthesized, batch.finalize) == {
        (ITEM_READ_WRITE, table),
        (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, "/batch/map-runs/*")),
        (("s3:ListBucket",), _arn(bucket_id)),
    }
    assert _grants_of(synthesized, batch.mark_failed) == {(ITEM_READ_WRITE, table)}
    machine = json.dumps({"Ref": synthesized.logical_id(batch.state_machine)})
    assert _grants_of(synthesized, batch.api) == {
        (ITEM_READ_WRITE, table),
        (("dynamodb:Query",), index),
        (("s3:ListBucket",), _arn(bucket_id)),
        (("states:StartExecution",), machine),
    }


def test_the_machine_lists_the_bucket_writes_map_results_and_runs_its_own_children(
    synthesized: SynthesizedApp,
) -> None:
    batch = synthesized.stack.batch
    statements = synthesized.role_policy_statements(batch.state_machine.role)
    by_action: dict[str, list[Any]] = {}
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            by_action.setdefault(action, []).extend(resources)
    invoked = {json.dumps(r, sort_keys=True) for r in by_action["lambda:InvokeFunction"]}
    expected = set()
    for step in (batch.score, batch.finalize, batch.mark_failed):
        function_id = synthesized.logical_id(step.function)
        expected |= {_arn(function_id), _arn_with_suffix(function_id, ":*")}
    assert invoked == expected
    assert "s3:ListBucket" in by_action and "s3:PutObject" in by_action
    assert "states:StartExecution" in by_action  # the Map's child executions
    assert not any(a.startswith(("dynamodb:", "s3:Delete")) for a in by_action)


def test_the_batch_routes_are_iam_authenticated(synthesized: SynthesizedApp) -> None:
    api_function = synthesized.logical_id(synthesized.stack.batch.api.function)
    methods = [
        r["Properties"]
        for r in synthesized.resources.values()
        if r["Type"] == "AWS::ApiGateway::Method"
        and api_function in json.dumps(r["Properties"].get("Integration", {}))
    ]
    assert sorted(m["HttpMethod"] for m in methods) == ["GET", "GET", "POST"]
    assert all(m["AuthorizationType"] == "AWS_IAM" and not m.get("ApiKeyRequired") for m in methods)
