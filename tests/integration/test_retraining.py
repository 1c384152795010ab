"""The retraining loop against moto, fed DriftDetected events as EventBridge delivers them: the
dataset is the drift window's captured predictions joined with their feedback labels (plus the
production version's training data), the training workflow (a stand-in state machine here)
starts with the last successful configuration, once per event and cooldown, and only where
the model's monitoring configuration switches retraining on."""

from __future__ import annotations

import copy
import csv
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3
import numpy as np
import pytest

from infra.local.sample_data import DATASET_PREFIX, breast_cancer
from mlops_core.clock import iso
from mlops_core.data.schema import DatasetSchema, load_csv
from mlops_core.feedback.capture_store import CaptureStore
from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.feedback.feedback_store import FeedbackStore
from mlops_core.monitoring.config import MonitoringConfig, RetrainingSettings
from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from mlops_core.registry.signature import sha256_hex
from mlops_core.retraining.repository import RetrainingRepository
from mlops_core.retraining.service import RetrainingService
from mlops_core.serving.capture import CapturedPrediction, prediction_ids
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import TrainingWorkflow
from mlops_core.training.steps import validate_data
from mlops_core.training.tracking import RunTracker
from tests.support import (
    BUCKET,
    FEATURES,
    REGION,
    STATE_MACHINE_ARN,
    TABLE,
    FakeLambdaContext,
    breast_cancer_xy,
    load_event,
    trained_model,
    upload,
)

MODEL = "breast-cancer"
BASE_RUN = "run-base"
LAST_CONFIG = {
    "model_name": MODEL,
    "dataset_key": f"{DATASET_PREFIX}/data.csv",
    "expectations_key": f"{DATASET_PREFIX}/expectations.json",
    "target_metric": "roc_auc",
    "threshold": 0.9,
    "tolerance": 0.01,
    "seed": 7,
    "candidates": [{"family": "logistic_regression", "params": {"C": 0.5}}],
    "promote_to": "staging",
}


@dataclass
class World:
    service: RetrainingService
    now_ms: int
    ids: list[str]  # the captured predictions, in capture order
    labelled: list[str]  # those with a feedback label


def _stand_in_state_machine() -> None:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Accepted", "States": {"Accepted": {"Type": "Pass", "End": True}}}
    sfn.create_state_machine(
        name=STATE_MACHINE_ARN.rsplit(":", 1)[1],
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )


def _executions() -> list[dict[str, Any]]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    listed = sfn.list_executions(stateMachineArn=STATE_MACHINE_ARN)["executions"]
    return [sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]


def _configure(**retraining: Any) -> None:
    config = MonitoringConfig(retraining=RetrainingSettings(**retraining))
    MetadataTable(TABLE).put(
        {
            "pk": keys.model_pk(MODEL),
            "sk": keys.MONITORING_SK,
            "model_name": MODEL,
            "config": config.model_dump(mode="json"),
            "revision": 1,
        }
    )


def _capture_and_label(
    now_ms: int, *, captured: int, labelled: int, start: int = 0
) -> tuple[list[str], list[str]]:
    """``captured`` predictions of rows ``start...`` of the sample data, 30 minutes ago, and
    feedback labels (the true class) on the first ``labelled`` of them, 20 minutes ago."""
    x, y = breast_cancer_xy()
    at = now_ms - 30 * 60_000
    ids = prediction_ids(captured, now_ms=at)
    rows = [
        CapturedPrediction(
            prediction_id=prediction_id,
            model_name=MODEL,
            model_version=1,
            alias="production",
            at_ms=at,
            features=FEATURES,
            inputs=[float(v) for v in x[start + i]],
            prediction=int(y[start + i]),
            probabilities=None,
        )
        for i, prediction_id in enumerate(ids)
    ]
    store = ArtifactStore(BUCKET)
    CaptureStore(store).write(rows, batch_id=f"delivery-{start}")
    feedback = [
        FeedbackRecord(
            prediction_id=row.prediction_id,
            model_name=MODEL,
            model_version=1,
            reward=1.0,
            label=int(y[start + i]),
            prediction=row.prediction,
            at_ms=now_ms - 20 * 60_000,
            prediction_at_ms=at,
        )
        for i, row in enumerate(rows[:labelled])
    ]
    FeedbackStore(store).write(feedback, batch_id=f"sequence-{start}")
    return ids, ids[:labelled]


@pytest.fixture
def world(aws: None) -> World:
    """breast-cancer v1 in production from run ``run-base`` (SUCCEEDED, the sample dataset),
    120 predictions captured in the last hour, 100 of them labelled; retraining on."""
    _stand_in_state_machine()
    for key, data in breast_cancer().files.items():
        upload(key, data)
    table, store = MetadataTable(TABLE), ArtifactStore(BUCKET)
    registry = ModelRegistry(table, store)
    _, onnx, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", onnx)
    version = registry.register_version(
        MODEL,
        RegisterVersionRequest(
            artifact_key="uploads/breast-cancer/model.onnx", signature=signature, run_id=BASE_RUN
        ),
    )
    registry.set_alias(MODEL, "production", version.version)
    tracker = RunTracker(table)
    tracker.start(BASE_RUN, MODEL, {"run_id": BASE_RUN, **LAST_CONFIG})
    data = store.get(f"{DATASET_PREFIX}/data.csv")
    tracker.finish(
        BASE_RUN,
        "SUCCEEDED",
        dataset={
            "key": f"{DATASET_PREFIX}/data.csv",
            "version_id": data.version_id,
            "sha256": sha256_hex(data.data),
            "rows": 569,
            "schema_key": f"{DATASET_PREFIX}/schema.json",
        },
        registered_version=1,
    )
    now_ms = int(time.time() * 1000)
    ids, labelled = _capture_and_label(now_ms, captured=120, labelled=100)
    _configure(enabled=True, min_labelled_rows=50)
    service = RetrainingService(table, store, TrainingWorkflow(STATE_MACHINE_ARN))
    return World(service=service, now_ms=now_ms, ids=ids, labelled=labelled)


def _event(
    now_ms: int, *, event_id: str = "6a7e8feb-b491-4cf7-a9f1-bf3703467718", **detail: Any
) -> dict[str, Any]:
    event = load_event("retrain/drift_detected.json")
    event["id"] = event_id
    event["time"] = iso_ms(now_ms)
    event["detail"] |= {"window_start": iso_ms(now_ms - 3_600_000), "window_end": iso_ms(now_ms)} | detail
    return event


def iso_ms(at_ms: int) -> str:
    from datetime import UTC, datetime

    return iso(datetime.fromtimestamp(at_ms / 1000, UTC))


def _csv(key: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(ArtifactStore(BUCKET).get(key).data.decode())))


def _decisions() -> list[dict[str, Any]]:
    return [d.model_dump() for d in RetrainingRepository(MetadataTable(TABLE)).decisions(MODEL)]


def test_a_drift_event_trains_on_the_captured_labelled_rows_with_the_last_configuration(world: World) -> None:
    decision = world.service.handle(_event(world.now_ms))

    assert decision.outcome == "started", decision.reason
    assert decision.dataset_key == "datasets/breast-cancer-retraining/v1/data.csv"
    assert decision.counts is not None
    assert decision.counts.model_dump() == {
        "captured": 120,
        "feedback": 100,
        "labelled": 100,
        "skipped": {"no_label": 20},
        "training_rows": 569,
        "rows": 669,
    }
    # The dataset: the signature's features in order, then the target; training rows, then the window's.
    rows = _csv(decision.dataset_key)
    assert rows[0] == [*FEATURES, "benign"]
    assert len(rows) == 1 + 669
    x, y = breast_cancer_xy()
    window_rows = np.asarray(rows[1 + 569 :], dtype=np.float64)
    assert np.array_equal(window_rows[:, :10], x[:100]) and np.array_equal(window_rows[:, 10], y[:100])
    schema = DatasetSchema.model_validate_json(
        ArtifactStore(BUCKET).get("datasets/breast-cancer-retraining/v1/schema.json").data
    )
    assert (schema.name, schema.task, schema.target) == (
        "breast-cancer-retraining",
        "classification",
        "benign",
    )
    table = load_csv(ArtifactStore(BUCKET).get(decision.dataset_key).data, schema)  # as ValidateData loads it
    assert table.rows == 669
    provenance = json.loads(
        ArtifactStore(BUCKET).get("datasets/breast-cancer-retraining/v1/retraining.json").data
    )
    assert provenance["prediction_ids"] == world.labelled
    assert provenance["drift_run_id"] == "drift-20261201-110000-3f2a1b"
    assert provenance["training_data"]["key"] == f"{DATASET_PREFIX}/data.csv"

    # The workflow started once, with the last successful run's configuration on the new dataset.
    (execution,) = _executions()
    assert execution["name"] == decision.run_id
    started = json.loads(execution["input"])
    assert started == {
        **{k: v for k, v in LAST_CONFIG.items() if k != "dataset_key"},
        "run_id": decision.run_id,
        "dataset_key": decision.dataset_key,
        "holdout_fraction": 0.2,
        "validation_fraction": 0.2,
        "triggered_by": {
            "drift_run_id": "drift-20261201-110000-3f2a1b",
            "event": {
                "type": "DriftDetected",
                "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
                "kinds": ["concept"],
                "model_version": 1,
            },
        },
    }
    assert [d["outcome"] for d in _decisions()] == ["started"]

    # The run record ValidateData writes from that input carries the lineage (the card reads it).
    tracker = RunTracker(MetadataTable(TABLE))
    validate_data(started, ArtifactStore(BUCKET), tracker)
    assert tracker.get(decision.run_id)["triggered_by"] == started["triggered_by"]


def test_without_the_training_data_the_dataset_is_the_labelled_window_alone(world: World) -> None:
    _configure(enabled=True, min_labelled_rows=50, include_training_data=False)

    decision = world.service.handle(_event(world.now_ms))

    assert decision.outcome == "started" and decision.counts is not None
    assert (decision.counts.training_rows, decision.counts.rows) == (0, 100)
    assert len(_csv(str(decision.dataset_key))) == 101


def test_the_same_event_twice_and_another_within_the_cooldown_start_one_run(world: World) -> None:
    first = world.service.handle(_event(world.now_ms))
    again = world.service.handle(_event(world.now_ms))  # EventBridge delivered it twice
    other = world.service.handle(_event(world.now_ms, event_id="second-event", run_id="drift-2"))

    assert (first.outcome, again.outcome, other.outcome) == ("started", "duplicate", "skipped")
    assert again.run_id == first.run_id
    assert "within the cooldown of 24 h" in other.reason and str(first.run_id) in other.reason
    assert len(_executions()) == 1
    assert [d["outcome"] for d in _decisions()] == ["skipped", "started"]  # newest first


def test_concurrent_drift_events_start_one_run(world: World) -> None:
    events = [_event(world.now_ms, event_id=f"event-{i}", run_id=f"drift-{i}") for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        decisions = list(pool.map(world.service.handle, events))

    assert sorted(d.outcome for d in decisions) == ["skipped"] * 5 + ["started"]
    assert len(_executions()) == 1
    assert (
        len([k for k in ArtifactStore(BUCKET).keys("datasets/breast-cancer-retraining/")]) == 3
    )  # one version


def test_a_cooldown_of_zero_lets_the_next_event_start_the_next_run_on_the_next_dataset_version(
    world: World,
) -> None:
    _configure(enabled=True, min_labelled_rows=50, cooldown_hours=0)
    first = world.service.handle(_event(world.now_ms))
    _capture_and_label(world.now_ms, captured=80, labelled=80, start=200)
    second = world.service.handle(_event(world.now_ms + 1, event_id="second-event", run_id="drift-2"))

    assert (first.outcome, second.outcome) == ("started", "started")
    assert second.dataset_key == "datasets/breast-cancer-retraining/v2/data.csv"
    assert second.counts is not None and second.counts.labelled == 180
    assert len(_executions()) == 2


@pytest.mark.parametrize("config", [None, {"enabled": False}])
def test_with_retraining_off_nothing_happens(world: World, config: dict[str, Any] | None) -> None:
    if config is None:
        MetadataTable(TABLE).put(
            {"pk": keys.model_pk(MODEL), "sk": keys.MONITORING_SK, "model_name": MODEL, "revision": 0}
        )
    else:
        _configure(**config)

    decision = world.service.handle(_event(world.now_ms))

    assert decision.outcome == "ignored" and "retraining is off" in decision.reason
    assert _executions() == []
    assert list(ArtifactStore(BUCKET).keys("datasets/breast-cancer-retraining/")) == []
    assert _decisions() == []


def test_too_few_labelled_rows_start_nothing_record_why_and_leave_the_claim_free(world: World) -> None:
    _configure(enabled=True, min_labelled_rows=150)

    short = world.service.handle(_event(world.now_ms))
    assert short.outcome == "skipped"
    assert short.reason == (
        "100 captured predictions with feedback labels in the window, fewer than min_labelled_rows (150)"
    )
    assert short.counts is not None and short.counts.labelled == 100
    assert (
        _executions() == [] and list(ArtifactStore(BUCKET).keys("datasets/breast-cancer-retraining/")) == []
    )

    _capture_and_label(world.now_ms, captured=60, labelled=60, start=300)
    enough = world.service.handle(_event(world.now_ms, event_id="later-event", run_id="drift-2"))
    assert enough.outcome == "started"  # no cooldown was consumed by the skipped one
    assert [d["outcome"] for d in _decisions()] == ["started", "skipped"]


def test_a_finding_the_model_does_not_retrain_on_is_skipped(world: World) -> None:
    _configure(enabled=True, on=["concept"])

    decision = world.service.handle(_event(world.now_ms, kinds=["data"]))

    assert decision.outcome == "skipped" and "retraining is on for ['concept']" in decision.reason
    assert _executions() == []


def test_rows_that_do_not_fit_the_schema_are_left_out_and_counted(world: World) -> None:
    x, _ = breast_cancer_xy()
    at = world.now_ms - 10 * 60_000
    odd = [
        CapturedPrediction(
            prediction_id=f"odd-{i}",
            model_name=MODEL,
            model_version=1,
            alias="production",
            at_ms=at,
            features=features,
            inputs=inputs,
            prediction=1,
            probabilities=None,
        )
        for i, (features, inputs) in enumerate(
            [
                (FEATURES[:9], [float(v) for v in x[0][:9]]),  # a feature missing
                (FEATURES, [-1.0, *(float(v) for v in x[0][1:])]),  # below the schema's min 0
                (FEATURES, [None, *(float(v) for v in x[0][1:])]),  # a null where none is allowed
            ]
        )
    ]
    store = ArtifactStore(BUCKET)
    CaptureStore(store).write(odd, batch_id="odd")
    FeedbackStore(store).write(
        [
            FeedbackRecord(
                prediction_id=f"odd-{i}",
                model_name=MODEL,
                model_version=1,
                reward=0.0,
                label=label,
                prediction=1,
                at_ms=at + 1000,
                prediction_at_ms=at,
            )
            for i, label in enumerate([0, 0, 0])
        ],
        batch_id="odd",
    )

    decision = world.service.handle(_event(world.now_ms))

    assert decision.outcome == "started" and decision.counts is not None
    assert decision.counts.skipped == {"features_mismatch": 1, "no_label": 20, "outside_schema": 2}
    assert decision.counts.labelled == 100


def test_a_production_version_trained_on_a_retraining_dataset_is_not_given_its_rows_twice(
    world: World,
) -> None:
    first = world.service.handle(_event(world.now_ms))
    # Suppose that run registered v2 and it went to production: its run's dataset is the retraining one.
    tracker = RunTracker(MetadataTable(TABLE))
    data = ArtifactStore(BUCKET).get(str(first.dataset_key))
    tracker.start(
        str(first.run_id), MODEL, {"run_id": first.run_id, **LAST_CONFIG, "dataset_key": first.dataset_key}
    )
    tracker.finish(
        str(first.run_id),
        "SUCCEEDED",
        dataset={
            "key": first.dataset_key,
            "version_id": data.version_id,
            "sha256": sha256_hex(data.data),
            "rows": 669,
            "schema_key": keys.sibling(str(first.dataset_key), "schema.json"),
        },
    )
    registry = ModelRegistry(MetadataTable(TABLE), ArtifactStore(BUCKET))
    _, _, signature = trained_model("logistic_regression")
    v2 = registry.register_version(
        MODEL,
        RegisterVersionRequest(
            artifact_key="uploads/breast-cancer/model.onnx", signature=signature, run_id=str(first.run_id)
        ),
    )
    registry.set_alias(MODEL, "production", v2.version)
    _configure(enabled=True, min_labelled_rows=10, cooldown_hours=0)
    _capture_and_label(world.now_ms, captured=30, labelled=30, start=400)

    second = world.service.handle(_event(world.now_ms + 1, event_id="second-event", run_id="drift-2"))

    assert second.outcome == "started" and second.counts is not None
    assert second.counts.skipped["in_training_data"] == 100
    assert (second.counts.labelled, second.counts.training_rows, second.counts.rows) == (30, 669, 699)


def test_the_handler_answers_the_sample_event_with_its_decision(world: World) -> None:
    from functions.retrain import handler

    event = _event(world.now_ms)
    answer = handler.lambda_handler(copy.deepcopy(event), FakeLambdaContext())
    ignored = handler.lambda_handler({**event, "detail-type": "ModelPromoted"}, FakeLambdaContext())
    unreadable = handler.lambda_handler(
        {**event, "id": "x", "detail": {"model_name": MODEL}}, FakeLambdaContext()
    )

    assert answer["outcome"] == "started" and answer["run_id"].startswith("breast-cancer-retrain-")
    assert (
        ignored["outcome"] == "ignored" and ignored["reason"] == "not a DriftDetected event of this project"
    )
    assert unreadable["outcome"] == "ignored" and unreadable["reason"].startswith("unreadable DriftDetected")
    assert len(_executions()) == 1


def test_training_data_that_is_gone_skips_the_run_saying_so_and_frees_the_claim(world: World) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    for version in s3.list_object_versions(Bucket=BUCKET, Prefix=f"{DATASET_PREFIX}/data.csv")["Versions"]:
        s3.delete_object(Bucket=BUCKET, Key=version["Key"], VersionId=version["VersionId"])

    gone = world.service.handle(_event(world.now_ms))
    assert gone.outcome == "skipped" and gone.reason == (
        f"the training data '{DATASET_PREFIX}/data.csv' of run '{BASE_RUN}' is gone"
    )
    _configure(enabled=True, min_labelled_rows=50, include_training_data=False)
    without = world.service.handle(_event(world.now_ms, event_id="later", run_id="drift-2"))
    assert without.outcome == "started"
