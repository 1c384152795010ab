"""Drift monitoring on the local stack, for real: `mlops up --schedule-speedup 60` in a
subprocess serving the demo's trained model (a copy of the run's trained demo; the template's
rate(5 minutes) schedule fires every 5 s), traffic sent over HTTP, runs started and followed
with the CLI, the DriftDetected event read from the notifications queue that the template's
DriftFindings rule feeds."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.e2e import test_local_stack as local_stack_test
from tests.e2e.stack_process import restored_demo_stack
from tests.support import ROOT, breast_cancer_xy, local_stack_client

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"
ROWS = 500
SHIFTED = ["mean_radius", "mean_texture", "mean_smoothness"]  # columns 0, 1, 4: moved by 2 sd


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # The demo's trained model (a copy of the run's trained demo), its schedules 60 times faster.
    with restored_demo_stack(tmp_path_factory, "local-drift", "--schedule-speedup", "60") as running:
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


def _captured_rows(stack: dict[str, Any]) -> int:
    description = stack["description"]
    s3 = local_stack_client("s3", description)
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=description["artifacts_bucket"], Prefix=f"capture/{MODEL}/"
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=description["artifacts_bucket"], Key=item["Key"])["Body"].read()
            total += sum(1 for line in body.splitlines() if line.strip())
    return total


def _send(stack: dict[str, Any], rows: np.ndarray) -> None:
    """Predictions over HTTP, 100 rows a call; returns once the capture holds them all."""
    description = stack["description"]
    before = _captured_rows(stack)
    for start in range(0, len(rows), 100):
        response = requests.post(
            f"{description['api_url']}/models/{MODEL}/predict",
            json={"instances": rows[start : start + 100].tolist()},
            headers={"x-api-key": description["api_key"]},
            timeout=30,
        )
        assert response.status_code == 200, response.text
    deadline = time.monotonic() + 30
    while _captured_rows(stack) < before + len(rows):
        assert time.monotonic() < deadline, "the capture did not receive the predictions"
        time.sleep(0.5)


def _sample(n: int, seed: int) -> np.ndarray:
    x, _ = breast_cancer_xy()
    return x[np.random.default_rng(seed).integers(0, len(x), size=n)]


def _notifications(stack: dict[str, Any]) -> list[dict[str, Any]]:
    sqs = local_stack_client("sqs", stack["description"])
    (url,) = [
        u for u in sqs.list_queues()["QueueUrls"] if "EventsNotifications" in u and "DeadLetters" not in u
    ]
    received = []
    for _ in range(5):
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            break
        received.extend(json.loads(m["Body"]) for m in messages)
    return received


@pytest.fixture(scope="module")
def scheduled_run(stack: dict[str, Any]) -> dict[str, Any]:
    """Monitoring configured (the newest 500 rows of the window), then the first scheduled run,
    which the schedule starts within a tick (5 s at 60x), before any test sends traffic."""
    configured = _mlops(
        stack, "--json", "drift", "configure", MODEL, "--every", "1h", "--max-rows", str(ROWS)
    )
    assert configured.returncode == 0, configured.stderr
    assert json.loads(configured.stdout)["scheduled"] is True
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "no scheduled run within 60 s"
        time.sleep(1)
        shown = _mlops(stack, "--json", "drift", "show", MODEL)
        assert shown.returncode == 0, shown.stderr
        overview = json.loads(shown.stdout)
        finished = [r for r in overview["history"] if r["trigger"] == "schedule" and r["status"] != "running"]
        if finished:
            return {"run": finished[0], "monitoring": overview["monitoring"]}


def test_the_schedule_fires_locally_and_records_a_scheduled_run(scheduled_run: dict[str, Any]) -> None:
    # The demo's few predictions are not enough to compare: that is what it says.
    assert scheduled_run["run"]["status"] == "insufficient_data", scheduled_run
    assert scheduled_run["monitoring"]["last_run_id"] == scheduled_run["run"]["run_id"]


def test_unshifted_traffic_finds_no_drift(stack: dict[str, Any], scheduled_run: dict[str, Any]) -> None:
    _send(stack, _sample(ROWS, seed=11))

    result = _mlops(stack, "--json", "drift", "run", MODEL, "--wait")

    assert result.returncode == 0, result.stdout + result.stderr
    run = json.loads(result.stdout)["run"]
    assert run["status"] == "no_drift" and run["drifted_features"] == []
    assert run["window_rows"] == ROWS and run["tested_features"] == 10


def test_shifted_traffic_is_flagged_and_drift_detected_is_published(
    stack: dict[str, Any], scheduled_run: dict[str, Any], tmp_path: Path
) -> None:
    x, _ = breast_cancer_xy()
    rows = _sample(ROWS, seed=12)
    for column in (0, 1, 4):
        rows[:, column] += 2 * x[:, column].std()
    _send(stack, rows)

    result = _mlops(stack, "--json", "drift", "run", MODEL, "--wait")

    assert result.returncode == 3, result.stdout + result.stderr  # drift found
    detail = json.loads(result.stdout)
    assert set(SHIFTED) <= set(detail["run"]["drifted_features"])
    assert detail["run"]["window_rows"] == ROWS  # --max-rows: the newest 500, all shifted
    events = _notifications(stack)
    (detected,) = [e for e in events if e["detail-type"] == "DriftDetected"]
    assert detected["detail"]["run_id"] == detail["run"]["run_id"]
    assert detected["detail"]["kinds"] == ["data"] and set(SHIFTED) <= set(
        detected["detail"]["drifted_features"]
    )

    report = _mlops(stack, "drift", "report", MODEL, "latest", "--html", str(tmp_path / "drift.html"))
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "drift.html").read_text()
    assert all(name in html for name in SHIFTED) and "<svg" in html
    table = _mlops(stack, "drift", "show", MODEL, detail["run"]["run_id"])
    assert table.returncode == 0 and "mean_radius" in table.stdout and "drift" in table.stdout
