"""`mlops train --search` and the trials in `mlops runs show` (a fake client, no stack)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.unit import test_cli
from tests.unit.test_cli import RUN_ID, SUCCEEDED, TRAIN, FakeClient

cli = test_cli.cli  # the fixture: `mlops` with a fake client

SPACE = {
    "family": "logistic_regression",
    "space": {"C": {"type": "float", "low": 0.01, "high": 10}},
    "n_trials": 6,
}
SEARCHED = SUCCEEDED | {
    "best_candidate": "t004",
    "candidates": [
        {"candidate_id": "t004", "family": "logistic_regression", "validation_metrics": {"roc_auc": 0.99}}
    ],
    "search": {
        "family": "logistic_regression",
        "metric": "roc_auc",
        "direction": "maximize",
        "rounds": 2,
        "stopped": "budget spent: 6 trials",
        "trials": [
            {
                "number": i,
                "candidate_id": f"t{i:03d}",
                "round": 1 + i // 3,
                "params": {"C": 0.5 + i},
                "state": "COMPLETE",
                "value": 0.9 + i / 100,
            }
            for i in range(5)
        ]
        + [
            {
                "number": 5,
                "candidate_id": "t005",
                "round": 2,
                "params": {"C": 9.0},
                "state": "FAIL",
                "error": "MemoryError: out of memory",
            }
        ],
        "best": {"number": 4, "candidate_id": "t004", "value": 0.94, "params": {"C": 4.5}},
    },
}


def test_train_search_sends_the_space_from_a_file_instead_of_candidates(cli: Any, tmp_path: Path) -> None:
    space = tmp_path / "space.json"
    space.write_text(json.dumps(SPACE))
    client = FakeClient(start_training={"run_id": RUN_ID})

    result = cli(client, *TRAIN, "--search", f"@{space}")

    assert result.exit_code == 0, result.output
    (_, (request,), _), *_ = client.calls
    assert request == {"model_name": "breast-cancer", "dataset_key": TRAIN[-1], "seed": 42, "search": SPACE}


def test_train_with_both_search_and_candidates_or_a_malformed_search_is_a_usage_error(cli: Any) -> None:
    both = cli(FakeClient(), *TRAIN, "--search", json.dumps(SPACE), "--candidates", '[{"family": "ridge"}]')
    malformed = cli(FakeClient(), *TRAIN, "--search", '[{"family": "ridge"}]')

    assert both.exit_code == malformed.exit_code == 2
    assert "not both" in both.stderr
    assert "expected a JSON object" in malformed.stderr


def test_runs_show_lists_every_trial_and_marks_the_best(cli: Any) -> None:
    result = cli(FakeClient(run_sequence=[SEARCHED]), "runs", "show", RUN_ID)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert (
        "  search      6 trials in 2 round(s) of logistic_regression, maximize roc_auc, "
        "budget spent: 6 trials" in lines
    )
    trial_lines = [line for line in lines if line.strip().lstrip("*").startswith("t0")]
    assert len(trial_lines) == 6
    assert trial_lines[4].startswith("  *t004 r2 COMPLETE 0.9400")
    assert "FAIL" in trial_lines[5] and "MemoryError" in trial_lines[5]


def test_train_pruner_adds_optunas_pruner_to_the_search(cli: Any) -> None:
    client = FakeClient(start_training={"run_id": RUN_ID})
    space = SPACE | {"family": "random_forest", "pruner": {"type": "median", "n_startup_trials": 2}}

    result = cli(client, *TRAIN, "--search", json.dumps(space), "--pruner", "median")

    assert result.exit_code == 0, result.output
    (_, (request,), _), *_ = client.calls
    assert request["search"]["pruner"] == {"type": "median", "n_startup_trials": 2}


def test_train_pruner_without_search_or_against_the_searchs_own_or_unknown_is_a_usage_error(
    cli: Any,
) -> None:
    alone = cli(FakeClient(), *TRAIN, "--pruner", "median")
    against = cli(
        FakeClient(),
        *TRAIN,
        "--search",
        json.dumps(SPACE | {"pruner": {"type": "hyperband"}}),
        "--pruner",
        "median",
    )
    unknown = cli(FakeClient(), *TRAIN, "--search", json.dumps(SPACE), "--pruner", "percentile")

    assert alone.exit_code == against.exit_code == unknown.exit_code == 2
    assert "--pruner goes with --search" in alone.stderr
    assert "declares hyperband" in against.stderr


def test_runs_show_marks_pruned_trials_with_their_step(cli: Any) -> None:
    pruned = SEARCHED | {
        "search": SEARCHED["search"]
        | {
            "pruner": {"type": "median"},
            "pruned": 1,
            "trials": [
                *SEARCHED["search"]["trials"][:5],
                {
                    "number": 5,
                    "candidate_id": "t005",
                    "round": 2,
                    "params": {"C": 9.0},
                    "state": "PRUNED",
                    "value": 0.61,
                    "pruned_at_step": 20,
                },
            ],
        }
    }

    result = cli(FakeClient(run_sequence=[pruned]), "runs", "show", RUN_ID)

    assert result.exit_code == 0, result.output
    assert "budget spent: 6 trials, 1 pruned (median)" in result.stdout
    (line,) = [x for x in result.stdout.splitlines() if "t005" in x]
    assert "PRUNED" in line and "(pruned at step 20)" in line
