"""The feedback capture and the retraining loop in the template: a second reader of the prediction
log's stream that writes feedback/ and nothing else, and a DriftDetected rule whose function
reads what it joins, writes datasets/ and its own items, and starts the training workflow."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from infra.cdk.constructs.functions import ServiceFunction
from infra.local.event_source_mappings import mappings_from_template

pytestmark = pytest.mark.infra


def _grants(synthesized: SynthesizedApp, function: ServiceFunction) -> dict[str, list[tuple[str, Any]]]:
    """action -> [(resource, condition)] of the function's role."""
    granted: dict[str, list[tuple[str, Any]]] = {}
    for statement in synthesized.role_policy_statements(function.role):
        assert statement["Effect"] == "Allow", statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            for resource in resources:
                granted.setdefault(action, []).append(
                    (json.dumps(resource, sort_keys=True), statement.get("Condition"))
                )
    return granted


def _arn(logical_id: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)


def _objects(synthesized: SynthesizedApp, pattern: str) -> str:
    bucket = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    return json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{pattern}"]]}, sort_keys=True)


def _mapping_of(synthesized: SynthesizedApp, function: ServiceFunction) -> dict[str, Any]:
    ref = {"Ref": synthesized.logical_id(function.function)}
    (mapping,) = [
        m
        for m in synthesized.resources_of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == ref
    ]
    return dict(mapping["Properties"])


# ---- feedback capture --------------------------------------------------------------------------
def test_the_feedback_capture_reads_the_same_stream_and_filter_as_the_rewards_function(
    synthesized: SynthesizedApp,
) -> None:
    stack = synthesized.stack
    capture = _mapping_of(synthesized, stack.feedback_capture.function)
    rewards = _mapping_of(synthesized, stack.rewards.function)
    queue = synthesized.logical_id(stack.feedback_capture.failed_batches)

    assert capture["EventSourceArn"] == rewards["EventSourceArn"]
    assert capture["FilterCriteria"] == rewards["FilterCriteria"]  # FEEDBACK inserts only
    assert capture["StartingPosition"] == "TRIM_HORIZON"
    assert (capture["BatchSize"], capture["MaximumBatchingWindowInSeconds"]) == (1000, 5)
    # A batch is written whole: retried whole (same first sequence number, same objects).
    assert capture.get("BisectBatchOnFunctionError", False) is False
    assert "FunctionResponseTypes" not in capture
    assert capture["MaximumRetryAttempts"] == 10
    assert capture["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}}
    assert len(synthesized.resources_of_type("AWS::Lambda::EventSourceMapping")) == 2  # DynamoDB's advice


def test_the_local_stack_runs_the_feedback_capture_mapping_as_declared(synthesized: SynthesizedApp) -> None:
    function = synthesized.logical_id(synthesized.stack.feedback_capture.function.function)
    (mapping,) = [m for m in mappings_from_template(synthesized.template_json) if m.function == function]

    assert (mapping.batch_size, mapping.batching_window_seconds, mapping.max_retries) == (1000, 5.0, 10)
    assert not mapping.bisect_on_error and not mapping.report_item_failures
    assert mapping.on_failure == synthesized.logical_id(synthesized.stack.feedback_capture.failed_batches)


def test_the_feedback_capture_role_writes_feedback_objects_and_nothing_else(
    synthesized: SynthesizedApp,
) -> None:
    stack = synthesized.stack
    granted = _grants(synthesized, stack.feedback_capture.function)
    predictions = synthesized.logical_id(stack.capture.predictions_table)

    assert granted["s3:PutObject"] == [(_objects(synthesized, "feedback/*"), None)]
    assert {a for a in granted if a.startswith("s3:")} == {"s3:PutObject"}
    assert {a for a in granted if a.startswith("dynamodb:")} == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    stream = json.dumps({"Fn::GetAtt": [predictions, "StreamArn"]}, sort_keys=True)
    assert granted["dynamodb:GetRecords"] == [(stream, None)]
    variables = synthesized.resources[synthesized.logical_id(stack.feedback_capture.function.function)][
        "Properties"
    ]["Environment"]["Variables"]
    assert variables["ARTIFACTS_BUCKET"] == {"Ref": synthesized.logical_id(stack.storage.artifacts_bucket)}
    assert "METADATA_TABLE" not in variables and "PREDICTIONS_TABLE" not in variables


# ---- retraining ----------------------------------------------------------------------------------
def test_drift_detected_on_the_project_bus_invokes_the_retrain_function(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stack
    rule = synthesized.resources[synthesized.logical_id(stack.retraining.rule)]["Properties"]

    assert rule["EventBusName"] == {"Ref": synthesized.logical_id(stack.events.bus)}
    assert rule["EventPattern"] == {"source": ["serverless-mlops"], "detail-type": ["DriftDetected"]}
    assert rule.get("State", "ENABLED") == "ENABLED"  # the function itself checks the per-model switch
    (target,) = rule["Targets"]
    assert target["Arn"] == {
        "Fn::GetAtt": [synthesized.logical_id(stack.retraining.function.function), "Arn"]
    }
    function = {"Ref": synthesized.logical_id(stack.retraining.function.function)}
    (invoke_config,) = [
        c["Properties"]
        for c in synthesized.resources_of_type("AWS::Lambda::EventInvokeConfig").values()
        if c["Properties"]["FunctionName"] == function
    ]
    queue = synthesized.logical_id(stack.retraining.failed_events)
    assert invoke_config["MaximumRetryAttempts"] == 2
    assert invoke_config["DestinationConfig"] == {
        "OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}
    }


def test_the_retrain_role_reads_what_it_joins_writes_datasets_and_its_items_and_starts_training(
    synthesized: SynthesizedApp,
) -> None:
    stack = synthesized.stack
    granted = _grants(synthesized, stack.retraining.function)
    metadata = synthesized.logical_id(stack.storage.metadata_table)
    models_only = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["MODEL#*"]}}

    assert {a for a in granted if a.startswith("dynamodb:")} == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
    }
    assert granted["dynamodb:PutItem"] == granted["dynamodb:UpdateItem"] == [(_arn(metadata), models_only)]
    index = json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [metadata, "Arn"]}, "/index/gsi1"]]}, sort_keys=True)
    assert sorted(resource for resource, _ in granted["dynamodb:Query"]) == sorted([_arn(metadata), index])
    reads = {resource for resource, _ in granted["s3:GetObject"]}
    assert reads == {_objects(synthesized, p) for p in ("capture/*", "feedback/*", "datasets/*")}
    # By version id only the base training data (its run pinned one), never the live capture.
    assert {resource for resource, _ in granted["s3:GetObjectVersion"]} == {
        _objects(synthesized, "datasets/*")
    }
    assert granted["s3:PutObject"] == [(_objects(synthesized, "datasets/*"), None)]
    listed = sorted(
        p for _, condition in granted["s3:ListBucket"] for p in condition["StringLike"]["s3:prefix"]
    )
    assert listed == ["capture/*", "datasets/*", "feedback/*"]
    machine = json.dumps({"Ref": synthesized.logical_id(stack.training.state_machine)}, sort_keys=True)
    assert granted["states:StartExecution"] == [(machine, None)]
    assert {a for a in granted if a.startswith("states:")} == {"states:StartExecution"}
    assert not any(a.endswith(("Delete", "DeleteItem", "DeleteObject")) for a in granted)


def test_the_retrain_function_knows_the_bucket_the_table_and_the_state_machine(
    synthesized: SynthesizedApp,
) -> None:
    stack = synthesized.stack
    properties = synthesized.resources[synthesized.logical_id(stack.retraining.function.function)][
        "Properties"
    ]
    variables = properties["Environment"]["Variables"]

    assert variables["ARTIFACTS_BUCKET"] == {"Ref": synthesized.logical_id(stack.storage.artifacts_bucket)}
    assert variables["METADATA_TABLE"] == {"Ref": synthesized.logical_id(stack.storage.metadata_table)}
    assert variables["STATE_MACHINE_ARN"] == {"Ref": synthesized.logical_id(stack.training.state_machine)}
    assert properties["Handler"] == "handler.lambda_handler"
    assert properties["Layers"] == [
        {"Ref": synthesized.logical_id(stack.layers.core)}
    ]  # no scipy, no sklearn


def test_evaluate_may_write_the_runs_profile_it_completes(synthesized: SynthesizedApp) -> None:
    granted = _grants(synthesized, synthesized.stack.training.evaluate)
    assert granted["s3:PutObject"] == [(_objects(synthesized, "runs/*"), None)]
