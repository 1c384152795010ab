"""Every prediction is captured: the inference function logs one capture line per request
(no AWS call), and the capture function writes the prediction log and the bulk capture."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest

from mlops_core.serving.capture import (
    CAPTURE_MARKER,
    MAX_LINE_BYTES,
    CaptureLine,
    capture_lines,
    issued_at_ms,
)
from tests.integration.conftest import call
from tests.support import (
    BUCKET,
    PREDICTIONS_TABLE,
    REGION,
    ROW0,
    FakeLambdaContext,
    body,
    load_event,
    subscription_event,
)


def _capture_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("{") and f'"{CAPTURE_MARKER}"' in line]


@pytest.fixture
def capture(aws: None) -> ModuleType:
    from functions.capture import handler

    return handler


def test_a_prediction_logs_one_capture_line_with_what_served_it(
    inference: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    response = body(call(inference, load_event("inference/predict.json")))

    lines = _capture_lines(capsys.readouterr().out)
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert line["prediction_ids"] == response["prediction_ids"]
    assert (line["model_name"], line["model_version"], line["alias"]) == ("breast-cancer", 1, "production")
    assert line["predictions"] == response["predictions"]
    rows = list(CaptureLine.model_validate(line).rows())
    assert line["inputs"]["dtype"] == "<f4"  # what the model saw: float32, in signature order
    assert rows[0].inputs == pytest.approx(ROW0, rel=1e-6)
    assert [r.probabilities for r in rows] == [pytest.approx(p) for p in response["probabilities"]]
    assert [r.prediction_id for r in rows] == response["prediction_ids"]
    assert issued_at_ms(response["prediction_ids"][0]) == pytest.approx(line["at_ms"], abs=1000)


def test_the_capture_function_writes_the_log_and_the_bulk_capture_once(
    inference: ModuleType, capture: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    call(inference, load_event("inference/predict.json", body={"instances": [ROW0, ROW0, ROW0]}))
    lines = _capture_lines(capsys.readouterr().out)
    event = subscription_event(lines)

    first = capture.lambda_handler(event, FakeLambdaContext())
    again = capture.lambda_handler(event, FakeLambdaContext())  # a redelivered batch

    assert (first.pop("counted"), again.pop("counted")) == (True, False)  # traffic counted once
    assert first == again
    assert first["captured"] == 3
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    items = dynamodb.scan(TableName=PREDICTIONS_TABLE)["Items"]
    assert sorted(item["sk"]["S"] for item in items) == ["CAPTURE_BATCH"] + ["PREDICTION"] * 3
    s3 = boto3.client("s3", region_name=REGION)
    (key,) = first["objects"]
    assert key.startswith("capture/breast-cancer/")
    stored = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()
    assert [json.loads(row)["prediction_id"] for row in stored] == json.loads(lines[0])["prediction_ids"]
    assert len(s3.list_object_versions(Bucket=BUCKET, Prefix="capture/")["Versions"]) == 2  # same key twice


def test_the_prediction_log_finds_a_prediction_by_id(
    inference: ModuleType, capture: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = body(call(inference, load_event("inference/predict.json")))["prediction_ids"]
    capture.lambda_handler(subscription_event(_capture_lines(capsys.readouterr().out)), FakeLambdaContext())

    found = capture.prediction_log.get(ids[0])

    assert found is not None
    assert (found.model_name, found.model_version) == ("breast-cancer", 1)
    assert capture.prediction_log.get("01890000-0000-7000-8000-000000000000") is None


def test_an_unreadable_line_is_counted_and_skipped_not_retried_forever(capture: ModuleType) -> None:
    event = subscription_event(['{"mlops_capture": 1, "model_name": 3}'])
    assert capture.lambda_handler(event, FakeLambdaContext()) == {"captured": 0, "objects": []}


def test_a_large_batch_is_split_into_lines_a_log_event_can_hold() -> None:
    rows = 1000
    features = [f"f{i}" for i in range(60)]
    lines = capture_lines(
        model_name="m",
        model_version=1,
        alias="production",
        features=features,
        prediction_ids=[f"id-{i}" for i in range(rows)],
        inputs=np.full((rows, 60), 0.123456789, dtype=np.float64),
        predictions=[0] * rows,
        probabilities=[[0.25, 0.75]] * rows,
        request_id=None,
        at_ms=0,
    )
    assert len(lines) > 1
    assert all(len(line) <= MAX_LINE_BYTES for line in lines)
    assert sum(len(json.loads(line)["prediction_ids"]) for line in lines) == rows


def test_the_sample_subscription_event_is_captured(capture: ModuleType) -> None:
    result = capture.lambda_handler(load_event("capture/subscription.json"), FakeLambdaContext())

    assert result["captured"] == 1
    found = capture.prediction_log.get("019ad8a3-1f40-7a2b-9c3d-4e5f60718293")
    assert found is not None and found.prediction == 0


def test_when_the_log_write_fails_the_prediction_stands_and_the_redelivery_records_it_once(
    inference: ModuleType, capture: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """The caller got its answer before the capture ran; a failing write fails the delivery
    (so CloudWatch Logs and Lambda retry it, then park it in FailedDeliveries) and the retry
    writes the log, the S3 object and the traffic counts once."""
    from mlops_core.errors import Unavailable
    from mlops_core.routing.repository import RoutingRepository
    from tests.support import aws_fault

    response = call(inference, load_event("inference/predict.json"))
    assert response["statusCode"] == 200
    ids = body(response)["prediction_ids"]
    event = subscription_event(_capture_lines(capsys.readouterr().out))

    with (
        aws_fault("dynamodb", "BatchWriteItem", "ProvisionedThroughputExceededException"),
        pytest.raises(Unavailable),
    ):
        capture.lambda_handler(event, FakeLambdaContext())
    assert capture.prediction_log.get(ids[0]) is None

    retried = capture.lambda_handler(event, FakeLambdaContext())
    assert retried["captured"] == 2 and retried["counted"] is True
    assert all(capture.prediction_log.get(i) is not None for i in ids)
    (totals,) = RoutingRepository(capture.metadata_table).variants("breast-cancer")
    assert (totals.calls, totals.requests) == (1, 2)


def test_a_window_of_captured_predictions_is_read_back_by_time(capture: ModuleType) -> None:
    """Predictions across three hours, two deliveries in one hour: the window holds exactly
    those made in it, oldest first; a limit keeps the newest."""
    from mlops_core.feedback.capture_store import CaptureStore
    from mlops_core.serving.capture import CapturedPrediction
    from mlops_core.storage.s3 import ArtifactStore

    hour = 3_600_000
    base = 1_796_000_000_000 - 1_796_000_000_000 % hour

    def row(i: int, at_ms: int) -> CapturedPrediction:
        return CapturedPrediction(
            prediction_id=f"p{i}",
            model_name="m",
            model_version=1,
            alias=None,
            at_ms=at_ms,
            features=["x"],
            inputs=[float(i)],
            prediction=0,
            probabilities=None,
        )

    store = CaptureStore(ArtifactStore(BUCKET))
    store.write([row(0, base - 1), row(1, base + 10)], batch_id="a")
    store.write([row(2, base + 20)], batch_id="b")
    store.write([row(3, base + hour + 5), row(4, base + 2 * hour + 1)], batch_id="c")

    window = store.window("m", start_ms=base, end_ms=base + 2 * hour)
    assert [r.prediction_id for r in window] == ["p1", "p2", "p3"]
    assert [r.prediction_id for r in store.window("m", start_ms=base, end_ms=base + 2 * hour, limit=2)] == [
        "p2",
        "p3",
    ]
    assert store.window("other", start_ms=base, end_ms=base + hour) == []


def test_traffic_counts_retry_a_transaction_the_rewards_updater_is_contending_with(aws: None) -> None:
    from mlops_core.errors import Unavailable
    from mlops_core.feedback.traffic import TrafficCounter
    from mlops_core.routing.repository import RoutingRepository
    from mlops_core.serving.capture import CapturedPrediction
    from mlops_core.storage.dynamo import MetadataTable
    from tests.support import TABLE

    class Contended(MetadataTable):
        conflicts = 2

        def transact(self, operations: Any) -> None:
            if self.conflicts:
                self.conflicts -= 1
                error = Unavailable("prediction log: transaction cancelled (None, TransactionConflict)")
                error.cancellation_reasons = [None, "TransactionConflict"]
                raise error
            super().transact(operations)

    predictions = Contended(PREDICTIONS_TABLE, what="prediction log")
    slept: list[float] = []
    counter = TrafficCounter(predictions, MetadataTable(TABLE), sleep=slept.append)
    row = CapturedPrediction(
        prediction_id="p",
        model_name="m",
        model_version=2,
        alias=None,
        at_ms=1,
        features=[],
        inputs=[],
        prediction=0,
        probabilities=None,
        request_id="r",
    )
    assert counter.count([row], batch_id="b", now_s=0) is True
    assert len(slept) == 2 and predictions.conflicts == 0
    (totals,) = RoutingRepository(MetadataTable(TABLE)).variants("m")
    assert (totals.calls, totals.requests) == (1, 1)
