"""`mlops`: run the embedded local stack and drive a stack, local or deployed.

    mlops up [--demo]                  start the local stack (Ctrl-C stops it)
    mlops train --model M --dataset K  start a training run (--wait follows it)
    mlops runs show RUN | list MODEL   training runs
    mlops models list | show M | promote M V
    mlops predict M --instances JSON   a prediction call
    mlops invoke FUNCTION EVENT_FILE   run one function on a sample event (local stack)

Commands talk to the local stack unless ``--stack NAME`` names a deployed one. ``--json``
prints machine-readable output.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from infra.cli.client import ApiClient, ApiError, StackNotFound, Target

app = typer.Typer(
    help="Run the embedded local stack, and drive a stack (local by default, or --stack NAME).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Training runs.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")

console = Console(file=sys.stderr, soft_wrap=True)
# Bound to the real stdout now: `mlops up` later points sys.stdout at the functions' log.
out = Console(file=sys.stdout)


class State:
    stack: str | None = None
    json: bool = False


state = State()


@app.callback()
def main(
    stack: Annotated[
        str | None, typer.Option(help="A deployed stack's name (default: the local stack)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
) -> None:
    state.stack = stack
    state.json = json_output


def _client() -> ApiClient:
    try:
        target = Target.deployed(state.stack) if state.stack else Target.local_stack()
    except StackNotFound as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    return ApiClient(target)


def _emit(payload: Any, table: Table | None = None) -> None:
    if state.json or table is None:
        out.print_json(json.dumps(payload, default=str))
    else:
        out.print(table)


def _fail(error: ApiError) -> typer.Exit:
    console.print(f"[red]{error}[/red]")
    if isinstance(error.body, dict) and error.body.get("detail"):
        for item in error.body["detail"][:20]:
            console.print(f"  {'.'.join(map(str, item.get('loc', [])))}: {item.get('msg')}")
    return typer.Exit(1)


# ---- the local stack ------------------------------------------------------------------------
@app.command()
def up(
    demo: Annotated[
        bool, typer.Option(help="Train the sample model, promote it, print curl commands")
    ] = False,
    api_port: Annotated[int, typer.Option(help="Port of the local API")] = 3000,
    moto_port: Annotated[int, typer.Option(help="Port of the embedded moto server")] = 5055,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    exit_after_demo: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Start the embedded stack: moto on localhost, the stack's template, its routes."""
    from infra.local.stack import STATE_DIR, EmbeddedStack, PortInUse

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[_RichLog()])
    for noisy in ("werkzeug", "botocore", "moto", "aws_lambda_powertools", "infra.cdk.bundling"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="moto")
    warnings.filterwarnings("ignore", module="aws_lambda_powertools")
    # The functions log JSON lines (and EMF metrics) to stdout, as on Lambda; here they go
    # to a file, so that the terminal shows the stack's progress and the curl commands.
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    function_log = STATE_DIR / "functions.log"
    sys.stdout = function_log.open("a", buffering=1)
    stack = EmbeddedStack(host=host, api_port=api_port, moto_port=moto_port)
    started = time.monotonic()
    try:
        with console.status("starting the local stack (synthesizing the CDK app if it changed)"):
            description = stack.start()
    except PortInUse as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(3) from None
    console.log(f"local stack up in {time.monotonic() - started:.1f} s: API {description.api_url}")
    console.log(f"function logs and metrics: {function_log}")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        if demo:
            _demo(description)
        if exit_after_demo:
            return
        console.log("serving; Ctrl-C stops the stack")
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        console.log("local stack stopped")


def _demo(description: Any) -> None:
    from infra.local.demo import DemoFailed, curl_examples, run_demo

    client = ApiClient(
        Target(api_url=description.api_url, api_key=description.api_key, region=description.region)
    )
    try:
        result = run_demo(description, client, console)
    except (DemoFailed, ApiError) as error:
        console.print(f"[red]demo failed: {error}[/red]")
        raise typer.Exit(1) from None
    prediction = result.prediction
    console.log(
        f"demo ready in {result.seconds:.1f} s: v{result.version} predicts {prediction['predictions'][0]} "
        f"(p={max(prediction['probabilities'][0]):.3f}) for the example row"
    )
    out.print("\nTry it:\n")
    for line in curl_examples(description):
        out.print(line, soft_wrap=True)
    out.print()


class _RichLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        console.log(self.format(record))


# ---- training --------------------------------------------------------------------------------
@app.command()
def train(
    model: Annotated[str, typer.Option(help="Model name to register under")],
    dataset: Annotated[str, typer.Option(help="S3 key of the CSV in the artifacts bucket")],
    candidates: Annotated[str, typer.Option(help="JSON list of {family, params}, or @file.json")] = (
        '[{"family": "logistic_regression"}]'
    ),
    metric: Annotated[str | None, typer.Option(help="Target metric (roc_auc, accuracy, rmse, ...)")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="The gate: minimum (or maximum) target metric")
    ] = None,
    expectations: Annotated[str | None, typer.Option(help="S3 key of an expectations suite")] = None,
    promote_to: Annotated[str | None, typer.Option(help="Alias to set on success (e.g. staging)")] = None,
    seed: int = 42,
    wait: Annotated[bool, typer.Option(help="Follow the run until it ends")] = False,
) -> None:
    """Start a training run (a Step Functions execution)."""
    raw = Path(candidates[1:]).read_text() if candidates.startswith("@") else candidates
    request: dict[str, Any] = {
        "model_name": model,
        "dataset_key": dataset,
        "candidates": json.loads(raw),
        "seed": seed,
    }
    for key, value in (
        ("target_metric", metric),
        ("threshold", threshold),
        ("expectations_key", expectations),
        ("promote_to", promote_to),
    ):
        if value is not None:
            request[key] = value
    client = _client()
    try:
        started = client.start_training(request)
        if not wait:
            _emit(started)
            return
        from infra.local.demo import wait_for_run

        _emit(wait_for_run(client, started["run_id"], console))
    except ApiError as error:
        raise _fail(error) from None


@runs_app.command("show")
def runs_show(run_id: str) -> None:
    """One run: status, dataset, candidates, evaluation, registered version."""
    try:
        _emit(_client().run(run_id))
    except ApiError as error:
        raise _fail(error) from None


@runs_app.command("list")
def runs_list(model: str) -> None:
    """A model's runs, newest first."""
    try:
        runs = _client().runs(model)
    except ApiError as error:
        raise _fail(error) from None
    table = Table("run", "status", "started", "best", "registered", "reason")
    for run in runs:
        table.add_row(
            run["run_id"],
            run["status"],
            run["started_at"],
            run.get("best_candidate", ""),
            str(run.get("registered_version", "")),
            (run.get("evaluation") or {}).get("reason", "")[:60],
        )
    _emit(runs, table)


# ---- registry --------------------------------------------------------------------------------
@models_app.command("list")
def models_list() -> None:
    """Registered models."""
    try:
        models = _client().models()
    except ApiError as error:
        raise _fail(error) from None
    table = Table("model", "latest version", "owner", "description")
    for model in models:
        table.add_row(
            model["name"], str(model["latest_version"]), model.get("owner") or "", model["description"]
        )
    _emit(models, table)


@models_app.command("show")
def models_show(name: str) -> None:
    """A model's aliases and versions."""
    client = _client()
    try:
        detail = client.model(name)
        versions = client.versions(name)
    except ApiError as error:
        raise _fail(error) from None
    table = Table("version", "aliases", "stage", "run", "metrics", "created")
    for version in versions:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(version["metrics"].items()))
        table.add_row(
            str(version["version"]),
            ", ".join(a["alias"] for a in detail["aliases"] if a["version"] == version["version"]),
            version["stage"],
            version.get("run_id") or "",
            metrics,
            version["created_at"],
        )
    _emit({**detail, "versions": versions}, table)


@models_app.command("promote")
def models_promote(
    name: str,
    version: int,
    alias: Annotated[str, typer.Option(help="Alias to move")] = "production",
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")] = "",
    expected_revision: Annotated[
        int | None, typer.Option(help="Move only if the alias is at this revision")
    ] = None,
) -> None:
    """Point an alias (production by default) at a version, under the model's policy."""
    try:
        _emit(_client().promote(name, version, alias, expected_revision=expected_revision, reason=reason))
    except ApiError as error:
        raise _fail(error) from None


@models_app.command("rollback")
def models_rollback(
    name: str,
    alias: Annotated[str, typer.Option(help="Alias to move back")] = "production",
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")] = "",
) -> None:
    """Move an alias back to the version it named before."""
    try:
        _emit(_client().rollback(name, alias, reason=reason))
    except ApiError as error:
        raise _fail(error) from None


@models_app.command("audit")
def models_audit(name: str, limit: int = 50) -> None:
    """Who registered, promoted and rolled back what, when and why."""
    try:
        trail = _client().audit(name, limit)
    except ApiError as error:
        raise _fail(error) from None
    table = Table("at", "action", "alias", "from", "to", "actor", "reason")
    for record in trail:
        table.add_row(
            record["at"],
            record["action"],
            record.get("alias") or "",
            str(record.get("from_version") or ""),
            str(record["to_version"]),
            record.get("actor") or "",
            record.get("reason") or "",
        )
    _emit(trail, table)


@models_app.command("card")
def models_card(
    name: str,
    version: int,
    json_card: Annotated[bool, typer.Option("--as-json", help="The card as JSON")] = False,
) -> None:
    """The version's model card (Markdown, or JSON with --as-json)."""
    try:
        card = _client().model_card(name, version, "json" if json_card else "markdown")
    except ApiError as error:
        raise _fail(error) from None
    if isinstance(card, str):
        out.print(card, markup=False, highlight=False)
    else:
        _emit(card)


# ---- serving ---------------------------------------------------------------------------------
@app.command()
def predict(
    model: str,
    instances: Annotated[
        str, typer.Option(help="JSON list of rows (lists or feature objects), or @file.json")
    ],
) -> None:
    """Call POST /models/{model}/predict."""
    raw = Path(instances[1:]).read_text() if instances.startswith("@") else instances
    try:
        _emit(_client().predict(model, json.loads(raw)))
    except ApiError as error:
        raise _fail(error) from None


@app.command()
def invoke(
    function: Annotated[
        str, typer.Argument(help="Function: inference, registry, training-api, training-validate-data, ...")
    ],
    event_file: Annotated[Path, typer.Argument(help="An event from events/", exists=True, dir_okay=False)],
) -> None:
    """Invoke one function of the local stack with an event file (like `sam local invoke`)."""
    import boto3

    client = _client()
    if client.target.local is None:
        console.print("[red]invoke runs functions of the local stack; drop --stack[/red]")
        raise typer.Exit(2)
    lambda_client = boto3.client("lambda")
    names = {
        cfg["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME"): cfg["FunctionName"]
        for cfg in lambda_client.list_functions()["Functions"]
        if cfg.get("Environment")
    }
    if function not in names:
        console.print(
            f"[red]unknown function {function!r}; one of: {', '.join(sorted(n for n in names if n))}[/red]"
        )
        raise typer.Exit(2)
    response = lambda_client.invoke(FunctionName=names[function], Payload=event_file.read_bytes())
    payload = json.loads(response["Payload"].read() or b"null")
    _emit(payload)
    if response.get("FunctionError"):
        raise typer.Exit(1)


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()
