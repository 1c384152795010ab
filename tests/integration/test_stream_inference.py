"""The stream inference function against moto, fed Kinesis events from events/stream_inference/:
results on the output stream in order per key, refusals as results, poison records failing the
invocation with nothing written, dependency failures as batch item failures from the failed
record, and every prediction captured into the prediction log, where feedback finds it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from mlops_core.errors import Unavailable
from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from mlops_core.serving.capture import CAPTURE_MARKER, issued_at_ms
from tests.integration.conftest import call
from tests.support import (
    REGION,
    FakeLambdaContext,
    aws_fault,
    body,
    corrupt_recorded_checksum,
    load_event,
    subscription_event,
    trained_model,
    upload,
)

OUTPUT = "mlops-stream-output-test"


@pytest.fixture
def stream(aws: None) -> Iterator[ModuleType]:
    boto3.client("kinesis", region_name=REGION).create_stream(StreamName=OUTPUT, ShardCount=2)
    from functions.stream_inference import handler

    handler.predictor.clear()
    yield handler
    handler.predictor.clear()


def outputs() -> list[dict[str, Any]]:
    """Every output record, shard by shard, in each shard's order."""
    kinesis = boto3.client("kinesis", region_name=REGION)
    found = []
    for shard in kinesis.list_shards(StreamName=OUTPUT)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=OUTPUT, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
        found.extend({"key": r["PartitionKey"], **json.loads(r["Data"])} for r in page["Records"])
    return found


def results_by_key() -> dict[str, list[dict[str, Any]]]:
    by_key: dict[str, list[dict[str, Any]]] = {}
    for record in outputs():
        assert record["key"] == record["partition_key"]
        by_key.setdefault(record["key"], []).extend(record["results"])
    return by_key


def capture_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("{") and f'"{CAPTURE_MARKER}"' in line]


def invoke(handler: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    return dict(handler.lambda_handler(event, FakeLambdaContext()))


def test_a_batch_is_scored_in_order_per_key_with_refusals_as_results(
    stream: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("stream_inference/kinesis_batch.json")

    response = invoke(stream, event)

    assert response == {"batchItemFailures": []}
    by_key = results_by_key()
    assert sorted(by_key) == ["patient-1", "patient-2", "patient-3"]
    assert [r["record_id"] for r in by_key["patient-1"]] == ["r-1", "r-3", "r-5"]
    first, wrong, last = by_key["patient-1"]
    assert (first["model_name"], first["model_version"], first["alias"]) == ("breast-cancer", 1, "production")
    assert first["prediction"] == last["prediction"] and first["error"] is None
    assert len(first["probabilities"]) == len(first["classes"]) == 2
    # A list in feature order and an object keyed by feature name score the same.
    assert by_key["patient-2"][0]["probabilities"] == pytest.approx(first["probabilities"])
    assert wrong["prediction_id"] is None and wrong["model_version"] == 1
    assert wrong["error"]["type"] == "invalid"
    assert wrong["error"]["details"][0]["loc"] == ["features"]
    assert "expected 10 features, got 9" in wrong["error"]["details"][0]["msg"]
    (unknown,) = by_key["patient-3"]
    assert unknown["error"]["type"] == "not_found" and "no-such-model" in unknown["error"]["message"]
    sequence = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert [r["sequence_number"] for r in by_key["patient-1"]] == [sequence[0], sequence[2], sequence[4]]

    lines = [json.loads(line) for line in capture_lines(capsys.readouterr().out)]
    predictions = [line for line in lines if line.get("kind") != "error"]
    errors = [line for line in lines if line.get("kind") == "error"]
    captured = [pid for line in predictions for pid in line["prediction_ids"]]
    scored = [r["prediction_id"] for rs in by_key.values() for r in rs if r["error"] is None]
    assert sorted(captured) == sorted(scored) and len(scored) == 3
    assert {line["request_key"] for line in predictions} == {"patient-1", "patient-2"}
    assert [(e["model_version"], e["error"]) for e in errors] == [(1, "Invalid")]  # the version's error rate
    assert issued_at_ms(first["prediction_id"]) == int(
        event["Records"][0]["kinesis"]["approximateArrivalTimestamp"] * 1000
    )


def test_a_retried_record_gets_the_same_prediction_id(stream: ModuleType, production_model: int) -> None:
    event = load_event("stream_inference/kinesis_batch.json")
    invoke(stream, event)
    invoke(stream, event)

    by_key = results_by_key()
    ids = [r["prediction_id"] for r in by_key["patient-1"]]
    assert len(ids) == 6 and ids[:3] == ids[3:]  # written twice (at least once), same ids


def test_streamed_predictions_reach_the_prediction_log_and_take_feedback(
    stream: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.capture import handler as capture
    from functions.feedback import handler as feedback

    invoke(stream, load_event("stream_inference/kinesis_batch.json"))
    lines = capture_lines(capsys.readouterr().out)
    delivered = capture.lambda_handler(
        subscription_event(lines, log_group="/aws/lambda/stream-inference"), FakeLambdaContext()
    )
    assert delivered["captured"] == 3
    first = results_by_key()["patient-1"][0]

    logged = capture.prediction_log.get(first["prediction_id"])
    assert logged is not None
    assert (logged.model_name, logged.model_version, logged.prediction) == (
        "breast-cancer",
        1,
        first["prediction"],
    )
    assert logged.request_key == "patient-1"
    answer = call(
        feedback,
        load_event("feedback/reward.json", body={"prediction_id": first["prediction_id"], "reward": 1}),
    )
    assert answer["statusCode"] == 200, answer["body"]
    assert body(answer)["model_version"] == 1


def test_a_poison_record_fails_the_invocation_and_nothing_is_written(
    stream: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(stream.PoisonRecord, match="not JSON"):
        invoke(stream, load_event("stream_inference/kinesis_poison.json"))

    assert outputs() == []
    assert capture_lines(capsys.readouterr().out) == []


@pytest.fixture
def second_model(registry: ModelRegistry, production_model: int) -> str:
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/other/model.onnx", data)
    version = registry.register_version(
        "other", RegisterVersionRequest(artifact_key="uploads/other/model.onnx", signature=signature)
    )
    registry.set_alias("other", "production", version.version)
    return "other"


def test_a_failing_dependency_stops_the_batch_at_that_record(
    stream: ModuleType, second_model: str, capsys: pytest.CaptureFixture[str]
) -> None:
    event = load_event("stream_inference/kinesis_batch.json")
    event["Records"] = event["Records"][:2] + event["Records"][4:]  # r-1, r-2, r-5
    data = json.loads(stream.base64.b64decode(event["Records"][1]["kinesis"]["data"]))
    event["Records"][1]["kinesis"]["data"] = stream.base64.b64encode(
        json.dumps({**data, "model": second_model}).encode()
    ).decode()
    corrupt_recorded_checksum(second_model, 1)  # its artifact is refused: an IntegrityError

    response = invoke(stream, event)

    sequence = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
    assert response == {"batchItemFailures": [{"itemIdentifier": s} for s in sequence[1:]]}
    assert [r["record_id"] for rs in results_by_key().values() for r in rs] == ["r-1"]
    captured = [
        pid for line in capture_lines(capsys.readouterr().out) for pid in json.loads(line)["prediction_ids"]
    ]
    assert len(captured) == 1


def test_an_output_stream_failure_writes_nothing_and_fails_the_invocation(
    stream: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    stream.output.pause_seconds = 0.0
    try:
        with (
            aws_fault("kinesis", "PutRecords", "ProvisionedThroughputExceededException"),
            pytest.raises(Unavailable),
        ):
            invoke(stream, load_event("stream_inference/kinesis_batch.json"))
    finally:
        stream.output.pause_seconds = 0.1

    assert capture_lines(capsys.readouterr().out) == []
