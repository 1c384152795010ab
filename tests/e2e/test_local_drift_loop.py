"""The whole drift loop on the local stack, for real, with nothing put on the bus by hand:
`mlops up --schedule-speedup 60` in a subprocess, serving breast-cancer v1 as `mlops up --demo`
trained and promoted it (a copy of the run's trained demo; the template's rate(5 minutes)
schedule fires every 5 s).

Over HTTP: predictions whose features are shifted by 2 sd on three columns, then feedback
whose labels disagree with every prediction. Monitoring is configured with retraining on
(`mlops drift configure --file`); the schedule's first tick runs the model. Then, followed
link by link through the API and the CLI:

    drift run (schedule: data + concept drift, the shifted features named)
      -> its DriftDetected, through the template's rule, -> the retraining decision
      -> the training run on the captured predictions joined with their labels
      -> its outcome: a registered version whose card names the drift run, or the gate's refusal.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from mlops_core.monitoring.config import MonitoringConfig, RetrainingSettings
from tests.e2e import test_local_stack as local_stack_test
from tests.e2e.stack_process import restored_demo_stack
from tests.support import ROOT, breast_cancer_xy, local_stack_client

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"
ROWS = 300
SHIFTED = ["mean_radius", "mean_texture", "mean_smoothness"]  # columns 0, 1, 4: moved by 2 sd
TRAINING_ROWS = 569  # the demo's dataset


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # The demo's trained model (a copy of the run's trained demo), its schedules 60 times faster.
    with restored_demo_stack(tmp_path_factory, "local-drift-loop", "--schedule-speedup", "60") as running:
        yield running


def _mlops(stack: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*local_stack_test.MLOPS, *args],
        cwd=ROOT,
        env=local_stack_test._env(stack["state_dir"]),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _mlops_json(stack: dict[str, Any], *args: str) -> Any:
    result = _mlops(stack, "--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def _post(stack: dict[str, Any], path: str, body: Any) -> requests.Response:
    description = stack["description"]
    return requests.post(
        f"{description['api_url']}{path}",
        json=body,
        headers={"x-api-key": description["api_key"]},
        timeout=30,
    )


def _get(stack: dict[str, Any], path: str) -> Any:
    response = requests.get(f"{stack['description']['api_url']}{path}", timeout=30)
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text}"
    return response


def _label_all(stack: dict[str, Any], labels: dict[str, int]) -> None:
    """POST /feedback in batches until every label is recorded (409 until its prediction is
    captured, 503 when a dependency failed: both retried, as the API asks)."""
    pending = dict(labels)
    until = time.monotonic() + 120
    while pending:
        assert time.monotonic() < until, f"{len(pending)} feedback still refused"
        ids = list(pending)[:100]
        answer = _post(
            stack, "/feedback", {"feedback": [{"prediction_id": i, "label": pending[i]} for i in ids]}
        )
        assert answer.status_code == 200, answer.text
        for prediction_id, result in zip(ids, answer.json()["results"], strict=True):
            # 409: not captured yet; 503: a dependency failed (the API says: retry).
            assert result["status"] in (200, 409, 503), result
            if result["status"] == 200:
                del pending[prediction_id]
        if pending:
            time.sleep(0.5)


def _object_lines(stack: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    description = stack["description"]
    s3 = local_stack_client("s3", description)
    lines = []
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=description["artifacts_bucket"], Prefix=prefix
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=description["artifacts_bucket"], Key=item["Key"])["Body"].read()
            lines.extend(json.loads(line) for line in body.decode().splitlines() if line.strip())
    return lines


def _until(what: str, seconds: float, probe: Any) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found:
            return found
        assert time.monotonic() < deadline, f"{what}: not within {seconds:.0f} s"
        time.sleep(1)


@pytest.fixture(scope="module")
def traffic(stack: dict[str, Any]) -> dict[str, Any]:
    """Shifted predictions over HTTP, each labelled with the class it was NOT given; both the
    capture and the bulk feedback copy hold them all before monitoring is configured."""
    x, _ = breast_cancer_xy()
    rows = x[np.random.default_rng(7).integers(0, len(x), size=ROWS)]
    for column in (0, 1, 4):
        rows[:, column] += 2 * x[:, column].std()
    ids: list[str] = []
    predictions: list[int] = []
    for start in range(0, ROWS, 100):
        answer = _post(stack, f"/models/{MODEL}/predict", {"instances": rows[start : start + 100].tolist()})
        assert answer.status_code == 200, answer.text
        ids += answer.json()["prediction_ids"]
        predictions += [int(p) for p in answer.json()["predictions"]]
    labels = {i: 1 - p for i, p in zip(ids, predictions, strict=True)}
    _label_all(stack, labels)
    _until(
        "the capture holds the predictions",
        60,
        lambda: set(ids) <= {r["prediction_id"] for r in _object_lines(stack, f"capture/{MODEL}/")},
    )
    _until(
        "the feedback copy in S3 holds the labels",
        60,
        lambda: set(ids) <= {r["prediction_id"] for r in _object_lines(stack, f"feedback/{MODEL}/")},
    )
    return {"ids": ids, "labels": labels}


@pytest.fixture(scope="module")
def loop(
    stack: dict[str, Any], traffic: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Monitoring with retraining on, then the first scheduled run and what it led to."""
    config = MonitoringConfig(
        every_minutes=60,
        max_rows=ROWS,  # the newest 300 rows of the window: all shifted and labelled
        retraining=RetrainingSettings(enabled=True, min_labelled_rows=ROWS // 2),
    )
    path = tmp_path_factory.mktemp("config") / "monitoring.json"
    path.write_text(config.model_dump_json())
    configured = _mlops_json(stack, "drift", "configure", MODEL, "--file", str(path))
    assert configured["scheduled"] is True and configured["config"]["retraining"]["enabled"] is True
    started = time.monotonic()

    def scheduled() -> dict[str, Any] | None:
        history = _mlops_json(stack, "drift", "show", MODEL)["history"]
        done = [r for r in history if r["trigger"] == "schedule" and r["status"] != "running"]
        return done[0] if done else None

    run = _until("a scheduled drift run", 90, scheduled)
    ran = time.monotonic() - started

    def decided() -> list[dict[str, Any]] | None:
        listed = _mlops_json(stack, "retrain", "list", MODEL)["decisions"]
        return [d for d in listed if d["drift_run_id"] == run["run_id"]] or None

    (decision,) = _until("the retraining decision", 60, decided)
    decided_at = time.monotonic() - started
    training: dict[str, Any] = {}
    if decision.get("run_id"):

        def finished() -> dict[str, Any] | None:
            got = _get(stack, f"/runs/{decision['run_id']}").json()
            return got if got.get("status") in ("SUCCEEDED", "REJECTED", "FAILED") else None

        training = _until("the retraining run's end", 420, finished)
    print(
        f"\nconfigured -> scheduled run {run['status']}: {ran:.1f} s; -> decision {decision['outcome']}: "
        f"{decided_at:.1f} s; -> training run {training.get('status')}: {time.monotonic() - started:.1f} s"
    )
    return {"run": run, "decision": decision, "training": training}


def test_the_scheduled_run_finds_data_and_concept_drift_and_names_the_shifted_features(
    stack: dict[str, Any], loop: dict[str, Any]
) -> None:
    run = loop["run"]
    assert run["status"] == "drift", run
    assert set(SHIFTED) <= set(run["drifted_features"]) and run["dataset_drift"] is True
    assert run["window_rows"] == ROWS
    # Every label disagrees with its prediction: the live accuracy is 0, far below the baseline.
    assert run["concept"]["drifted"] is True and run["concept"]["live_metric"] == 0.0
    assert run["concept"]["summary"]["status"] == "drift"
    detail = _mlops_json(stack, "drift", "show", MODEL, run["run_id"])
    named = {f["feature"]: f for f in detail["result"]["features"]}
    assert all(named[f]["drifted"] for f in SHIFTED)


def test_drift_detected_led_to_a_retraining_decision_that_started_a_run(
    stack: dict[str, Any], loop: dict[str, Any]
) -> None:
    run, decision = loop["run"], loop["decision"]
    assert decision["outcome"] == "started", decision
    # The run id carries the event's time (EventBridge's ISO `time`, as the local stack sends it).
    assert re.fullmatch(rf"{MODEL}-retrain-\d{{8}}-\d{{6}}-[0-9a-f]{{8}}", decision["run_id"]), decision[
        "run_id"
    ]
    assert set(decision["kinds"]) == {"data", "concept"}
    assert decision["counts"]["labelled"] == ROWS and decision["counts"]["training_rows"] == TRAINING_ROWS
    # The drift run links to it; it is one GET by its id, with the training run's outcome.
    linked = _get(stack, f"/models/{MODEL}/drift-runs/{run['run_id']}").json()["run"]
    assert linked["retraining"]["decision_id"] == decision["decision_id"]
    assert linked["retraining"]["run_id"] == decision["run_id"]
    shown = _mlops_json(stack, "retrain", "show", MODEL, decision["decision_id"])
    assert shown["decision"]["run_id"] == decision["run_id"]
    assert shown["training_run"]["status"] == loop["training"]["status"]


def test_the_training_run_used_the_captured_predictions_joined_with_their_labels(
    stack: dict[str, Any], traffic: dict[str, Any], loop: dict[str, Any]
) -> None:
    training, decision = loop["training"], loop["decision"]
    assert training["status"] in ("SUCCEEDED", "REJECTED"), training.get("failure")
    assert training["triggered_by"]["drift_run_id"] == loop["run"]["run_id"]
    assert training["triggered_by"]["event"]["type"] == "DriftDetected"
    assert training["dataset"]["key"] == decision["dataset_key"]
    assert training["dataset"]["rows"] == TRAINING_ROWS + ROWS
    # The dataset's provenance: exactly our predictions, and each row's label is our feedback's.
    description = stack["description"]
    s3 = local_stack_client("s3", description)
    folder = decision["dataset_key"].rsplit("/", 1)[0]
    provenance = json.loads(
        s3.get_object(Bucket=description["artifacts_bucket"], Key=f"{folder}/retraining.json")["Body"].read()
    )
    assert sorted(provenance["prediction_ids"]) == sorted(traffic["ids"])
    assert provenance["drift_run_id"] == loop["run"]["run_id"]
    data = s3.get_object(Bucket=description["artifacts_bucket"], Key=decision["dataset_key"])["Body"].read()
    lines = data.decode().splitlines()
    header, captured = lines[0].split(","), lines[1 + TRAINING_ROWS :]
    target = len(header) - 1  # the schema puts the target last
    order = [traffic["labels"][i] for i in provenance["prediction_ids"]]
    assert [int(float(line.split(",")[target])) for line in captured] == order


def test_the_outcome_is_recorded_and_traceable_to_the_drift_report(
    stack: dict[str, Any], loop: dict[str, Any], tmp_path: Path
) -> None:
    training, run = loop["training"], loop["run"]
    shown = _mlops_json(stack, "retrain", "show", MODEL, loop["decision"]["decision_id"])
    if training["status"] == "SUCCEEDED":
        version = training["registered_version"]
        assert shown["registered_version"] == version
        card = _get(stack, f"/models/{MODEL}/versions/{version}/card").text
        assert f"drift run `{run['run_id']}`" in card
    else:  # the gate refused the candidate: the reason is on the run and the decision's view
        assert training["evaluation"]["passed"] is False and training["evaluation"]["reason"]
        assert shown["registered_version"] is None
        assert shown["training_run"]["evaluation"]["reason"] == training["evaluation"]["reason"]
    report = _mlops(stack, "drift", "report", MODEL, run["run_id"], "--html", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    assert all(name in (tmp_path / "r.html").read_text() for name in SHIFTED)
