"""Streaming inference in the template: an encrypted input and output Kinesis stream, the
stream inference function fed by the input stream's event source mapping (partial batch
responses, bisection, bounded retries, a KMS-encrypted failure queue), its capture lines
subscribed to the capture function, and a role that reads models and writes the output only."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from infra.cdk.constructs import stream_inference
from infra.local.event_source_mappings import mappings_from_template

pytestmark = pytest.mark.infra


def _mapping(synthesized: SynthesizedApp) -> dict[str, Any]:
    function = {"Ref": synthesized.logical_id(synthesized.stack.stream_inference.function.function)}
    (mapping,) = [
        m
        for m in synthesized.resources_of_type("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == function
    ]
    return dict(mapping["Properties"])


def test_the_input_stream_invokes_the_function_with_partial_failures_bisection_and_a_failure_queue(
    synthesized: SynthesizedApp,
) -> None:
    properties = _mapping(synthesized)
    stream = synthesized.logical_id(synthesized.stack.stream_inference.input_stream)
    queue = synthesized.logical_id(synthesized.stack.stream_inference.failed_records)

    assert properties["EventSourceArn"] == {"Fn::GetAtt": [stream, "Arn"]}
    assert properties["StartingPosition"] == "TRIM_HORIZON"
    assert (properties["BatchSize"], properties["MaximumBatchingWindowInSeconds"]) == (100, 1)
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] == stream_inference.RETRY_ATTEMPTS == 3
    assert properties["DestinationConfig"] == {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}}
    # One invocation per shard at a time: a key's records are scored in order.
    assert properties.get("ParallelizationFactor", 1) == 1


def test_both_streams_are_encrypted_and_the_failure_queue_uses_kms(synthesized: SynthesizedApp) -> None:
    for stream in (
        synthesized.stack.stream_inference.input_stream,
        synthesized.stack.stream_inference.output_stream,
    ):
        properties = synthesized.resources[synthesized.logical_id(stream)]["Properties"]
        assert properties["StreamEncryption"] == {"EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"}
        assert properties["ShardCount"] == stream_inference.SHARDS
        assert properties["RetentionPeriodHours"] == 24
    queue = synthesized.resources[synthesized.logical_id(synthesized.stack.stream_inference.failed_records)]
    assert queue["Properties"]["KmsMasterKeyId"] == "alias/aws/sqs"
    assert queue["Properties"]["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_the_function_logs_capture_lines_to_the_capture_function(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stack
    synthesized.template.has_resource_properties(
        "AWS::Logs::SubscriptionFilter",
        {
            "LogGroupName": {"Ref": synthesized.logical_id(stack.stream_inference.function.log_group)},
            "DestinationArn": {
                "Fn::GetAtt": [synthesized.logical_id(stack.capture.function.function), "Arn"]
            },
            "FilterPattern": "{ $.mlops_capture = 1 }",
        },
    )
    function = synthesized.resources[synthesized.logical_id(stack.stream_inference.function.function)]
    variables = function["Properties"]["Environment"]["Variables"]
    assert variables["OUTPUT_STREAM"] == {"Ref": synthesized.logical_id(stack.stream_inference.output_stream)}
    assert function["Properties"]["Handler"] == "handler.lambda_handler"
    assert len(function["Properties"]["Layers"]) == 2  # core + serving, as the inference function


def test_the_role_reads_models_and_the_input_and_writes_the_output_only(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stack
    granted: dict[str, list[str]] = {}
    for statement in synthesized.role_policy_statements(stack.stream_inference.function.role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            granted.setdefault(action, []).append(json.dumps(statement["Resource"], sort_keys=True))
    arn = lambda construct: json.dumps({"Fn::GetAtt": [synthesized.logical_id(construct), "Arn"]})  # noqa: E731
    inference = stack.stream_inference

    assert granted["kinesis:PutRecords"] == [arn(inference.output_stream)]
    writes = {a for a in granted if a.startswith("kinesis:") and a != "kinesis:PutRecords"}
    assert writes <= {
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamConsumer",
        "kinesis:DescribeStreamSummary",
        "kinesis:GetRecords",
        "kinesis:GetShardIterator",
        "kinesis:ListShards",
        "kinesis:ListStreams",
        "kinesis:SubscribeToShard",
    }
    assert all(granted[a] == [arn(inference.input_stream)] for a in writes)
    assert {a for a in granted if a.startswith("dynamodb:")} == {"dynamodb:GetItem", "dynamodb:Query"}
    assert granted["dynamodb:GetItem"] == [arn(stack.storage.metadata_table)]
    assert {a for a in granted if a.startswith("s3:")} == {"s3:GetObject", "s3:GetObjectVersion"}
    assert all("/models/*" in resource for resource in granted["s3:GetObject"])
    assert granted["sqs:SendMessage"] == [arn(inference.failed_records)]
    assert not any(a.startswith(("events:", "lambda:")) or a.endswith("*") for a in granted)


def test_the_local_stack_runs_the_mapping_as_declared(synthesized: SynthesizedApp) -> None:
    function = synthesized.logical_id(synthesized.stack.stream_inference.function.function)
    (mapping,) = [m for m in mappings_from_template(synthesized.template_json) if m.function == function]
    declared = _mapping(synthesized)

    assert mapping.kinesis and mapping.source == synthesized.logical_id(
        synthesized.stack.stream_inference.input_stream
    )
    assert mapping.batch_size == declared["BatchSize"]
    assert mapping.max_retries == declared["MaximumRetryAttempts"]
    assert mapping.bisect_on_error and mapping.report_item_failures
    assert mapping.on_failure == synthesized.logical_id(synthesized.stack.stream_inference.failed_records)


def test_the_stack_outputs_name_the_streams_and_the_queue(synthesized: SynthesizedApp) -> None:
    outputs = synthesized.template_json["Outputs"]
    stack = synthesized.stack.stream_inference
    assert outputs["StreamInputName"]["Value"] == {"Ref": synthesized.logical_id(stack.input_stream)}
    assert outputs["StreamOutputName"]["Value"] == {"Ref": synthesized.logical_id(stack.output_stream)}
    assert outputs["StreamFailedRecordsQueueUrl"]["Value"] == {
        "Ref": synthesized.logical_id(stack.failed_records)
    }
