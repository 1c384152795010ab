"""The issue's "Rollout" must-show, on the local stack (`mlops up --demo`, over HTTP, as a user):
a candidate that answers with errors is rolled back automatically at its first step; a good
one reaches 100 % and becomes production; the audit shows every step.

The bad candidate is a model of five features registered as v2 of the demo's ten-feature
model: every call routed to it fails (422 to the caller), and the inference function's error
lines are counted against v2 by the capture function. The good one is the demo's own v1
artifact registered again under another run id (v3). Traffic runs over HTTP during the
bakes; `--bake 10m` waits 20 s per step locally (``MLOPS_ROLLOUT_MAX_WAIT_SECONDS``).
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e import demo_stack
from tests.e2e import test_local_stack as local_stack_test
from tests.support import FEATURES, ROOT, ROW0, breast_cancer_xy, local_stack_client

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"
ALIAS_CACHE_TTL_SECONDS = 10  # the inference function's default (InferenceSettings)

# The module's own stack, started as `mlops up --demo` ends (a copy of the run's trained demo).
state_dir = demo_stack.state_dir
local_stack = demo_stack.local_stack


class Traffic:
    """Predictions over HTTP, one after another, until stopped; answers counted by what served them."""

    def __init__(self, stack: dict[str, Any]) -> None:
        self.url = f"{stack['api']}/models/{MODEL}/predict"
        self.headers = {"x-api-key": stack["key"]}
        self.answers: Counter[str] = Counter()
        self.last_error_at: float | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            response = session.post(self.url, json={"instances": [ROW0]}, headers=self.headers, timeout=10)
            served = f"v{response.json()['model_version']}" if response.status_code == 200 else "error"
            self.answers[f"{response.status_code} {served}"] += 1
            if response.status_code != 200:
                self.last_error_at = time.monotonic()
            self.stop.wait(0.005)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=20)


def _mlops(state_dir: Path, *args: str, timeout: float = 120, table: bool = False) -> Any:
    """The CLI against this module's stack (``--json`` unless ``table``)."""
    return subprocess.run(
        [*local_stack_test.MLOPS, *(() if table else ("--json",)), *args],
        check=False,
        cwd=ROOT,
        env=local_stack_test._env(state_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _register(stack: dict[str, Any], body: dict[str, Any]) -> int:
    response = requests.post(f"{stack['api']}/models/{MODEL}/versions", json=body, timeout=60)
    assert response.status_code == 201, response.text
    return int(response.json()["version"])


@pytest.fixture(scope="module")
def candidates(local_stack: dict[str, Any], state_dir: Path) -> Iterator[dict[str, int]]:
    """v2: a model of the first five features only (it cannot score the callers' rows);
    v3: the demo's v1 artifact again, under another run id."""
    from sklearn.linear_model import LogisticRegression

    from mlops_core.training.export import export_sklearn

    x, y = breast_cancer_xy()
    data, signature = export_sklearn(
        LogisticRegression(max_iter=5000).fit(x[:, :5], y), FEATURES[:5], target="benign"
    )
    description = json.loads((state_dir / "endpoint.json").read_text())
    s3 = local_stack_client("s3", description)
    bucket = description["artifacts_bucket"]
    s3.put_object(Bucket=bucket, Key="uploads/rollout-bad/model.onnx", Body=data)
    s3.put_object(Bucket=bucket, Key="uploads/rollout-bad/signature.json", Body=signature.model_dump_json())
    bad = _register(local_stack, {"artifact_key": "uploads/rollout-bad/model.onnx", "run_id": "rollout-bad"})
    v1 = requests.get(f"{local_stack['api']}/models/{MODEL}/versions/1", timeout=10).json()
    good = _register(
        local_stack,
        {"artifact_key": v1["artifact"]["key"], "signature": v1["signature"], "run_id": "rollout-good"},
    )
    yield {"bad": bad, "good": good}


def _rollout(state_dir: Path, candidate: int) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    result = _mlops(
        state_dir,
        "rollout", "start", MODEL, "--candidate", str(candidate), "--steps", "10,50,100", "--bake", "10m",
        "--min-calls", "10", "--reason", f"e2e v{candidate}", "--wait",
        timeout=400,
    )  # fmt: skip
    assert result.returncode in (0, 3), result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout), time.monotonic() - started


def _routing(state_dir: Path) -> dict[str, Any]:
    """The routing policy in force, without its unset fields."""
    shown = _mlops(state_dir, "routing", "show", MODEL)
    assert shown.returncode == 0, shown.stderr
    policy = json.loads(shown.stdout)["routing"]["policy"]
    return {k: v for k, v in policy.items() if v is not None}


def test_a_candidate_that_errors_is_rolled_back_at_its_first_step(
    local_stack: dict[str, Any], state_dir: Path, candidates: dict[str, int]
) -> None:
    with Traffic(local_stack) as traffic:
        code, rollout, seconds = _rollout(state_dir, candidates["bad"])
        ended = time.monotonic()
        # Warm inference containers keep the routing they read for up to its 10-s cache TTL.
        time.sleep(ALIAS_CACHE_TTL_SECONDS + 3)
    assert traffic.last_error_at is not None
    lag = traffic.last_error_at - ended
    print(
        f"\nbad candidate rolled back in {seconds:.0f} s; answers: {dict(traffic.answers)}; "
        f"its last error {lag:.1f} s after the rollback"
    )
    assert lag < ALIAS_CACHE_TTL_SECONDS + 1

    assert code == 3, rollout
    assert rollout["status"] == "rolled_back" and len(rollout["progress"]) == 1
    step = rollout["progress"][0]
    assert (step["percent"], rollout["bake_seconds"], step["wait_seconds"]) == (10, 600, 20)
    check = step["checks"][-1]
    assert check["decision"] == "rollback" and check["candidate"]["error_rate"] == 1.0
    assert check["candidate"]["calls"] >= 10 and check["production"]["error_rate"] == 0.0
    # (A loaded machine can make the failing calls slow enough to trip p99 as well.)
    assert "error_rate" in [t["guardrail"] for t in rollout["outcome"]["tripped"]]
    assert traffic.answers["422 error"] >= 10  # callers did meet the bad candidate
    assert _routing(state_dir) == {"type": "single", "alias": "production"}
    production = requests.get(f"{local_stack['api']}/models/{MODEL}/aliases/production", timeout=10).json()
    assert production["version"] == 1  # the alias never moved


def test_a_good_candidate_reaches_100_percent_and_becomes_production(
    local_stack: dict[str, Any], state_dir: Path, candidates: dict[str, int]
) -> None:
    good = candidates["good"]
    with Traffic(local_stack) as traffic:
        code, rollout, seconds = _rollout(state_dir, good)
    print(
        f"\ngood candidate promoted in {seconds:.0f} s; answers during the rollout: {dict(traffic.answers)}"
    )

    assert code == 0, json.dumps(rollout, indent=1)[-4000:]
    assert rollout["status"] == "succeeded"
    assert [s["percent"] for s in rollout["progress"]] == [10, 50, 100]
    for step in rollout["progress"]:
        assert step["checks"][-1]["decision"] == "proceed" and step["checks"][-1]["candidate"]["calls"] >= 10
    assert traffic.answers[f"200 v{good}"] > 0 and traffic.answers["422 error"] == 0
    production = requests.get(f"{local_stack['api']}/models/{MODEL}/aliases/production", timeout=10).json()
    assert production["version"] == good
    assert _routing(state_dir) == {"type": "single", "alias": "production"}


def test_the_audit_shows_every_step_of_both_rollouts(
    local_stack: dict[str, Any], state_dir: Path, candidates: dict[str, int]
) -> None:
    listed = _mlops(state_dir, "rollout", "show", MODEL)
    rollouts = {r["candidate_version"]: r for r in json.loads(listed.stdout)}
    bad, good = rollouts[candidates["bad"]]["rollout_id"], rollouts[candidates["good"]]["rollout_id"]
    trail = json.loads(_mlops(state_dir, "models", "audit", MODEL, "--limit", "100").stdout)
    moves = [(r["action"], r["reason"]) for r in reversed(trail) if r["action"] in ("set_routing", "promote")]

    assert moves[-7:] == [
        ("set_routing", f"rollout {bad} step 1: 10% to v{candidates['bad']}"),
        ("set_routing", f"rollout {bad} rolled back at step 1 (10%)"),
        ("set_routing", f"rollout {good} step 1: 10% to v{candidates['good']}"),
        ("set_routing", f"rollout {good} step 2: 50% to v{candidates['good']}"),
        ("set_routing", f"rollout {good} step 3: 100% to v{candidates['good']}"),
        ("promote", f"rollout {good}: v{candidates['good']} passed every step (10%, 50%, 100%)"),
        ("set_routing", f"rollout {good}: v{candidates['good']} promoted"),
    ]
    table = _mlops(state_dir, "rollout", "show", MODEL, good, table=True)
    assert table.returncode == 0 and "succeeded" in table.stdout, table.stderr
