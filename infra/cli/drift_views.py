"""`mlops drift`'s pieces that need no command line: durations, a configuration merged with
the one in force, a run followed to its end, and runs and features as lines and tables."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from infra.cli.client import ApiClient, ApiError
from infra.cli.tables import Rows

POLL_SECONDS = 1.0
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(m|min|mins|minutes?|h|hours?|d|days?)\s*$")


class BadDuration(ValueError):
    pass


def minutes(text: str) -> float:
    """``90m``, ``1h``, ``1.5h``, ``2d`` -> minutes."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise BadDuration(f"{text!r} is not a duration: use 90m, 1h, 24h, 7d")
    value, unit = float(match[1]), match[2][0]
    return value * {"m": 1, "h": 60, "d": 1440}[unit]


def merged_config(current: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """The configuration in force with the options given (None: unchanged) laid over it."""
    config = json.loads(json.dumps(current))
    for path, value in options.items():
        if value is None:
            continue
        *parents, leaf = path.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return config


def describe_config(view: dict[str, Any]) -> str:
    config, drift = view["config"], view["config"]["drift"]
    when = f"every {config['every_minutes']} min" if view["scheduled"] else "scheduled runs off"
    window = f"window {config['window_hours']:g} h (at most {config['max_rows']:,} rows)"
    tests = (
        f"alpha {drift['alpha']} ({drift['correction']}), thresholds {drift['numeric_threshold']} "
        f"numeric / {drift['categorical_threshold']} categorical, min_rows {drift['min_rows']}"
    )
    return f"{view['model_name']}: {when}, {window}; {tests} (revision {view['revision']})"


def describe_run(run: dict[str, Any]) -> list[str]:
    """A run's summary in a few lines: status, what was compared, what drifted."""
    lines = [f"{run['model_name']} drift run {run['run_id']}: {run['status']}"]
    if run.get("model_version") is not None:
        reference = run.get("reference_run_id") or "-"
        window = f"{run.get('window_start') or '-'} to {run.get('window_end') or '-'}"
        lines.append(
            f"  version {run['model_version']} (reference: training run {reference}), "
            f"window {window}, {run['window_rows']} rows"
        )
    if run["tested_features"]:
        drifted = ", ".join(run["drifted_features"]) or "none"
        lines.append(
            f"  drifted: {drifted} ({len(run['drifted_features'])} of {run['tested_features']} tested, "
            f"share {run['drift_share']:.0%})"
        )
    prediction = run.get("prediction")
    if prediction:
        lines.append(
            f"  output: {prediction['status']}"
            + (f" ({prediction['message']})" if prediction.get("message") else "")
        )
    for label, key in (("missing", "missing_features"), ("not numbers", "unexpected_type_features")):
        if run.get(key):
            lines.append(f"  {label}: {', '.join(run[key])}")
    if run.get("message"):
        lines.append(f"  {run['message']}")
    return lines


def features_table(result: dict[str, Any]) -> Rows:
    table = Rows(
        "feature",
        "decision",
        "test",
        "statistic",
        "p",
        "corrected p",
        "effect",
        "threshold",
        "rows",
        ids=("feature",),
    )
    for feature in result["features"]:
        table.add_row(
            feature["feature"],
            feature["status"],
            feature.get("test") or "",
            _number(feature.get("statistic")),
            _p(feature.get("p_value")),
            _p(feature.get("corrected_p_value")),
            _number(feature.get("effect_size")),
            _number(feature.get("threshold")),
            str(feature.get("window_rows", "")),
        )
    return table


def history_table(runs: list[dict[str, Any]]) -> Rows:
    table = Rows("run", "trigger", "status", "version", "rows", "drifted", ids=("run",))
    for run in runs:
        table.add_row(
            run["run_id"],
            run["trigger"],
            run["status"],
            "" if run.get("model_version") is None else str(run["model_version"]),
            str(run["window_rows"]),
            ", ".join(run["drifted_features"]),
        )
    return table


def wait_for_run(client: ApiClient, name: str, run_id: str, *, timeout: float) -> dict[str, Any] | None:
    """The run once it ended (None if it is still running after ``timeout`` seconds)."""
    until = time.monotonic() + timeout
    failures = 0
    while True:
        try:
            detail: dict[str, Any] = client.drift_run(name, run_id)
            failures = 0
        except ApiError as error:
            failures += 1
            if error.status < 500 or failures > 3:
                raise
            detail = {"run": {"status": "running"}}
        if detail["run"]["status"] != "running":
            return detail
        if time.monotonic() >= until:
            return None
        time.sleep(POLL_SECONDS)


def resolve_run_id(client: ApiClient, name: str, run_id: str) -> str:
    """``latest``: the newest run that finished; anything else as it is."""
    if run_id != LATEST:
        return run_id
    latest = client.drift(name, 1)["latest"]
    if latest is None:
        raise ApiError(404, {"message": f"model '{name}' has no finished drift run yet"})
    return str(latest["run_id"])


LATEST = "latest"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"
