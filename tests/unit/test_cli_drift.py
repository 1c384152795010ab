"""`mlops drift`: durations, configuration merged with the one in force, and the exit codes of
`mlops drift run --wait`, with the API client replaced by a fake."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from infra.cli import drift_views, main
from mlops_core.monitoring.config import MonitoringConfig

RUN_ID = "20261201T120000000Z-1f2e3d4c"


def _run(status: str, **fields: Any) -> dict[str, Any]:
    return {
        "model_name": "m",
        "run_id": RUN_ID,
        "trigger": "on_demand",
        "status": status,
        "model_version": 1,
        "window_rows": 500,
        "tested_features": 10,
        "drifted_features": [],
        "drift_share": 0.0,
        **fields,
    }


class FakeClient:
    def __init__(self, statuses: list[str] | None = None) -> None:
        self.statuses = statuses or ["running", "no_drift"]
        self.sent: list[tuple[str, Any, Any]] = []

    def monitoring(self, name: str) -> Any:
        return {"model_name": name, "config": MonitoringConfig().model_dump(mode="json"), "revision": 2}

    def configure_monitoring(self, name: str, config: Any, expected_revision: int | None = None) -> Any:
        self.sent.append((name, config, expected_revision))
        stored = MonitoringConfig.model_validate(config).model_dump(mode="json")
        return {"model_name": name, "config": stored, "revision": 3, "scheduled": stored["enabled"]}

    def start_drift_run(self, name: str) -> Any:
        return {"model_name": name, "run_id": RUN_ID, "status": "running"}

    def drift_run(self, name: str, run_id: str) -> Any:
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        drifted = ["mean_radius", "mean_area"] if status == "drift" else []
        return {"run": _run(status, drifted_features=drifted), "result": None}


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(main, "out", Console(width=100))
    monkeypatch.setattr(drift_views, "POLL_SECONDS", 0)
    runner = CliRunner()

    def invoke(client: FakeClient, *args: str) -> Any:
        monkeypatch.setattr(main, "_client", lambda: client)
        return runner.invoke(main.app, list(args), prog_name="mlops")

    return invoke


@pytest.mark.parametrize(("text", "expected"), [("90m", 90), ("1h", 60), ("1.5h", 90), ("7d", 10080)])
def test_durations_read_as_minutes(text: str, expected: float) -> None:
    assert drift_views.minutes(text) == expected


def test_configure_changes_only_the_options_given_and_compares_and_sets(cli: Any) -> None:
    client = FakeClient()

    result = cli(
        client, "drift", "configure", "m", "--every", "2h", "--window", "7d", "--alpha", "0.01", "--disable"
    )

    assert result.exit_code == 0, result.output
    ((name, config, expected),) = client.sent
    assert (name, expected) == ("m", 2)
    assert (config["every_minutes"], config["window_hours"], config["enabled"]) == (120, 168.0, False)
    assert config["drift"]["alpha"] == 0.01 and config["drift"]["numeric_threshold"] == 0.05
    assert "scheduled runs off" in result.stdout


def test_configure_from_a_file_sends_it_whole(cli: Any, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"every_minutes": 30, "enabled": True}))
    client = FakeClient()

    assert cli(client, "drift", "configure", "m", "--file", str(path)).exit_code == 0
    assert client.sent == [("m", {"every_minutes": 30, "enabled": True}, None)]
    assert cli(client, "drift", "configure", "m", "--file", str(path), "--every", "1h").exit_code == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [("no_drift", 0), ("insufficient_data", 0), ("no_reference", 0), ("drift", 3), ("failed", 4)],
)
def test_run_wait_exits_with_the_runs_outcome(cli: Any, status: str, code: int) -> None:
    result = cli(FakeClient(["running", status]), "drift", "run", "m", "--wait")

    assert result.exit_code == code, result.output
    assert result.stdout.splitlines()[0] == f"m drift run {RUN_ID}: {status}"


def test_run_wait_exits_5_when_the_run_outlasts_the_timeout(
    cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(drift_views.time, "monotonic", lambda: float(next(clock)))

    result = cli(FakeClient(["running"]), "drift", "run", "m", "--wait", "--timeout", "5")

    assert result.exit_code == 5 and "still running" in result.stderr


def test_the_drifted_features_are_named(cli: Any) -> None:
    result = cli(FakeClient(["drift"]), "drift", "run", "m", "--wait")

    assert "drifted: mean_radius, mean_area (2 of 10 tested, share 0%)" in result.stdout
