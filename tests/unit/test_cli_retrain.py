"""`mlops retrain list|show`: the retraining loop's decisions as a table and as lines, `latest`,
and --json, with the API client replaced by a fake (the real API: tests/e2e/test_local_drift_loop.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from infra.cli import main

STARTED = {
    "decision_id": "20261201T140853275Z-0d5abba4",
    "model_name": "m",
    "event_id": "645eb913-4a50-4f47-90e6-2dd3050b5e96",
    "drift_run_id": "20261201T140852259Z-c3cc4be7",
    "kinds": ["data", "concept"],
    "outcome": "started",
    "reason": "training run m-retrain-20261201-140853-0d5abba4 on 300 labelled rows and 569 of the "
    "training data",
    "at": "2026-12-01T14:08:53.275Z",
    "run_id": "m-retrain-20261201-140853-0d5abba4",
    "dataset_key": "datasets/m-retraining/v1/data.csv",
    "counts": {
        "captured": 320,
        "feedback": 300,
        "labelled": 300,
        "skipped": {"no_label": 20},
        "training_rows": 569,
        "rows": 869,
    },
}
SKIPPED = {
    "decision_id": "20261201T150000000Z-1a2b3c4d",
    "model_name": "m",
    "event_id": "second",
    "drift_run_id": "20261201T145959000Z-99aa88bb",
    "kinds": ["data"],
    "outcome": "skipped",
    "reason": "retraining run m-retrain-20261201-140853-0d5abba4 started 0.85 h ago, within the "
    "cooldown of 24 h",
    "at": "2026-12-01T15:00:00.000Z",
}


class FakeClient:
    def __init__(self, decisions: list[dict[str, Any]], run: dict[str, Any] | None = None) -> None:
        self.decisions = decisions
        self.run = run
        self.asked: list[str] = []

    def retraining_decisions(self, name: str, limit: int = 50) -> Any:
        return self.decisions[:limit]

    def retraining_decision(self, name: str, decision_id: str) -> Any:
        self.asked.append(decision_id)
        (decision,) = [d for d in self.decisions if d["decision_id"] == decision_id]
        version = (self.run or {}).get("registered_version")
        return {"decision": decision, "training_run": self.run, "registered_version": version}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(main, "out", Console(width=120))
    runner = CliRunner()

    def invoke(client: FakeClient, *args: str) -> Any:
        monkeypatch.setattr(main, "_client", lambda: client)
        return runner.invoke(main.app, list(args), prog_name="mlops")

    return invoke


def test_list_shows_each_decision_with_ids_whole(cli: Any) -> None:
    result = cli(FakeClient([SKIPPED, STARTED]), "retrain", "list", "m")

    assert result.exit_code == 0, result.output
    assert STARTED["decision_id"] in result.stdout and STARTED["run_id"] in result.stdout
    assert result.stdout.index(SKIPPED["decision_id"]) < result.stdout.index(STARTED["decision_id"])


def test_list_says_when_there_is_none_and_json_is_the_api_answer(cli: Any) -> None:
    empty = cli(FakeClient([]), "retrain", "list", "m")
    assert empty.exit_code == 0 and "no retraining decision for m" in empty.stdout

    as_json = cli(FakeClient([STARTED]), "--json", "retrain", "list", "m")
    assert json.loads(as_json.stdout) == {"decisions": [STARTED]}


def test_show_follows_the_decision_to_the_registered_version(cli: Any) -> None:
    run = {
        "run_id": STARTED["run_id"],
        "status": "SUCCEEDED",
        "evaluation": {"passed": True, "reason": "passed the gate"},
        "registered_version": 2,
        "found": True,
    }
    client = FakeClient([SKIPPED, STARTED], run)

    result = cli(client, "retrain", "show", "m", str(STARTED["decision_id"]))

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"decision {STARTED['decision_id']} ({STARTED['at']}): started: {STARTED['reason']}",
        f"  from drift run {STARTED['drift_run_id']} (data, concept), event {STARTED['event_id']}",
        "  dataset datasets/m-retraining/v1/data.csv: 869 rows (300 labelled of 320 captured, 569 of the "
        "training data; left out: no_label 20)",
        f"  training run {STARTED['run_id']}: SUCCEEDED",
        "  gate: passed: passed the gate",
        "  registered version 2 (`mlops models card m 2`)",
    ]


def test_show_latest_is_the_newest_and_a_refused_or_unrecorded_run_says_so(cli: Any) -> None:
    refused = {
        "run_id": STARTED["run_id"],
        "status": "REJECTED",
        "evaluation": {"passed": False, "reason": "roc_auc 0.8 is below the threshold 0.9"},
        "found": True,
    }
    client = FakeClient([STARTED], refused)
    result = cli(client, "retrain", "show", "m", "latest")
    assert client.asked == [STARTED["decision_id"]]
    assert "gate: refused: roc_auc 0.8 is below the threshold 0.9" in result.stdout
    assert "registered version" not in result.stdout

    pending = cli(
        FakeClient([STARTED], {"run_id": STARTED["run_id"], "found": False}), "retrain", "show", "m", "latest"
    )
    assert f"training run {STARTED['run_id']}: no record yet" in pending.stdout

    none = cli(FakeClient([]), "retrain", "show", "m", "latest")
    assert none.exit_code == 1 and "no retraining decision yet" in none.output
