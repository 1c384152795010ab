"""The local stack's stream poller against moto: the filter, batch size and window, partial
batch responses, retries, bisection and the failure queue behave as Lambda's do."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import boto3
import pytest

from infra.local.stream_mappings import StreamMappings
from mlops_core.routing.bandit import Arm
from mlops_core.storage.dynamo import MetadataTable
from tests.integration.rewards_support import arms, feedback, record_feedback
from tests.support import PREDICTIONS_TABLE, REGION, TABLE, FakeLambdaContext

FEEDBACK_ONLY = '{"eventName":["INSERT"],"dynamodb":{"Keys":{"sk":{"S":["FEEDBACK"]}}}}'


def _template(**properties: Any) -> dict[str, Any]:
    mapping = {
        "EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]},
        "FunctionName": {"Ref": "Rewards"},
        "BatchSize": 3,
        "StartingPosition": "TRIM_HORIZON",
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "MaximumRetryAttempts": 2,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Failed", "Arn"]}}},
        "FilterCriteria": {"Filters": [{"Pattern": FEEDBACK_ONLY}]},
        **properties,
    }
    return {
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "Rewards": {"Type": "AWS::Lambda::Function"},
            "Failed": {"Type": "AWS::SQS::Queue"},
            "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": mapping},
        }
    }


def _id(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["Keys"]["pk"]["S"].removeprefix("PREDICTION#"))


class Function:
    """Stands in for the function: records each batch (by prediction id), answers with
    ``respond(records)``."""

    def __init__(self, respond: Callable[[list[dict[str, Any]]], Any] = lambda _: None) -> None:
        self.batches: list[list[str]] = []
        self.sequence: dict[str, str] = {}
        self.respond = respond

    def __call__(self, logical_id: str, event: dict[str, Any]) -> Any:
        assert logical_id == "Rewards"
        json.dumps(event)  # what Lambda sends is JSON
        self.batches.append([_id(r) for r in event["Records"]])
        self.sequence.update({_id(r): r["dynamodb"]["SequenceNumber"] for r in event["Records"]})
        return self.respond(event["Records"])


def failing(*ids: str) -> Callable[[list[dict[str, Any]]], Any]:
    """A response reporting the records of ``ids`` as batch item failures."""
    return lambda records: {
        "batchItemFailures": [
            {"itemIdentifier": r["dynamodb"]["SequenceNumber"]} for r in records if _id(r) in ids
        ]
    }


@pytest.fixture
def queue(aws: None) -> str:
    return str(boto3.client("sqs", region_name=REGION).create_queue(QueueName="failed")["QueueUrl"])


def _mappings(queue: str, invoke: Any, **properties: Any) -> StreamMappings:
    physical = {"Table": PREDICTIONS_TABLE, "Rewards": "rewards", "Failed": queue}
    mappings = StreamMappings(_template(**properties), physical, invoke)
    mappings.start(background=False)
    mappings.pollers[0].retry_delay_seconds = 0.0
    return mappings


def _write(*ids: str) -> None:
    for prediction_id in ids:
        assert record_feedback(feedback(prediction_id, version=1, reward=1.0))


def _failure_messages(queue: str) -> list[dict[str, Any]]:
    received = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def test_only_feedback_inserts_reach_the_function_in_batches_of_batch_size(queue: str) -> None:
    function = Function()
    mappings = _mappings(queue, function)
    log = MetadataTable(PREDICTIONS_TABLE)
    log.put({"pk": "PREDICTION#x", "sk": "PREDICTION", "model_name": "m"})  # not feedback
    _write(*(f"f{i}" for i in range(7)))
    log.update("PREDICTION#f0", "FEEDBACK", update="SET counted_at = :t", values={":t": "now"})  # MODIFY
    log._client.delete_item(
        TableName=PREDICTIONS_TABLE, Key={"pk": {"S": "PREDICTION#f1"}, "sk": {"S": "FEEDBACK"}}
    )

    mappings.poll()

    assert function.batches == [["f0", "f1", "f2"], ["f3", "f4", "f5"], ["f6"]]
    mappings.poll()
    assert len(function.batches) == 3  # nothing is delivered twice


def test_the_batching_window_holds_records_until_it_has_passed(queue: str) -> None:
    function = Function()
    mappings = _mappings(queue, function, MaximumBatchingWindowInSeconds=60)
    _write("f0", "f1")

    mappings.poll()
    assert function.batches == []  # fewer than BatchSize, and the window is still open
    mappings.stop()  # the stack stopping delivers what is pending
    assert function.batches == [["f0", "f1"]]


def test_a_partial_failure_is_retried_from_the_first_failed_record(queue: str) -> None:
    answers = iter([failing("f1"), failing()])

    def fail_f1_once(records: list[dict[str, Any]]) -> Any:
        return next(answers)(records)

    function = Function(fail_f1_once)
    mappings = _mappings(queue, function)
    _write("f0", "f1", "f2")

    mappings.poll()

    assert function.batches == [["f0", "f1", "f2"], ["f1", "f2"]]
    assert _failure_messages(queue) == []


def test_after_the_retries_the_rest_of_the_batch_goes_to_the_failure_queue(queue: str) -> None:
    function = Function(failing("f1"))
    mappings = _mappings(queue, function)
    _write("f0", "f1", "f2")

    mappings.poll()

    assert function.batches == [["f0", "f1", "f2"], ["f1", "f2"], ["f1", "f2"]]  # MaximumRetryAttempts 2
    (message,) = _failure_messages(queue)
    info = message["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (
        function.sequence["f1"],
        function.sequence["f2"],
    )
    assert info["batchSize"] == 2 and message["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert message["requestContext"]["functionArn"].endswith(":function:rewards")
    _write("f3")
    mappings.poll()
    assert function.batches[-1] == ["f3"]  # the stream moves on


def test_a_function_error_bisects_the_batch_down_to_the_failing_record(queue: str) -> None:
    def fail_on_f2(records: list[dict[str, Any]]) -> Any:
        if "f2" in [_id(r) for r in records]:
            raise RuntimeError("poison")
        return None

    function = Function(fail_on_f2)
    mappings = _mappings(
        queue, function, BatchSize=4, BisectBatchOnFunctionError=True, MaximumRetryAttempts=1
    )
    _write("f0", "f1", "f2", "f3")

    mappings.poll()

    assert function.batches == [["f0", "f1", "f2", "f3"], ["f0", "f1"], ["f2", "f3"], ["f2"], ["f2"], ["f3"]]
    (message,) = _failure_messages(queue)
    assert message["DDBStreamBatchInfo"]["startSequenceNumber"] == function.sequence["f2"]


def test_a_response_naming_a_record_not_in_the_batch_fails_the_whole_batch(queue: str) -> None:
    answers = iter([{"batchItemFailures": [{"itemIdentifier": "not-a-record"}]}, None])
    function = Function(lambda _: next(answers))
    mappings = _mappings(queue, function)
    _write("f0", "f1")

    mappings.poll()

    assert function.batches == [["f0", "f1"], ["f0", "f1"]]


def test_the_stream_is_still_read_after_a_cancelled_transaction(queue: str) -> None:
    """moto replaces a table (and its stream) when it rolls a transaction back: a poller that
    kept its iterator would miss every later record, or see the rolled-back ones."""
    function = Function()
    mappings = _mappings(queue, function)
    _write("f0")
    mappings.poll()
    log = MetadataTable(PREDICTIONS_TABLE)
    phantom = {"pk": "PREDICTION#phantom", "sk": "FEEDBACK", "model_name": "m"}
    impossible = log.check_op("PREDICTION#f0", "FEEDBACK", condition="attribute_not_exists(pk)")
    with pytest.raises(Exception, match="changed or already exists"):
        log.transact([log.put_op(phantom), impossible])

    _write("f1")
    mappings.poll()

    assert function.batches == [["f0"], ["f1"]]


def test_latest_starts_after_what_the_stream_held(queue: str) -> None:
    _write("f0")
    function = Function()
    mappings = _mappings(queue, function, StartingPosition="LATEST")
    _write("f1")

    mappings.poll()

    assert function.batches == [["f1"]]


def test_the_rewards_function_driven_by_the_poller_counts_once_despite_retries(queue: str) -> None:
    from functions.rewards import handler

    rewards: ModuleType = handler
    record_feedback(feedback("good-0", version=1, reward=1.0, model="good"))
    record_feedback(feedback("bad-0", version=1, reward=1.0, model="bad"))
    record_feedback(feedback("good-1", version=1, reward=0.0, model="good"))
    MetadataTable(TABLE).put({"pk": "MODEL#bad", "sk": "ROUTING", "model_name": "bad", "policy": "?"})
    mappings = _mappings(queue, lambda _, event: rewards.lambda_handler(event, FakeLambdaContext()))

    mappings.poll()

    assert arms("good").arms == (Arm(1, 1.0, 1.0),)  # good-1 was delivered three times, counted once
    (message,) = _failure_messages(queue)
    assert message["DDBStreamBatchInfo"]["batchSize"] == 2  # bad-0 and what followed it
