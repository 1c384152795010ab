"""Optuna's search and the compute choice on the local stack, over HTTP with the CLI: `mlops up
--demo` in a subprocess, `mlops train --search` on the demo's dataset runs two rounds of
three trials on moto's interpreter and registers the best; `mlops runs show` lists the
trials; asking for SageMaker is refused before any run starts (moto runs no training jobs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import demo_stack
from tests.e2e import test_local_stack as local_stack_test
from tests.support import PRUNED_FOREST_SEARCH

pytestmark = pytest.mark.e2e
# The module's own stack, started as `mlops up --demo` ends (a copy of the run's trained demo).
state_dir = demo_stack.state_dir
local_stack = demo_stack.local_stack
DATASET = "datasets/breast-cancer/v1/data.csv"
SEARCH = {
    "family": "logistic_regression",
    "space": {
        "C": {"type": "float", "low": 0.001, "high": 10.0, "log": True},
        "class_weight": {"type": "categorical", "choices": [None, "balanced"]},
    },
    "rounds": 2,
    "parallelism": 3,
}


def test_a_search_runs_on_the_local_stack_and_runs_show_lists_its_trials(
    local_stack: dict[str, Any], state_dir: Path, tmp_path: Path
) -> None:
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SEARCH))

    trained = local_stack_test._mlops(
        state_dir,
        "train", "--model", "breast-cancer", "--dataset", DATASET, "--search", f"@{space}",
        "--tolerance", "0.1", "--wait", "--timeout", "600",
    )  # fmt: skip

    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    run = json.loads(trained.stdout)
    assert run["status"] == "SUCCEEDED" and run["registered_version"] == 2
    trials = run["search"]["trials"]
    assert [t["round"] for t in trials] == [1, 1, 1, 2, 2, 2]
    assert {t["state"] for t in trials} == {"COMPLETE"}
    assert run["best_candidate"] == run["search"]["best"]["candidate_id"]
    assert len(run["candidates"]) == 6

    shown = local_stack_test._mlops(state_dir, "--table", "runs", "show", run["run_id"])
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert sum(1 for line in lines if line.strip().lstrip("*").startswith("t00")) == 6
    assert any(line.startswith(f"  *{run['search']['best']['candidate_id']} ") for line in lines)


def test_sagemaker_is_refused_on_the_local_stack_before_any_run_starts(
    local_stack: dict[str, Any], state_dir: Path
) -> None:
    before = json.loads(local_stack_test._mlops(state_dir, "runs", "list", "breast-cancer").stdout)

    refused = local_stack_test._mlops(
        state_dir, "train", "--model", "breast-cancer", "--dataset", DATASET, "--compute", "sagemaker"
    )

    assert refused.returncode == 1
    assert "compute 'sagemaker' is not available on the local stack" in refused.stderr
    after = json.loads(local_stack_test._mlops(state_dir, "runs", "list", "breast-cancer").stdout)
    assert len(after) == len(before)


def test_a_search_with_pruner_median_runs_on_the_local_stack_and_lists_its_pruned_trials(
    local_stack: dict[str, Any], state_dir: Path, tmp_path: Path
) -> None:
    space = tmp_path / "forest.json"
    space.write_text(json.dumps(PRUNED_FOREST_SEARCH))

    trained = local_stack_test._mlops(
        state_dir,
        "train", "--model", "breast-cancer", "--dataset", DATASET, "--search", f"@{space}",
        "--pruner", "median", "--tolerance", "0.1", "--wait", "--timeout", "600",
    )  # fmt: skip

    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    run = json.loads(trained.stdout)
    assert run["status"] == "SUCCEEDED"
    pruned = [t for t in run["search"]["trials"] if t["state"] == "PRUNED"]
    assert pruned and run["search"]["pruned"] == len(pruned)
    assert run["best_candidate"] not in {t["candidate_id"] for t in pruned}
    shown = local_stack_test._mlops(state_dir, "--table", "runs", "show", run["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert sum("(pruned at step" in line for line in shown.stdout.splitlines()) == len(pruned)
