"""The routing page's charts over time on the local stack, with real data: `mlops up --demo`,
a second version, a bandit between the two, predictions and feedback over several of the
local stack's 10-second history buckets (each feedback sent twice), then the history API
counts every prediction and every feedback once, and headless Chromium renders the routing
page's traffic-share and posterior charts from it (a screenshot is saved).

``MLOPS_SCREENSHOT_DIR`` (optional) receives the screenshot; ``MLOPS_UPDATE_SCREENSHOTS=1``
rewrites docs/images/console-routing.png from it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.stack import LOCAL_ROUTING_HISTORY_BUCKET_SECONDS
from tests.e2e.stack_process import restored_demo_stack
from tests.e2e.test_console_browser import CHROMIUM, _render
from tests.support import ROOT, ROW0, local_stack_client, trained_model

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"
PICTURE = ROOT / "docs" / "images" / "console-routing.png"
ROUNDS, CALLS = 4, 15
#: Rewards by version, fixed per call index: v2 earns far more than v1.
EARNS = {1: lambda i: float(i % 4 == 0), 2: lambda i: float(i % 5 != 0)}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with restored_demo_stack(tmp_path_factory, "routing-history") as running:
        yield running


def _second_version(stack: dict[str, Any]) -> int:
    description = stack["description"]
    _, data, signature = trained_model("random_forest")
    s3 = local_stack_client("s3", description)
    s3.put_object(Bucket=description["artifacts_bucket"], Key="uploads/rf/model.onnx", Body=data)
    s3.put_object(
        Bucket=description["artifacts_bucket"],
        Key="uploads/rf/signature.json",
        Body=signature.model_dump_json(),
    )
    api = description["api_url"]
    registered = requests.post(
        f"{api}/models/{MODEL}/versions", json={"artifact_key": "uploads/rf/model.onnx"}, timeout=60
    )
    assert registered.status_code == 201, registered.text
    return int(registered.json()["version"])


def _feedback_once_captured(api: str, key: str, body: dict[str, Any]) -> requests.Response:
    """Until the prediction is in the log (409 before: the subscription delivers within a second)."""
    until = time.monotonic() + 30
    while True:
        response = requests.post(f"{api}/feedback", json=body, headers={"x-api-key": key}, timeout=30)
        if response.status_code != 409 or time.monotonic() > until:
            return response
        time.sleep(0.5)


def _history_when(api: str, done: Any, within: float = 60) -> dict[str, Any]:
    """The routing history, read until ``done(history)`` (the capture and rewards mappings
    deliver within seconds)."""
    until = time.monotonic() + within
    while True:
        response = requests.get(f"{api}/models/{MODEL}/routing/history", timeout=30)
        assert response.status_code == 200, response.text
        history = dict(response.json())
        if done(history) or time.monotonic() > until:
            return history
        time.sleep(1)


def _totals(history: dict[str, Any], counter: str) -> Counter[int]:
    totals: Counter[int] = Counter()
    for bucket in history["buckets"]:
        for point in bucket["variants"]:
            totals[point["version"]] += point[counter]
    return totals


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_routing_page_charts_share_and_posterior_over_time_from_predictions_and_feedback(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    api, key = stack["description"]["api_url"], stack["description"]["api_key"]
    candidate = _second_version(stack)
    policy = {"type": "bandit", "versions": [1, candidate], "min_exploration": 0.3}
    assert (
        requests.put(f"{api}/models/{MODEL}/routing", json={"policy": policy}, timeout=30).status_code == 200
    )
    time.sleep(11)  # the inference function's routing cache (10 s) picks the bandit up
    before = _history_when(api, lambda h: True)  # what the demo itself predicted and sent
    served_before, feedback_before = _totals(before, "requests"), _totals(before, "feedback")
    served: Counter[int] = Counter()
    answers = []
    for round_ in range(ROUNDS):
        for i in range(CALLS):
            response = requests.post(
                f"{api}/models/{MODEL}/predict",
                json={"instances": [ROW0], "request_key": f"user-{round_}-{i}"},
                headers={"x-api-key": key},
                timeout=30,
            )
            assert response.status_code == 200, response.text
            answer = response.json()
            version = int(answer["model_version"])
            served[version] += 1
            reward = EARNS[1 if version == 1 else 2](i)
            body = {"prediction_id": answer["prediction_ids"][0], "reward": reward}
            assert _feedback_once_captured(api, key, body).status_code == 200
            answers.append(
                requests.post(f"{api}/feedback", json=body, headers={"x-api-key": key}, timeout=30)
            )
        # Wait into the next history bucket, so the rounds land in buckets of their own.
        time.sleep(
            LOCAL_ROUTING_HISTORY_BUCKET_SECONDS - time.time() % LOCAL_ROUTING_HISTORY_BUCKET_SECONDS + 0.2
        )
    assert all(a.status_code == 200 and a.json()["duplicate"] is True for a in answers)  # sent twice

    history = _history_when(
        api, lambda h: _totals(h, "feedback").total() - feedback_before.total() >= ROUNDS * CALLS
    )

    # Every prediction once, by the version that served it; every feedback once, though sent twice.
    assert _totals(history, "requests") - served_before == served
    assert _totals(history, "feedback") - feedback_before == served
    assert len(history["buckets"]) >= ROUNDS
    assert history["bucket_seconds"] == LOCAL_ROUTING_HISTORY_BUCKET_SECONDS
    latest = {p["version"]: p["posterior"] for p in history["buckets"][-1]["variants"]}
    assert latest[candidate]["mean"] > latest[1]["mean"]

    screenshot = tmp_path / "console-routing.png"
    dom = _render(f"{api}/_local/console/?page=routing&model={MODEL}", screenshot, tmp_path / "profile")

    text = unescape(re.sub(r"<[^>]+>", " ", dom))
    assert "Traffic share over time (10-second buckets" in text
    assert "Posterior over time: mean and 90% credible band" in text
    share_chart = re.search(
        r'<svg[^>]*aria-label="share of predictions served per variant over time"[\s\S]*?</svg>', dom
    )
    posterior_chart = re.search(
        r'<svg[^>]*aria-label="Beta posterior of each variant\'s reward rate over time"[\s\S]*?</svg>', dom
    )
    assert share_chart is not None and posterior_chart is not None
    assert share_chart.group(0).count("<rect") >= ROUNDS  # a column per bucket with traffic
    assert posterior_chart.group(0).count("<polygon") == 2  # a credible band per arm
    assert f"v{candidate}:" in posterior_chart.group(0) and "v1:" in posterior_chart.group(0)
    if os.environ.get("MLOPS_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(screenshot, PICTURE)
