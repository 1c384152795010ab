"""`mlops drift`: configure a model's drift monitoring, run it now, show runs, download reports.

    mlops drift configure M [--every 1h] [--window 24h] [--alpha A] [--numeric-threshold T] ...
    mlops drift run M [--wait]            exit 0 no drift, 3 drift found, 4 failed, 5 still running
    mlops drift show M [RUN_ID]           the latest run and the history; or one run, per feature
    mlops drift report M RUN_ID --html F  the run's self-contained HTML report

RUN_ID may be ``latest`` (the newest run that finished).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from infra.cli.drift_views import (
    BadDuration,
    describe_config,
    describe_run,
    features_table,
    history_table,
    merged_config,
    minutes,
    resolve_run_id,
    wait_for_run,
)

drift_app = typer.Typer(help="Drift monitoring: configuration, runs and reports.", no_args_is_help=True)

#: `mlops drift run --wait` exits with these (documented in its help and the README).
EXIT_NO_DRIFT, EXIT_DRIFT, EXIT_FAILED, EXIT_STILL_RUNNING = 0, 3, 4, 5
EXIT_CODES = {
    "no_drift": EXIT_NO_DRIFT,
    "insufficient_data": EXIT_NO_DRIFT,
    "no_reference": EXIT_NO_DRIFT,
    "drift": EXIT_DRIFT,
    "failed": EXIT_FAILED,
}
EXIT_CODES_HELP = (
    "Exit codes with --wait: 0 no drift found (also when the window had too few rows, "
    "insufficient_data, or there is no reference profile, no_reference: the status line says "
    "which), 3 drift found, 4 the run failed, 5 still running when --timeout passed; 1 an API "
    "error, 2 a usage error."
)


# ---- the commands (helpers of infra.cli.main: output, errors, the target) ------------------------
_host: list[Any] = []


def bind(cli_module: ModuleType) -> None:
    """The `mlops` module whose helpers and state the commands use (``python -m
    infra.cli.main`` runs it as ``__main__``, a module apart from ``infra.cli.main``)."""
    _host[:] = [cli_module]


def _cli() -> Any:
    return _host[0] if _host else importlib.import_module("infra.cli.main")


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts), as `mlops --json ...`")]


@drift_app.command("configure")
def configure(  # noqa: PLR0917 (typer takes each option as a parameter)
    name: str,
    every: Annotated[str | None, typer.Option(help="Scheduled runs this often: 1h, 30m, 1d (>= 5m)")] = None,
    window: Annotated[
        str | None, typer.Option(help="Compare the captured predictions of the last: 24h, 7d")
    ] = None,
    max_rows: Annotated[
        int | None, typer.Option(help="At most this many (the newest) rows of the window")
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="Significance level after correction")] = None,
    numeric_threshold: Annotated[
        float | None, typer.Option(help="Effect threshold: normalized Wasserstein (reference sd)")
    ] = None,
    categorical_threshold: Annotated[
        float | None, typer.Option(help="Effect threshold: Jensen-Shannon distance")
    ] = None,
    min_rows: Annotated[int | None, typer.Option(help="Fewer rows with a value: insufficient data")] = None,
    disable: Annotated[
        bool, typer.Option("--disable", help="Turn scheduled runs off (on-demand runs still work)")
    ] = False,
    enable: Annotated[bool, typer.Option("--enable", help="Turn scheduled runs on again")] = False,
    file: Annotated[
        Path | None,
        typer.Option(help="The whole configuration as JSON (instead of the options)", dir_okay=False),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Set a model's drift monitoring: the options change the configuration in force (the
    defaults, if none was set); --file replaces it. Scheduled runs start once it is set."""
    cli = _cli()

    if disable and enable:
        raise cli._usage("pass one of them", "--disable", "--enable")
    options = {
        "every_minutes": every,
        "window_hours": window,
        "max_rows": max_rows,
        "drift.alpha": alpha,
        "drift.numeric_threshold": numeric_threshold,
        "drift.categorical_threshold": categorical_threshold,
        "drift.min_rows": min_rows,
        "enabled": False if disable else True if enable else None,
    }
    for option, text, key, scale in (
        ("--every", every, "every_minutes", 1),
        ("--window", window, "window_hours", 60),
    ):
        if text is not None:
            try:
                value = minutes(text) / scale
            except BadDuration as error:
                raise cli._usage(str(error), option) from None
            options[key] = round(value) if key == "every_minutes" else value
    if file is not None and any(v is not None for v in options.values()):
        raise cli._usage("--file takes the whole configuration; drop the other options", "--file")
    with cli._calls():
        client = cli._client()
        if file is not None:
            view = client.configure_monitoring(name, cli._json_option(f"@{file}", "--file"))
        else:
            current = client.monitoring(name)
            config = merged_config(current["config"], options)
            view = client.configure_monitoring(name, config, expected_revision=current["revision"])
    if cli._as_json(json_output):
        cli._print_json(view)
    else:
        cli._say(describe_config(view))


@drift_app.command("run", epilog=EXIT_CODES_HELP)
def run(
    name: str,
    wait: Annotated[bool, typer.Option(help="Follow the run to its end, then exit with its outcome")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait before giving up (exit 5)", min=1)] = 600,
    json_output: JsonFlag = False,
) -> None:
    """Run drift detection on the model now (POST /models/{name}/drift-runs)."""
    cli = _cli()

    with cli._calls():
        client = cli._client()
        started = client.start_drift_run(name)
        if not wait:
            if cli._as_json(json_output):
                cli._print_json(started)
            else:
                cli._say(
                    f"started drift run {started['run_id']}: `mlops drift show {name} {started['run_id']}`"
                )
            return
        detail = wait_for_run(client, name, started["run_id"], timeout=timeout)
    if detail is None:
        cli._error(f"drift run {started['run_id']} still running after {timeout:.0f} s")
        raise typer.Exit(EXIT_STILL_RUNNING)
    if cli._as_json(json_output):
        cli._print_json(detail)
    else:
        for line in describe_run(detail["run"]):
            cli._say(line)
    code = EXIT_CODES.get(detail["run"]["status"], EXIT_FAILED)
    if code:
        raise typer.Exit(code)


@drift_app.command("show")
def show(
    name: str,
    run_id: Annotated[
        str | None, typer.Argument(help="One run (default: the latest and the history)")
    ] = None,
    limit: Annotated[int, typer.Option(help="Runs in the history", min=1, max=200)] = 20,
    json_output: JsonFlag = False,
) -> None:
    """The latest drift run and the history; or one run with its per-feature numbers."""
    cli = _cli()

    with cli._calls():
        client = cli._client()
        payload = (
            client.drift_run(name, resolve_run_id(client, name, run_id))
            if run_id
            else client.drift(name, limit)
        )
    if cli._as_json(json_output):
        cli._print_json(payload)
        return
    if run_id:
        for line in describe_run(payload["run"]):
            cli._say(line)
        if payload.get("result"):
            features_table(payload["result"]).print(cli.out)
        return
    cli._say(describe_config(payload["monitoring"]))
    latest = payload["latest"]
    if latest is None:
        cli._say(f"no drift run has finished yet: `mlops drift run {name} --wait`")
    else:
        for line in describe_run(latest):
            cli._say(line)
    if payload["history"]:
        cli._say("history:")
        history_table(payload["history"]).print(cli.out)


@drift_app.command("report")
def report(
    name: str,
    run_id: Annotated[str, typer.Argument(help="A run id, or `latest` (the newest finished run)")],
    html: Annotated[Path, typer.Option(help="Write the HTML report here", dir_okay=False)],
) -> None:
    """Download a run's self-contained HTML report (open it in any browser, offline)."""
    cli = _cli()

    with cli._calls():
        client = cli._client()
        page = client.drift_report(name, resolve_run_id(client, name, run_id))
    try:
        html.write_text(page, encoding="utf-8")
    except OSError as error:
        raise cli._usage(f"cannot write {str(html)!r}: {error}", "--html") from None
    cli._say(f"wrote {html} ({len(page.encode()):,} bytes)")
