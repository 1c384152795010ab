"""`mlops rollout`: a rollout request from command-line options, following a rollout to its
end (exit codes like `mlops train --wait`), and showing rollouts and their steps.

``GET /models/{name}/rollouts/{id}`` answers the rollout's record: its status, each step
(share, when it started, every check with the candidate's and production's numbers) and
how it ended.
"""

from __future__ import annotations

import re
import time
from typing import Any

import requests
from rich.console import Console

from infra.cli.client import ApiClient, ApiError
from infra.cli.tables import Rows

#: `mlops rollout start --wait` exits with these (documented in its help).
EXIT_CODES = {"succeeded": 0, "rolled_back": 3, "failed": 4, "aborted": 4}
EXIT_STILL_RUNNING = 5
EXIT_CODES_HELP = (
    "Exit codes with --wait: 0 the candidate was promoted, 1 an API error, 2 a usage error, "
    "3 rolled back by a guardrail, 4 failed or aborted (all traffic back on production), "
    f"{EXIT_STILL_RUNNING} still running when --timeout passed."
)
POLL_SECONDS = 1.0
MAX_POLL_FAILURES = 3
_DURATION = re.compile(r"^(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s?)?$")


class RolloutOptionError(ValueError):
    """An option that does not make a rollout request; ``option`` names it."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


class RolloutStillRunning(Exception):
    def __init__(self, rollout_id: str, timeout: float) -> None:
        self.rollout_id = rollout_id
        super().__init__(f"rollout {rollout_id} still running after {timeout:.0f} s")


def parse_duration(text: str, option: str = "--bake") -> int:
    """Seconds from ``90``, ``90s``, ``10m``, ``1h`` or ``1h30m``."""
    match = _DURATION.match(text.strip())
    if not text.strip() or match is None:
        raise RolloutOptionError(f"{text!r} is not a duration: write e.g. 90s, 10m or 1h30m", option)
    seconds = int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)
    if seconds <= 0:
        raise RolloutOptionError("the duration must be at least 1 s", option)
    return seconds


def parse_steps(text: str) -> list[int]:
    """``10,50,100`` -> [10, 50, 100] (percent; ``%`` signs allowed). The API checks the rest."""
    steps = []
    for part in (p.strip().removesuffix("%") for p in text.split(",") if p.strip()):
        try:
            steps.append(int(part))
        except ValueError:
            raise RolloutOptionError(f"{part!r} is not a whole percentage", "--steps") from None
    if not steps:
        raise RolloutOptionError("expected comma-separated percentages, e.g. 10,50,100", "--steps")
    return steps


def request_body(
    *, candidate: int, steps: str, bake: str, reason: str, guardrails: dict[str, Any]
) -> dict[str, Any]:
    """The ``POST /models/{name}/rollouts`` body; guardrails left None keep the API's defaults."""
    return {
        "candidate_version": candidate,
        "steps": parse_steps(steps),
        "bake_seconds": parse_duration(bake),
        "guardrails": {name: value for name, value in guardrails.items() if value is not None},
        "reason": reason,
    }


# ---- the API ---------------------------------------------------------------------------------
def start(client: ApiClient, name: str, body: dict[str, Any]) -> dict[str, Any]:
    return dict(client.call("POST", f"/models/{name}/rollouts", body))


def get(client: ApiClient, name: str, rollout_id: str) -> dict[str, Any]:
    return dict(client.call("GET", f"/models/{name}/rollouts/{rollout_id}"))


def recent(client: ApiClient, name: str, limit: int) -> list[dict[str, Any]]:
    return list(client.call("GET", f"/models/{name}/rollouts", query={"limit": str(limit)})["rollouts"])


def abort(client: ApiClient, name: str, rollout_id: str, reason: str) -> dict[str, Any]:
    return dict(client.call("POST", f"/models/{name}/rollouts/{rollout_id}/abort", {"reason": reason}))


# ---- following one -----------------------------------------------------------------------------
def longest_seconds(rollout: dict[str, Any]) -> float:
    """How long the rollout can take at most: every step baked as often as it may be held."""
    holds = int((rollout.get("guardrails") or {}).get("max_holds", 3))
    return len(rollout["steps"]) * int(rollout["bake_seconds"]) * (1 + holds) + 120


def wait_for_rollout(
    client: ApiClient, name: str, rollout_id: str, console: Console, *, timeout: float
) -> dict[str, Any]:
    """Poll until the rollout ends, showing its step on ``console`` (a status line on a
    terminal, one line per change otherwise). Raises ``RolloutStillRunning``."""
    started, shown, failures = time.monotonic(), None, 0
    status = (
        console.status(f"rollout {rollout_id}: starting", spinner="dots") if console.is_terminal else None
    )
    if status is not None:
        status.start()
    try:
        while True:
            try:
                rollout = get(client, name, rollout_id)
                failures = 0
            except (ApiError, requests.RequestException) as error:
                failures += 1
                if (isinstance(error, ApiError) and error.status < 500) or failures > MAX_POLL_FAILURES:
                    raise
                rollout = {}
            if rollout.get("status") in EXIT_CODES:
                return rollout
            where = progress(rollout) if rollout else "starting"
            elapsed = time.monotonic() - started
            if status is not None:
                status.update(f"rollout {rollout_id}: {where} ({elapsed:.0f} s)")
            elif where != shown:
                console.print(f"rollout {rollout_id}: {where}", highlight=False)
            shown = where
            if elapsed > timeout:
                raise RolloutStillRunning(rollout_id, timeout)
            time.sleep(POLL_SECONDS)
    finally:
        if status is not None:
            status.stop()


def progress(rollout: dict[str, Any]) -> str:
    steps = rollout.get("progress") or []
    if rollout.get("status") == "promoting":
        return "promoting"
    if not steps:
        return "starting"
    step = steps[-1]
    checks = step.get("checks") or []
    doing = "baking" if not checks or checks[-1]["decision"] == "hold" else "checked"
    held = f", held {len(checks)}x" if checks and checks[-1]["decision"] == "hold" else ""
    return f"step {step['index'] + 1}/{len(rollout['steps'])} at {step['percent']}%, {doing}{held}"


# ---- showing ----------------------------------------------------------------------------------
def summary(rollout: dict[str, Any]) -> list[str]:
    candidate, production = rollout["candidate_version"], rollout["production_version"]
    steps = ", ".join(f"{p}%" for p in rollout["steps"])
    lines = [
        f"rollout {rollout['rollout_id']}: {rollout['status']}",
        f"  {'candidate':<10} v{candidate} against production v{production}",
        f"  {'steps':<10} {steps}, baked {rollout['bake_seconds']} s each",
    ]
    outcome = rollout.get("outcome")
    if outcome:
        label = {"promoted": "promoted", "guardrail": "tripped", "error": "failed", "aborted": "aborted"}
        lines.append(f"  {label[outcome['cause']]:<10} {outcome['message']}")
    return lines


def steps_table(rollout: dict[str, Any]) -> Rows:
    table = Rows("step", "share", "check", "decision", "candidate", "production", "why")
    for step in rollout.get("progress") or []:
        for check in step.get("checks") or [{}]:
            table.add_row(
                str(step["index"] + 1),
                f"{step['percent']}%",
                str(check["attempt"] + 1) if check else "baking",
                check.get("decision", ""),
                _measured(check.get("candidate")),
                _measured(check.get("production")),
                check.get("message", ""),
            )
    return table


def list_table(rollouts: list[dict[str, Any]]) -> Rows:
    table = Rows("rollout", "status", "candidate", "from", "steps", "started", "outcome", ids=("rollout",))
    for rollout in rollouts:
        table.add_row(
            rollout["rollout_id"],
            rollout["status"],
            f"v{rollout['candidate_version']}",
            f"v{rollout['production_version']}",
            ",".join(map(str, rollout["steps"])),
            rollout["created_at"],
            (rollout.get("outcome") or {}).get("message", progress(rollout)),
        )
    return table


def _measured(measurement: dict[str, Any] | None) -> str:
    if not measurement:
        return ""
    text = f"v{measurement['version']}: {measurement['calls']} calls"
    if measurement.get("error_rate") is not None:
        text += f", {measurement['error_rate']:.2%} errors"
    bucket = measurement.get("p99_bucket")
    if bucket:
        text += ", p99 > 5000 ms" if bucket == "le_inf" else f", p99 <= {measurement['p99_ms']:g} ms"
    if measurement.get("reward_rate") is not None:
        text += f", reward {measurement['reward_rate']:.4f}"
    return text
