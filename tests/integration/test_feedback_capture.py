"""The bulk feedback against moto: the feedback-capture function writes each stream batch's
feedback once, under the batch's first sequence number, however often the batch is delivered;
``FeedbackStore.window`` reads each feedback once; concept drift reads it and keeps ADWIN's
state in the metadata table."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import pytest

from mlops_core.data.profiles import MetricBaseline, ReferenceProfile
from mlops_core.errors import Unavailable
from mlops_core.feedback.feedback_store import FeedbackStore
from mlops_core.monitoring.concept_window import ConceptStateRepository, evaluate_concept
from mlops_core.monitoring.config import ConceptSettings
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from tests.integration.rewards_support import (
    AT_MS,
    feedback,
    feedback_inserts,
    record_feedback,
    stream_records,
)
from tests.support import BUCKET, REGION, TABLE, FakeLambdaContext, aws_fault, load_event


@pytest.fixture
def capture(aws: None) -> ModuleType:
    from functions.feedback_capture import handler

    return handler


def _objects(prefix: str = "feedback/") -> dict[str, list[dict[str, Any]]]:
    s3 = boto3.client("s3", region_name=REGION)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    return {
        item["Key"]: [
            json.loads(line)
            for line in s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read().decode().splitlines()
        ]
        for item in listed
    }


def _versions(key: str) -> int:
    listed = boto3.client("s3", region_name=REGION).list_object_versions(Bucket=BUCKET, Prefix=key)
    return len(listed.get("Versions", []))


def test_a_batch_is_written_once_under_its_first_sequence_number_and_a_redelivery_rewrites_it(
    capture: ModuleType,
) -> None:
    given = [feedback(f"p-{i:02d}", version=1 + i % 2, reward=float(i % 2)) for i in range(30)]
    given += [feedback(f"q-{i:02d}", version=1, reward=1.0, model="other") for i in range(5)]
    for record in given:
        assert record_feedback(record)
    records = feedback_inserts(stream_records())
    first_sequence = records[0]["dynamodb"]["SequenceNumber"]

    answer = capture.lambda_handler({"Records": records}, FakeLambdaContext())
    written = _objects()
    again = capture.lambda_handler({"Records": records}, FakeLambdaContext())  # Lambda retries the batch

    assert answer == again == {"feedback": 35, "objects": 2, "unreadable": 0}
    assert sorted(written) == [
        f"feedback/m/2026/12/01/08/{first_sequence}.jsonl",
        f"feedback/other/2026/12/01/08/{first_sequence}.jsonl",
    ]
    assert _objects() == written  # the same objects, the same lines: nothing new
    line = written[f"feedback/m/2026/12/01/08/{first_sequence}.jsonl"][1]
    assert line == {
        "prediction_id": "p-01",
        "model_name": "m",
        "model_version": 2,
        "reward": 1.0,
        "label": 1,
        "prediction": 1,
        "at_ms": AT_MS + 1000,
        "prediction_at_ms": AT_MS,
    }
    store = FeedbackStore(ArtifactStore(BUCKET))
    window = store.window("m", start_ms=AT_MS, end_ms=AT_MS + 60_000)
    assert [r.prediction_id for r in window] == [f"p-{i:02d}" for i in range(30)]
    assert [r.prediction_id for r in store.window("m", start_ms=AT_MS, end_ms=AT_MS + 60_000, limit=5)] == [
        f"p-{i:02d}" for i in range(25, 30)
    ]


def test_overlapping_batches_still_read_back_as_one_feedback_per_prediction(capture: ModuleType) -> None:
    for i in range(10):
        record_feedback(feedback(f"p-{i}", version=1, reward=1.0))
    records = feedback_inserts(stream_records())

    capture.lambda_handler({"Records": records[:6]}, FakeLambdaContext())
    capture.lambda_handler({"Records": records[3:]}, FakeLambdaContext())  # a batch re-formed from record 3

    assert len(_objects()) == 2
    window = FeedbackStore(ArtifactStore(BUCKET)).window("m", start_ms=AT_MS, end_ms=AT_MS + 60_000)
    assert sorted(r.prediction_id for r in window) == [f"p-{i}" for i in range(10)]


def test_other_changes_are_ignored_and_unreadable_feedback_is_skipped_not_retried(
    capture: ModuleType,
) -> None:
    record_feedback(feedback("p-1", version=1, reward=1.0))
    records = stream_records()
    modify = json.loads(json.dumps(records[0]))
    modify["eventName"] = "MODIFY"
    broken = json.loads(json.dumps(records[0]))
    broken["dynamodb"]["SequenceNumber"] = "9" * 21
    broken["dynamodb"]["NewImage"]["reward"] = {"N": "7"}

    answer = capture.lambda_handler({"Records": [*records, modify, broken]}, FakeLambdaContext())

    assert answer == {"feedback": 1, "objects": 1, "unreadable": 1}


def test_the_sample_event_is_written_as_two_lines_and_an_s3_failure_fails_the_batch(
    capture: ModuleType,
) -> None:
    event = load_event("feedback_capture/feedback_stream.json")
    with aws_fault("s3", "PutObject", "SlowDown", 503), pytest.raises(Unavailable):
        capture.lambda_handler(event, FakeLambdaContext())
    assert _objects() == {}  # Lambda delivers the batch again

    assert capture.lambda_handler(event, FakeLambdaContext()) == {
        "feedback": 2,
        "objects": 1,
        "unreadable": 0,
    }
    ((key, lines),) = _objects().items()
    assert key.endswith("/111100000000017454423009.jsonl") and key.startswith("feedback/breast-cancer/")
    assert [(line["label"], line["prediction"], line["reward"]) for line in lines] == [
        (0, 0, 1.0),
        (1, 0, 0.0),
    ]
    assert _versions(key) == 1


def test_concept_drift_reads_the_bulk_feedback_and_keeps_adwin_in_the_metadata_table(aws: None) -> None:
    store = FeedbackStore(ArtifactStore(BUCKET))
    records = [feedback(f"p-{i:03d}", version=1, reward=float(i % 4 != 0)) for i in range(200)]
    records = [r.model_copy(update={"at_ms": AT_MS + i * 1000}) for i, r in enumerate(records)]
    store.write(records, batch_id="111")
    profile = ReferenceProfile(
        rows=569,
        features={},
        metric_baseline=MetricBaseline(metric="roc_auc", value=0.99, rows=114, accuracy=0.95),
    )
    repository = ConceptStateRepository(MetadataTable(TABLE))

    def run() -> Any:
        return evaluate_concept(
            "m",
            AT_MS,
            AT_MS + 3_600_000,
            profile.model_dump(mode="json"),  # the profile as stored (a JSON document) works too
            ConceptSettings(),
            feedback_store=store,
            state_repository=repository,
            model_version=1,
        )

    first = run()
    assert first.status == "drift" and first.degraded and first.live_metric == pytest.approx(0.75)
    state = repository.get("m")
    assert state is not None and (state.revision, state.seen, state.model_version) == (1, 200, 1)
    assert state.adwin.width == 200 and state.adwin.total == pytest.approx(50.0)  # exactly, through DynamoDB
    item = MetadataTable(TABLE).get("MODEL#m", "CONCEPT")
    assert item is not None and isinstance(item["adwin"], str)

    second = run()  # the same window again: ADWIN is fed nothing twice
    assert second.adwin is not None and (second.adwin.fed, second.adwin.seen) == (0, 200)
    assert repository.get("m") == state
