"""Prediction capture in the template: the prediction log table, the subscription that
feeds the capture function only capture lines, and a role that can only write."""

from __future__ import annotations

import json

import pytest
from synthesized_app import SynthesizedApp

pytestmark = pytest.mark.infra


def test_the_prediction_log_expires_items_and_streams_changes(synthesized: SynthesizedApp) -> None:
    table = synthesized.resources[synthesized.logical_id(synthesized.stack.capture.predictions_table)]
    properties = table["Properties"]
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert properties["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert [k["AttributeName"] for k in properties["KeySchema"]] == ["pk", "sk"]


def test_only_capture_lines_of_the_inference_log_group_reach_the_capture_function(
    synthesized: SynthesizedApp,
) -> None:
    # The stream inference function's log group has its own (tests/infra/test_infra_stream_inference.py).
    (subscription,) = [
        s
        for s in synthesized.resources_of_type("AWS::Logs::SubscriptionFilter").values()
        if s["Properties"]["FilterName"] == "prediction-capture"
    ]
    properties = subscription["Properties"]
    assert properties["FilterPattern"] == "{ $.mlops_capture = 1 }"
    assert properties["LogGroupName"] == {
        "Ref": synthesized.logical_id(synthesized.stack.api.inference.log_group)
    }
    capture = synthesized.logical_id(synthesized.stack.capture.function.function)
    assert properties["DestinationArn"] == {"Fn::GetAtt": [capture, "Arn"]}
    synthesized.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {"Principal": "logs.amazonaws.com", "FunctionName": {"Fn::GetAtt": [capture, "Arn"]}},
    )


def test_failed_deliveries_are_kept_not_dropped(synthesized: SynthesizedApp) -> None:
    queue = synthesized.logical_id(synthesized.stack.capture.failed_deliveries)
    synthesized.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}},
        },
    )


def test_the_capture_role_writes_the_log_and_capture_prefix_only(synthesized: SynthesizedApp) -> None:
    statements = synthesized.role_policy_statements(synthesized.stack.capture.function.role)
    granted = {
        (action, json.dumps(resource, sort_keys=True))
        for statement in statements
        for action in (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        for resource in (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
    }
    actions = {action for action, _ in granted}
    assert not actions & {"dynamodb:DeleteItem", "s3:DeleteObject", "s3:DeleteObjectVersion"}

    def on(resource: object) -> set[str]:
        return {a for a, r in granted if r == json.dumps(resource, sort_keys=True)}

    table = synthesized.logical_id(synthesized.stack.capture.predictions_table)
    # The log in bulk, and one marker per delivery (put in the counting transaction).
    assert on({"Fn::GetAtt": [table, "Arn"]}) == {"dynamodb:BatchWriteItem", "dynamodb:PutItem"}
    metadata = synthesized.logical_id(synthesized.stack.storage.metadata_table)
    # Shadow versions' records are read; the per-version totals are added to.
    metadata_actions = on({"Fn::GetAtt": [metadata, "Arn"]})
    assert metadata_actions == {"dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"}
    writes = [r for a, r in granted if a == "s3:PutObject"]
    assert len(writes) == 1 and "/capture/*" in writes[0]
    reads = [r for a, r in granted if a == "s3:GetObject"]
    assert len(reads) == 1 and "/models/*" in reads[0]
