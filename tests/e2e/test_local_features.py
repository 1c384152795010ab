"""The feature store on the local stack, for real: `mlops up --schedule-speedup 60` in a
subprocess; a view applied with the CLI from features/breast_cancer.toml, materialized by the
template's schedule (rate(5 minutes), fired every 5 s), looked up over HTTP with the API key,
and materialized again on demand (nothing new: nothing written)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import requests

from infra.local.sample_data import FEATURE_SOURCE_KEY, FEATURE_VIEW, breast_cancer_features
from tests.e2e.stack_process import MLOPS, running_stack, stack_env, stack_state_dir
from tests.support import ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = stack_state_dir(tmp_path_factory, "local-features")
    with running_stack(state_dir, "--schedule-speedup", "60") as running:
        yield running


def mlops(stack: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MLOPS, *args],
        cwd=ROOT,
        env=stack_env(stack["state_dir"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_view_is_applied_materialized_on_schedule_and_looked_up_over_http(stack: dict[str, Any]) -> None:
    description = stack["description"]
    s3 = boto3.client(
        "s3",
        endpoint_url=description["moto_url"],
        region_name=description["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    s3.put_object(
        Bucket=description["artifacts_bucket"],
        Key=FEATURE_SOURCE_KEY,
        Body=breast_cancer_features(int(time.time() * 1000)),
    )

    applied = mlops(stack, "features", "apply", "features/breast_cancer.toml")
    assert applied.returncode == 0, applied.stderr
    assert f"{FEATURE_VIEW}: new -> is now v1" in applied.stdout
    again = mlops(stack, "features", "apply", "features/")
    assert f"{FEATURE_VIEW}: unchanged (v1)" in again.stdout

    # The template's schedule (every 5 minutes, here every 5 s) finds the new view due.
    deadline = time.monotonic() + 60
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        listed = mlops(stack, "--json", "features", "runs", FEATURE_VIEW)
        assert listed.returncode == 0, listed.stderr
        runs = json.loads(listed.stdout)
        if any(r["trigger"] == "schedule" and r["status"] == "succeeded" for r in runs):
            break
        time.sleep(1)
    scheduled = next(r for r in runs if r["trigger"] == "schedule")
    assert scheduled["status"] == "succeeded" and scheduled["items_written"] == 569, scheduled

    api, key = description["api_url"], description["api_key"]
    one = requests.get(f"{api}/features/{FEATURE_VIEW}/1", headers={"x-api-key": key}, timeout=10)
    assert one.status_code == 200, one.text
    assert one.json()["values"]["mean_radius"] == 17.99 and one.json()["stale"] is False
    batch = requests.post(
        f"{api}/features/{FEATURE_VIEW}",
        json={"entity_ids": [1, 2, 100000]},
        headers={"x-api-key": key},
        timeout=10,
    )
    assert batch.status_code == 200 and batch.json()["missing"] == ["100000"]
    assert requests.get(f"{api}/features/{FEATURE_VIEW}/1", timeout=10).status_code == 403  # no API key
    assert (
        requests.get(f"{api}/features/no_such_view/1", headers={"x-api-key": key}, timeout=10).status_code
        == 404
    )
    assert (
        requests.get(f"{api}/features/{FEATURE_VIEW}/x", headers={"x-api-key": key}, timeout=10).status_code
        == 422
    )

    on_demand = mlops(stack, "--json", "features", "materialize", FEATURE_VIEW, "--wait", "--timeout", "60")
    assert on_demand.returncode == 0, on_demand.stdout + on_demand.stderr
    run = json.loads(on_demand.stdout)
    assert (run["status"], run["trigger"], run["items_written"], run["objects_read"]) == (
        "succeeded",
        "on_demand",
        0,
        0,
    )

    fresh = mlops(stack, "--json", "features", "freshness")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    (report,) = json.loads(fresh.stdout)
    assert report["entities"] == 569 and report["stale"] is False
