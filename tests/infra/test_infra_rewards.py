"""Bandit reward updates in the template: the rewards function, invoked by the prediction log's
stream for feedback inserts only, with partial batch responses, bounded retries and a failure
queue, and a role that can only mark feedback and write a model's counts."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from infra.local.event_patterns import matches, parse_pattern
from infra.local.event_source_mappings import mappings_from_template

pytestmark = pytest.mark.infra


def _mapping(synthesized: SynthesizedApp) -> dict[str, Any]:
    """The rewards function's mapping (the stream has a second reader: the feedback capture)."""
    function = {"Ref": synthesized.logical_id(synthesized.stack.rewards.function.function)}
    (mapping,) = [
        m
        for m in synthesized.resources_of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == function
    ]
    return dict(mapping["Properties"])


def test_the_prediction_logs_stream_invokes_the_rewards_function(synthesized: SynthesizedApp) -> None:
    properties = _mapping(synthesized)
    table = synthesized.logical_id(synthesized.stack.capture.predictions_table)
    function = synthesized.logical_id(synthesized.stack.rewards.function.function)
    queue = synthesized.logical_id(synthesized.stack.rewards.failed_records)

    assert properties["EventSourceArn"] == {"Fn::GetAtt": [table, "StreamArn"]}
    assert properties["FunctionName"] == {"Ref": function}
    assert properties["StartingPosition"] == "TRIM_HORIZON"  # feedback recorded before the mapping counts
    assert (properties["BatchSize"], properties["MaximumBatchingWindowInSeconds"]) == (100, 1)
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] == 5
    assert properties["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}}
    stream = synthesized.resources[table]["Properties"]["StreamSpecification"]["StreamViewType"]
    assert stream in {"NEW_IMAGE", "NEW_AND_OLD_IMAGES"}  # the updater reads the feedback from the image


def test_only_inserts_of_feedback_items_invoke_it(synthesized: SynthesizedApp) -> None:
    (only,) = _mapping(synthesized)["FilterCriteria"]["Filters"]
    pattern = parse_pattern(only["Pattern"])

    def record(event_name: str, sk: str) -> dict[str, Any]:
        return {"eventName": event_name, "dynamodb": {"Keys": {"pk": {"S": "PREDICTION#1"}, "sk": {"S": sk}}}}

    assert matches(pattern, record("INSERT", "FEEDBACK"))
    for name, sk in (("MODIFY", "FEEDBACK"), ("REMOVE", "FEEDBACK"), ("INSERT", "PREDICTION")):
        assert not matches(pattern, record(name, sk))


def test_the_local_stack_runs_the_mapping_as_declared(synthesized: SynthesizedApp) -> None:
    rewards = synthesized.logical_id(synthesized.stack.rewards.function.function)
    (mapping,) = [m for m in mappings_from_template(synthesized.template_json) if m.function == rewards]
    declared = _mapping(synthesized)

    assert mapping.batch_size == declared["BatchSize"]
    assert mapping.batching_window_seconds == declared["MaximumBatchingWindowInSeconds"]
    assert mapping.max_retries == declared["MaximumRetryAttempts"]
    assert mapping.bisect_on_error and mapping.report_item_failures
    assert mapping.on_failure == synthesized.logical_id(synthesized.stack.rewards.failed_records)


def _grants(synthesized: SynthesizedApp) -> dict[str, list[tuple[str, Any]]]:
    """action -> [(resource, condition)] of the rewards role."""
    granted: dict[str, list[tuple[str, Any]]] = {}
    for statement in synthesized.role_policy_statements(synthesized.stack.rewards.function.role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            granted.setdefault(action, []).append(
                (json.dumps(statement["Resource"], sort_keys=True), statement.get("Condition"))
            )
    return granted


def test_the_rewards_role_marks_feedback_and_writes_model_counts_only(synthesized: SynthesizedApp) -> None:
    granted = _grants(synthesized)
    predictions = synthesized.logical_id(synthesized.stack.capture.predictions_table)
    metadata = synthesized.logical_id(synthesized.stack.storage.metadata_table)
    table_arn = lambda logical_id: json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)  # noqa: E731

    dynamodb = {a for a in granted if a.startswith("dynamodb:")}
    assert dynamodb == {
        "dynamodb:UpdateItem",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    }
    leading = lambda prefix: {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [prefix]}}  # noqa: E731
    assert sorted(granted["dynamodb:UpdateItem"], key=str) == sorted(
        [(table_arn(predictions), leading("PREDICTION#*")), (table_arn(metadata), leading("MODEL#*"))],
        key=str,
    )
    assert (
        granted["dynamodb:GetItem"]
        == granted["dynamodb:PutItem"]
        == [(table_arn(metadata), leading("MODEL#*"))]
    )
    stream = json.dumps({"Fn::GetAtt": [predictions, "StreamArn"]}, sort_keys=True)
    assert granted["dynamodb:GetRecords"] == [(stream, None)]
    assert not any(a.startswith("s3:") for a in granted)
    queue = synthesized.logical_id(synthesized.stack.rewards.failed_records)
    assert granted["sqs:SendMessage"] == [(table_arn(queue), None)]


def test_the_function_knows_both_tables(synthesized: SynthesizedApp) -> None:
    function = synthesized.resources[synthesized.logical_id(synthesized.stack.rewards.function.function)]
    variables = function["Properties"]["Environment"]["Variables"]

    assert variables["METADATA_TABLE"] == {
        "Ref": synthesized.logical_id(synthesized.stack.storage.metadata_table)
    }
    assert variables["PREDICTIONS_TABLE"] == {
        "Ref": synthesized.logical_id(synthesized.stack.capture.predictions_table)
    }
    assert function["Properties"]["Handler"] == "handler.lambda_handler"
