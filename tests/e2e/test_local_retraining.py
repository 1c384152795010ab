"""The retraining loop on the local stack, for real: `mlops up` in a subprocess serves
breast-cancer v1 as `mlops up --demo` trained it (a copy of the run's trained demo);
predictions and labelled feedback go over HTTP; the template's second stream mapping copies
the feedback to feedback/ in S3; a DriftDetected event put on the stack's bus reaches the
retrain function through the template's rule (the local stack delivers Lambda targets
itself: moto cannot); the training workflow runs on the captured, labelled rows with the
demo run's configuration, and its outcome is recorded with the drift run it came from.

The MONITORING item is written straight to the stack's table (the configuration's API is
another piece of issue #12)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from infra.local.demo import DEMO_CANDIDATES
from mlops_core.monitoring.config import MonitoringConfig, RetrainingSettings
from mlops_core.storage.dynamo import serialize
from tests.e2e.stack_process import restored_demo_stack
from tests.support import breast_cancer_xy, local_stack_client

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"
LABELLED = 100


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with restored_demo_stack(tmp_path_factory, "local-retraining") as running:  # trained and served
        yield running


def _post(stack: dict[str, Any], path: str, body: Any) -> requests.Response:
    description = stack["description"]
    return requests.post(
        f"{description['api_url']}{path}",
        json=body,
        headers={"x-api-key": description["api_key"]},
        timeout=30,
    )


def _label_all(stack: dict[str, Any], labels: dict[str, int]) -> None:
    """POST /feedback in batches until every label is recorded (409 until its prediction is captured)."""
    pending = dict(labels)
    until = time.monotonic() + 60
    while pending:
        assert time.monotonic() < until, f"{len(pending)} feedback still refused"
        ids = list(pending)[:100]
        answer = _post(
            stack, "/feedback", {"feedback": [{"prediction_id": i, "label": pending[i]} for i in ids]}
        )
        assert answer.status_code == 200, answer.text
        for prediction_id, result in zip(ids, answer.json()["results"], strict=True):
            assert result["status"] in (200, 409, 503), result  # 409 not captured yet, 503 retry
            if result["status"] == 200:
                del pending[prediction_id]
        if pending:
            time.sleep(0.5)


def _feedback_lines(s3: Any, bucket: str) -> list[dict[str, Any]]:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"feedback/{MODEL}/").get("Contents", [])
    return [
        json.loads(line)
        for item in listed
        for line in s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode().splitlines()
    ]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_drift_event_retrains_on_captured_labelled_predictions_and_records_the_outcome(
    stack: dict[str, Any],
) -> None:
    description = stack["description"]
    x, y = breast_cancer_xy()
    window_start = datetime.now(UTC) - timedelta(minutes=1)

    # Traffic and its outcomes, over HTTP: 150 predictions, 100 labelled with the truth.
    predicted = _post(stack, f"/models/{MODEL}/predict", {"instances": x[:150].tolist()})
    assert predicted.status_code == 200, predicted.text
    ids = predicted.json()["prediction_ids"]
    _label_all(stack, {ids[i]: int(y[i]) for i in range(LABELLED)})

    # The template's second stream mapping copies the feedback to S3 (5-second batching window).
    s3 = local_stack_client("s3", description)
    started = time.monotonic()
    lines: list[dict[str, Any]] = []
    while len({line["prediction_id"] for line in lines} & set(ids)) < LABELLED:
        assert time.monotonic() - started < 60, f"{len(lines)} feedback lines in S3"
        time.sleep(0.5)
        lines = _feedback_lines(s3, description["artifacts_bucket"])
    copied = time.monotonic() - started
    ours = [line for line in lines if line["prediction_id"] in set(ids)]
    assert len(ours) == LABELLED and {line["model_version"] for line in ours} == {1}
    assert all(line["label"] == int(y[ids.index(line["prediction_id"])]) for line in ours)

    # Retraining switched on for the model (the MONITORING item as the configuration API stores it).
    dynamodb = local_stack_client("dynamodb", description)
    config = MonitoringConfig(retraining=RetrainingSettings(enabled=True, min_labelled_rows=50))
    dynamodb.put_item(
        TableName=description["metadata_table"],
        Item=serialize(
            {
                "pk": f"MODEL#{MODEL}",
                "sk": "MONITORING",
                "model_name": MODEL,
                "config": config.model_dump(mode="json"),
                "revision": 1,
            }
        ),
    )

    # A drift run's finding on the stack's bus.
    events = local_stack_client("events", description)
    (bus,) = [b["Name"] for b in events.list_event_buses()["EventBuses"] if b["Name"].endswith("-events")]
    window_end = datetime.now(UTC)
    detail = {
        "model_name": MODEL,
        "model_version": 1,
        "run_id": "drift-e2e-1",
        "kinds": ["concept"],
        "drifted_features": [],
        "drift_share": 0.0,
        "live_metric": 0.7,
        "baseline_metric": 0.95,
        "window_start": _iso(window_start),
        "window_end": _iso(window_end),
        "window_rows": 150,
    }
    put = events.put_events(
        Entries=[
            {
                "Source": "serverless-mlops",
                "DetailType": "DriftDetected",
                "Detail": json.dumps(detail),
                "EventBusName": bus,
            }
        ]
    )
    assert put["FailedEntryCount"] == 0
    sent_at = time.monotonic()

    # The retrain function starts a run; the run records where it came from and how it ended.
    api = description["api_url"]
    run: dict[str, Any] = {}
    until = time.monotonic() + 420
    while run.get("status") not in ("SUCCEEDED", "REJECTED", "FAILED"):
        assert time.monotonic() < until, run
        time.sleep(1)
        runs = requests.get(f"{api}/models/{MODEL}/runs", timeout=10).json()["runs"]
        triggered = [r for r in runs if r.get("triggered_by")]
        if triggered:
            run = requests.get(f"{api}/runs/{triggered[0]['run_id']}", timeout=10).json()
    seconds = time.monotonic() - sent_at
    print(
        f"\nfeedback recorded -> in S3: {copied:.1f} s; DriftDetected -> run {run['status']}: "
        f"{seconds:.1f} s; evaluation: {(run.get('evaluation') or {}).get('reason')}"
    )
    assert run["status"] in ("SUCCEEDED", "REJECTED"), run.get("failure")
    assert run["triggered_by"]["drift_run_id"] == "drift-e2e-1"
    assert run["triggered_by"]["event"]["type"] == "DriftDetected"
    assert run["dataset"]["key"] == f"datasets/{MODEL}-retraining/v1/data.csv"
    assert run["dataset"]["rows"] == 569 + LABELLED  # the demo's training data + the labelled window
    # The demo run's configuration (its candidates, metric, gate and seed), on the new dataset.
    assert [c["family"] for c in run["request"]["candidates"]] == [c["family"] for c in DEMO_CANDIDATES]
    assert run["request"]["seed"] == 42
    assert run["request"]["threshold"] == 0.9 and run["request"]["target_metric"] == "roc_auc"

    decision = dynamodb.query(
        TableName=description["metadata_table"],
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"MODEL#{MODEL}"}, ":prefix": {"S": "RETRAIN#"}},
    )["Items"]
    assert [(d["outcome"]["S"], d["run_id"]["S"]) for d in decision] == [("started", run["run_id"])]
    if run["status"] == "SUCCEEDED":  # the new version's card names the drift run
        card = requests.get(f"{api}/models/{MODEL}/versions/{run['registered_version']}/card", timeout=10)
        assert card.status_code == 200 and "drift run `drift-e2e-1`" in card.text
