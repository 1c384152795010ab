"""The local stack's Kinesis poller against moto: records shaped as Lambda delivers them, each
shard's batches in order, partial batch responses, bisection and bounded retries that leave a
poison record alone in the failure queue — and the stream inference function driven by it."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from infra.local.stream_mappings import KinesisPoller, StreamMappings
from tests.support import REGION, ROW0, FakeLambdaContext

INPUT, OUTPUT = "mlops-stream-input-test", "mlops-stream-output-test"


def _template(**properties: Any) -> dict[str, Any]:
    mapping = {
        "EventSourceArn": {"Fn::GetAtt": ["Input", "Arn"]},
        "FunctionName": {"Ref": "Scorer"},
        "BatchSize": 10,
        "StartingPosition": "TRIM_HORIZON",
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "BisectBatchOnFunctionError": True,
        "MaximumRetryAttempts": 2,
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Failed", "Arn"]}}},
        **properties,
    }
    return {
        "Resources": {
            "Input": {"Type": "AWS::Kinesis::Stream"},
            "Scorer": {"Type": "AWS::Lambda::Function"},
            "Failed": {"Type": "AWS::SQS::Queue"},
            "Mapping": {"Type": "AWS::Lambda::EventSourceMapping", "Properties": mapping},
        }
    }


class Function:
    """Stands in for the function: records each batch (by the records' ``n``), answers with ``respond``."""

    def __init__(self, respond: Callable[[list[dict[str, Any]]], Any] = lambda _: None) -> None:
        self.batches: list[list[int]] = []
        self.respond = respond

    def __call__(self, logical_id: str, event: dict[str, Any]) -> Any:
        assert logical_id == "Scorer"
        json.loads(json.dumps(event))  # what Lambda sends is JSON
        self.batches.append([_n(r) for r in event["Records"]])
        return self.respond(event["Records"])


def _n(record: dict[str, Any]) -> int:
    return int(json.loads(base64.b64decode(record["kinesis"]["data"]))["n"])


@pytest.fixture
def queue(aws: None) -> Iterator[str]:
    kinesis = boto3.client("kinesis", region_name=REGION)
    kinesis.create_stream(StreamName=INPUT, ShardCount=2)
    yield str(boto3.client("sqs", region_name=REGION).create_queue(QueueName="failed")["QueueUrl"])


def _mappings(queue: str, invoke: Any, **properties: Any) -> StreamMappings:
    physical = {"Input": INPUT, "Scorer": "scorer", "Failed": queue}
    mappings = StreamMappings(_template(**properties), physical, invoke)
    mappings.start(background=False)
    mappings.pollers[0].retry_delay_seconds = 0.0
    return mappings


def _put(*documents: dict[str, Any] | bytes, key: str = "k") -> None:
    kinesis = boto3.client("kinesis", region_name=REGION)
    for document in documents:
        data = document if isinstance(document, bytes) else json.dumps(document).encode()
        kinesis.put_record(StreamName=INPUT, PartitionKey=key, Data=data)


def _failure_messages(queue: str) -> list[dict[str, Any]]:
    received = boto3.client("sqs", region_name=REGION).receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
    return [json.loads(m["Body"]) for m in received.get("Messages", [])]


def test_records_arrive_shaped_as_lambda_sends_them_in_batches_of_batch_size(queue: str) -> None:
    seen: list[dict[str, Any]] = []
    function = Function(seen.extend)
    mappings = _mappings(queue, function)
    assert isinstance(mappings.pollers[0], KinesisPoller)
    _put(*({"n": i} for i in range(23)))

    mappings.poll()

    assert function.batches == [list(range(10)), list(range(10, 20)), [20, 21, 22]]
    first = seen[0]
    assert first["eventSource"] == "aws:kinesis" and first["eventName"] == "aws:kinesis:record"
    assert first["eventSourceARN"].endswith(f":stream/{INPUT}")
    assert first["eventID"] == f"{first['eventID'].split(':')[0]}:{first['kinesis']['sequenceNumber']}"
    assert first["kinesis"]["partitionKey"] == "k" and isinstance(
        first["kinesis"]["approximateArrivalTimestamp"], float
    )
    mappings.poll()
    assert len(function.batches) == 3  # nothing is delivered twice


def test_each_shard_keeps_its_keys_order(queue: str) -> None:
    function = Function()
    mappings = _mappings(queue, function, BatchSize=100)
    for i in range(40):
        _put({"n": i}, key=f"key-{i % 8}")

    mappings.poll()

    delivered = [n for batch in function.batches for n in batch]
    assert sorted(delivered) == list(range(40))
    for key in range(8):
        of_key = [n for n in delivered if n % 8 == key]
        assert of_key == sorted(of_key)


def test_a_partial_failure_is_retried_from_the_first_failed_record(queue: str) -> None:
    answers = iter([2, None])

    def fail_from_2_once(records: list[dict[str, Any]]) -> Any:
        start = next(answers)
        failed = [] if start is None else records[start:]
        return {"batchItemFailures": [{"itemIdentifier": r["kinesis"]["sequenceNumber"]} for r in failed]}

    function = Function(fail_from_2_once)
    mappings = _mappings(queue, function)
    _put(*({"n": i} for i in range(4)))

    mappings.poll()

    assert function.batches == [[0, 1, 2, 3], [2, 3]]
    assert _failure_messages(queue) == []


def test_bisection_leaves_a_poison_record_alone_in_the_failure_queue_after_the_retries(queue: str) -> None:
    def raise_on_poison(records: list[dict[str, Any]]) -> Any:
        if any(_n(r) == 5 for r in records):
            raise ValueError("poison")
        return None

    function = Function(raise_on_poison)
    mappings = _mappings(queue, function)
    _put(*({"n": i} for i in range(8)))

    mappings.poll()

    scored_once = [n for batch in function.batches if 5 not in batch for n in batch]
    assert sorted(scored_once) == [0, 1, 2, 3, 4, 6, 7]  # every good record once
    assert function.batches.count([5]) == 3  # alone: the first try and two retries
    (message,) = _failure_messages(queue)
    info = message["KinesisBatchInfo"]
    assert (info["batchSize"], message["requestContext"]["condition"]) == (1, "RetryAttemptsExhausted")
    assert info["startSequenceNumber"] == info["endSequenceNumber"]
    assert message["requestContext"]["approximateInvokeCount"] == 3
    assert info["streamArn"].endswith(f":stream/{INPUT}") and info["shardId"].startswith("shardId-")


@pytest.fixture
def stream_function(queue: str, production_model: int) -> Iterator[ModuleType]:
    boto3.client("kinesis", region_name=REGION).create_stream(StreamName=OUTPUT, ShardCount=1)
    from functions.stream_inference import handler

    handler.predictor.clear()
    yield handler
    handler.predictor.clear()


def test_the_stream_inference_function_driven_by_the_poller(queue: str, stream_function: ModuleType) -> None:
    mappings = _mappings(queue, lambda _, event: stream_function.lambda_handler(event, FakeLambdaContext()))
    good = [{"model": "breast-cancer", "features": ROW0, "record_id": f"r{i}"} for i in range(9)]
    _put(*good[:4], b"\x00 not a record", *good[4:])

    mappings.poll()

    kinesis = boto3.client("kinesis", region_name=REGION)
    (shard,) = kinesis.list_shards(StreamName=OUTPUT)["Shards"]
    iterator = kinesis.get_shard_iterator(
        StreamName=OUTPUT, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    results = [r for record in records for r in json.loads(record["Data"])["results"]]
    assert [r["record_id"] for r in results] == [f"r{i}" for i in range(9)]  # once each, in order
    (message,) = _failure_messages(queue)
    assert message["KinesisBatchInfo"]["batchSize"] == 1
