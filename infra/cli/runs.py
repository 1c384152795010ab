"""Following a training run: its progress while it runs, a summary when it ends, exit codes.

``GET /runs/{id}`` answers the run record (written by the workflow's steps) with the
Step Functions execution beside it (``execution.status``, ``execution.current_step``).
"""

from __future__ import annotations

import time
from typing import Any

import requests
from rich.console import Console

from infra.cli.client import ApiClient, ApiError

# `mlops train --wait` and `mlops runs wait` exit with these (documented in their help).
EXIT_CODES = {"SUCCEEDED": 0, "REJECTED": 3, "FAILED": 4}
EXIT_STILL_RUNNING = 5
EXIT_CODES_HELP = (
    "Exit codes: 0 the run succeeded (a version was registered), 1 an API error, 2 a usage error, "
    f"3 the run was rejected by the gate, 4 the run failed, {EXIT_STILL_RUNNING} still running "
    "when --timeout passed."
)
POLL_SECONDS = 1.0
# Transient answers (a 5xx, a dropped connection) tolerated in a row while following a run.
MAX_POLL_FAILURES = 3


class RunStillRunning(Exception):
    """The run had not ended when the wait's timeout passed."""

    def __init__(self, run_id: str, timeout: float) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id} still running after {timeout:.0f} s")


def outcome(run: dict[str, Any]) -> str:
    """SUCCEEDED, REJECTED or FAILED once the execution has ended; RUNNING before.

    The run record's status says which (a rejection is a failed execution, ``ModelRejected``);
    an execution that ended without finishing its record (aborted, timed out, failed before
    ValidateData wrote it) is FAILED.
    """
    execution = run.get("execution") or {}
    if execution.get("status", "RUNNING") == "RUNNING":
        return "RUNNING"
    status = run.get("status")
    if status in EXIT_CODES:
        return str(status)
    return "SUCCEEDED" if execution.get("status") == "SUCCEEDED" else "FAILED"


def wait_for_run(client: ApiClient, run_id: str, console: Console, *, timeout: float = 600) -> dict[str, Any]:
    """Poll the run until its execution ends; show its current step on ``console``.

    On a terminal, one status line (spinner, step, elapsed time) updated in place; otherwise
    (CI logs, a pipe) one line each time the step changes. Raises ``RunStillRunning``.
    """
    started = time.monotonic()
    shown = None
    failures = 0
    status = console.status(f"run {run_id}: starting", spinner="dots") if console.is_terminal else None
    if status is not None:
        status.start()
    try:
        while True:
            try:
                run = dict(client.run(run_id))
                failures = 0
            except (ApiError, requests.RequestException) as error:
                transient = not isinstance(error, ApiError) or error.status >= 500
                failures += 1
                if not transient or failures > MAX_POLL_FAILURES:
                    raise
                run = {}
            if run and outcome(run) != "RUNNING":
                return run
            step = (run.get("execution") or {}).get("current_step") or run.get("status") or "starting"
            elapsed = time.monotonic() - started
            if status is not None:
                status.update(f"run {run_id}: {step} ({elapsed:.0f} s)")
            elif step != shown:
                console.print(f"run {run_id}: {step}", highlight=False)
            shown = step
            if elapsed > timeout:
                raise RunStillRunning(run_id, timeout)
            time.sleep(POLL_SECONDS)
    finally:
        if status is not None:
            status.stop()


def _metrics(metrics: dict[str, Any], first: str | None) -> str:
    names = sorted(metrics, key=lambda name: (name != first, name))
    return ", ".join(
        f"{name} {metrics[name]:.4f}" for name in names if isinstance(metrics[name], int | float)
    )


def summary(run: dict[str, Any]) -> list[str]:
    """A few lines a person reads: status, dataset, best candidate, metrics, the verdict."""
    state = outcome(run)
    execution = run.get("execution") or {}
    shown_status = state if state != "RUNNING" else f"RUNNING ({execution.get('current_step') or 'starting'})"
    duration = f" in {run['duration_seconds']:.1f} s" if run.get("duration_seconds") is not None else ""
    lines = [f"run {run.get('run_id')}: {shown_status}{duration}"]

    def line(label: str, text: str) -> None:
        lines.append(f"  {label:<11} {text}")

    request = run.get("request") or {}
    dataset = run.get("dataset") or {}
    if dataset:
        line(
            "dataset",
            f"{dataset.get('key')} ({dataset.get('rows')} rows, sha256 {str(dataset.get('sha256'))[:12]})",
        )
    elif request.get("dataset_key"):
        line("dataset", str(request["dataset_key"]))
    views = run.get("feature_views") or []
    if views:
        line("views", ", ".join(f"{v.get('name')} v{v.get('version')}" for v in views))
    report = (run.get("training_set") or {}).get("report") or {}
    if report:
        dropped = f", {report['rows_dropped']} dropped" if report.get("policy") else ""
        line(
            "labels",
            f"{report.get('rows')} joined point-in-time, "
            f"{report.get('incomplete')} lacking features{dropped}",
        )
    metric = run.get("target_metric") or request.get("target_metric")
    candidates = {c.get("candidate_id"): c for c in run.get("candidates") or []}
    best = candidates.get(run.get("best_candidate"))
    if best is not None:
        validation = (best.get("validation_metrics") or {}).get(metric)
        scored = f", validation {metric} {validation:.4f}" if isinstance(validation, int | float) else ""
        line("best", f"{best['candidate_id']} {best.get('family')} (best of {len(candidates)}{scored})")
    lines += search_lines(run.get("search") or {})
    evaluation = run.get("evaluation") or {}
    if evaluation.get("holdout_metrics"):
        rows = f" ({evaluation['holdout_rows']} rows)" if evaluation.get("holdout_rows") else ""
        line("holdout", _metrics(evaluation["holdout_metrics"], metric) + rows)
    champion = evaluation.get("champion") or {}
    if champion.get("holdout_metrics"):
        line("champion", f"v{champion.get('version')}: {_metrics(champion['holdout_metrics'], metric)}")
    elif champion.get("reason"):
        line("champion", f"v{champion.get('version')}: not compared ({champion['reason']})")
    if state == "SUCCEEDED" and run.get("registered_version") is not None:
        alias = f" (alias {request['promote_to']})" if request.get("promote_to") else ""
        line("registered", f"{run.get('model_name')} v{run['registered_version']}{alias}")
    elif state == "REJECTED":
        line("rejected", str(evaluation.get("reason") or execution.get("error") or "by the gate"))
    elif state == "FAILED":
        failure = run.get("failure") or {}
        reason = ": ".join(str(p) for p in (failure.get("error"), failure.get("cause")) if p)
        line("failed", reason or str(execution.get("error") or "the execution failed"))
    return lines


def _value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def search_lines(search: dict[str, Any]) -> list[str]:
    """An Optuna search's study: its budget's outcome, then one line per trial (best marked)."""
    if not search:
        return []
    trials = search.get("trials") or []
    best = (search.get("best") or {}).get("candidate_id")
    rounds = search.get("rounds", 0)
    stopped = f", {search['stopped']}" if search.get("stopped") else ""
    pruner = search.get("pruner") or {}
    pruned = f", {search.get('pruned', 0)} pruned ({pruner.get('type')})" if pruner else ""
    lines = [
        f"  {'search':<11} {len(trials)} trials in {rounds} round(s) of {search.get('family')}, "
        f"{search.get('direction')} {search.get('metric')}{stopped}{pruned}"
    ]
    if search.get("pruner_note"):
        lines.append(f"  {'':<11} {search['pruner_note']}")
    for trial in trials:
        value = trial.get("value")
        scored = f"{value:.4f}" if isinstance(value, int | float) else "-"
        params = ", ".join(f"{k}={_value(v)}" for k, v in sorted((trial.get("params") or {}).items()))
        mark = "*" if trial.get("candidate_id") == best else " "
        why = f"  ({trial['error'][:80]})" if trial.get("error") else ""
        if trial.get("state") == "PRUNED":
            why = f"  (pruned at step {trial.get('pruned_at_step')})"
        lines.append(
            f"  {mark}{trial.get('candidate_id')} r{trial.get('round')} {trial.get('state'):<8} "
            f"{scored:<8} {params}{why}"
        )
    return lines
