"""`mlops rollout` as a user meets it: options to a request, `--wait` and its exit codes,
the steps table, usage errors in one line. The API client is a fake (no stack, no HTTP)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from infra.cli import main
from infra.cli import rollout as rollouts
from infra.cli.client import ApiError

ROLLOUT_ID = "rollout-20261201T120000Z-1a2b3c4d"


def _measurement(version: int, calls: int, errors: int) -> dict[str, Any]:
    return {
        "version": version,
        "calls": calls,
        "errors": errors,
        "error_rate": errors / calls,
        "p99_ms": 5.0,
        "p99_bucket": "le_5",
        "rewarded": 0,
        "reward_rate": None,
        "latency_ms": {"le_5": calls},
    }


def _rollout(status: str, checks: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "rollout_id": ROLLOUT_ID,
        "model_name": "breast-cancer",
        "candidate_version": 2,
        "production_version": 1,
        "steps": [10, 50, 100],
        "bake_seconds": 600,
        "guardrails": {"max_holds": 3},
        "status": status,
        "created_at": "2026-12-01T12:00:00.000Z",
        "progress": [{"index": 0, "percent": 10, "checks": checks or []}],
        "outcome": None,
        **fields,
    }


TRIPPED = _rollout(
    "rolled_back",
    checks=[
        {
            "attempt": 0,
            "decision": "rollback",
            "candidate": _measurement(2, 20, 20),
            "production": _measurement(1, 180, 0),
            "message": "error rate 100.00% (20 of 20 calls) vs production's 0.00%: more than 2.00% higher",
        }
    ],
    outcome={"cause": "guardrail", "message": "error rate 100.00% (20 of 20 calls) vs production's 0.00%"},
)


class FakeClient:
    """``ApiClient.call`` answered from a script: each GET of the rollout takes the next answer."""

    def __init__(self, *, gets: list[Any] | None = None, post: Any = None) -> None:
        self.gets = list(gets or [])
        self.post = post
        self.calls: list[tuple[str, str, Any]] = []

    def call(self, method: str, path: str, body: Any = None, *, query: dict[str, str] | None = None) -> Any:
        self.calls.append((method, path, body))
        answer = self.post if method == "POST" else (self.gets.pop(0) if len(self.gets) > 1 else self.gets[0])
        if isinstance(answer, Exception):
            raise answer
        return answer


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(main, "out", Console(width=100))
    monkeypatch.setattr(rollouts, "POLL_SECONDS", 0)
    runner = CliRunner()

    def invoke(client: FakeClient, *args: str) -> Any:
        monkeypatch.setattr(main, "_client", lambda: client)
        return runner.invoke(main.app, list(args), prog_name="mlops")

    return invoke


@pytest.mark.parametrize(
    ("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2m5s", 125)]
)
def test_durations_are_read_as_a_person_writes_them(text: str, seconds: int) -> None:
    assert rollouts.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "0s", "-5", "1.5m"])
def test_a_duration_that_is_not_one_names_the_option(text: str) -> None:
    with pytest.raises(rollouts.RolloutOptionError) as error:
        rollouts.parse_duration(text)
    assert error.value.option == "--bake"


def test_options_become_the_request_and_unset_guardrails_keep_the_api_defaults(cli: Any) -> None:
    client = FakeClient(post={"rollout_id": ROLLOUT_ID, "rollout": _rollout("running")})
    result = cli(
        client, "rollout", "start", "breast-cancer", "--candidate", "2", "--steps", "10%,50,100",
        "--bake", "5m", "--max-error-increase", "0.01", "--min-calls", "50", "--reason", "v2",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert client.calls == [
        (
            "POST",
            "/models/breast-cancer/rollouts",
            {
                "candidate_version": 2,
                "steps": [10, 50, 100],
                "bake_seconds": 300,
                "guardrails": {"max_error_rate_increase": 0.01, "min_calls": 50},
                "reason": "v2",
            },
        )
    ]
    assert result.stdout.splitlines() == [
        f"started rollout {ROLLOUT_ID}",
        f"follow it with: mlops rollout show breast-cancer {ROLLOUT_ID}",
    ]


@pytest.mark.parametrize(
    ("args", "option"), [(("--bake", "soon"), "--bake"), (("--steps", "ten,100"), "--steps")]
)
def test_bad_options_are_a_one_line_usage_error(cli: Any, args: tuple[str, ...], option: str) -> None:
    result = cli(FakeClient(), "rollout", "start", "m", "--candidate", "2", *args)
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and option in line


@pytest.mark.parametrize(
    ("final", "code"),
    [
        (_rollout("succeeded", outcome={"cause": "promoted", "message": "v2 is production"}), 0),
        (TRIPPED, 3),
        (_rollout("failed", outcome={"cause": "error", "message": "a step failed: Conflict"}), 4),
        (_rollout("aborted", outcome={"cause": "aborted", "message": "aborted: paged"}), 4),
    ],
)
def test_wait_follows_the_rollout_and_exits_with_its_outcome(
    cli: Any, final: dict[str, Any], code: int
) -> None:
    client = FakeClient(
        post={"rollout_id": ROLLOUT_ID, "rollout": _rollout("running")}, gets=[_rollout("running"), final]
    )
    result = cli(client, "rollout", "start", "breast-cancer", "--candidate", "2", "--wait")

    assert result.exit_code == code, result.output
    assert result.stdout.splitlines()[0] == f"rollout {ROLLOUT_ID}: {final['status']}"
    assert f"rollout {ROLLOUT_ID}: step 1/3 at 10%, baking" in result.stderr


def test_wait_gives_up_after_its_timeout_with_exit_5(cli: Any) -> None:
    client = FakeClient(
        post={"rollout_id": ROLLOUT_ID, "rollout": _rollout("running")}, gets=[_rollout("running")]
    )
    result = cli(client, "rollout", "start", "m", "--candidate", "2", "--wait", "--timeout", "0.001")
    assert result.exit_code == 5
    assert f"still running after 0 s; see it with `mlops rollout show m {ROLLOUT_ID}`" in result.stderr


def test_show_prints_each_check_with_both_sides_numbers(cli: Any) -> None:
    result = cli(FakeClient(gets=[TRIPPED]), "rollout", "show", "breast-cancer", ROLLOUT_ID)

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        f"rollout {ROLLOUT_ID}: rolled_back",
        "  candidate  v2 against production v1",
        "  steps      10%, 50%, 100%, baked 600 s each",
        "  tripped    error rate 100.00% (20 of 20 calls) vs production's 0.00%",
    ]
    header, row = lines[4].split(), lines[5]  # the table wraps its cells to 100 columns
    assert header == ["step", "share", "check", "decision", "candidate", "production", "why"]
    assert row.split()[:4] == ["1", "10%", "1", "rollback"]
    assert "v2: 20 calls, 100.00%" in row and "v1: 180 calls, 0.00%" in row


def test_show_without_an_id_lists_the_model_s_rollouts_and_json_is_the_api_s(cli: Any) -> None:
    listed = cli(FakeClient(gets=[{"rollouts": [TRIPPED]}]), "rollout", "show", "breast-cancer")
    assert listed.exit_code == 0 and ROLLOUT_ID in listed.stdout and "rolled_back" in listed.stdout
    as_json = cli(FakeClient(gets=[TRIPPED]), "--json", "rollout", "show", "breast-cancer", ROLLOUT_ID)
    assert json.loads(as_json.stdout) == TRIPPED


def test_aborting_an_ended_rollout_prints_the_api_s_conflict(cli: Any) -> None:
    conflict = ApiError(
        409, {"message": f"rollout {ROLLOUT_ID} is rolled_back: only a running rollout can be aborted"}
    )
    result = cli(FakeClient(post=conflict), "rollout", "abort", "breast-cancer", ROLLOUT_ID, "--reason", "x")
    assert result.exit_code == 1
    assert "HTTP 409: rollout" in result.stderr and "only a running rollout can be aborted" in result.stderr
