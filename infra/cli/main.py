"""`mlops`: run the embedded local stack and drive a stack, local or deployed.

    mlops up [--demo]                    start the local stack (Ctrl-C stops it)
    mlops datasets upload FILE.csv ...   a CSV and its inferred schema, where training reads them
    mlops train --model M --dataset K    start a training run (--wait follows it)
    mlops runs show RUN | list MODEL | wait RUN
    mlops models list | show M | promote M V | rollback M | audit M | card M V
    mlops routing show M | set M ...     a model's routing policy and what each variant served
    mlops routing history M              traffic share and posterior per variant over time
    mlops rollout start M --candidate V  a guarded rollout (--wait follows it) | show M [ID] | abort M ID
    mlops predict M --instances JSON     a prediction call (production, --alias or --version)
    mlops predict M --entity VIEW=ID     ... by entity id (features from the online store)
    mlops models register M --feature-view V | feature-policy show M | set M
    mlops feedback send --prediction-id ID (--reward 0|1 | --label L) | --file F.jsonl
    mlops drift configure M | run M [--wait] | show M [RUN] | report M RUN --html F
    mlops retrain list M | show M DECISION   what the retraining loop decided on drift findings
    mlops features apply [features/] | list | show V | materialize V | freshness | get V ID
    mlops invoke FUNCTION EVENT_FILE     run one function on a sample event (local stack)
    mlops stream put M --file F.jsonl | read [--expect N] | failed   streaming inference (Kinesis)
    mlops console [PAGE] --model M       the model console: a page's address (--out F saves it)
    mlops batch upload F --prefix P | start M --input s3://B/batch-input/P/ | show ID | list

Commands talk to the local stack unless ``--stack NAME`` names a deployed one. ``--json``
(before or after the command) prints machine-readable output on stdout. A user's mistake
is one line on stderr and exit code 2; an API error prints its message and every item of
its ``detail`` and exits 1.
"""

from __future__ import annotations

import html
import json
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import requests
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from infra.cli import batch, drift, stream
from infra.cli import entity as entity_cli
from infra.cli import rollout as rollouts
from infra.cli.client import ApiClient, ApiError, StackNotFound, Target
from infra.cli.features import features_app
from infra.cli.retrain import retrain_app
from infra.cli.routing import (
    PolicyOptionError,
    describe_policy,
    history_table,
    policy_from_options,
    summary_table,
)
from infra.cli.routing_history import timeline_table
from infra.cli.runs import EXIT_CODES, EXIT_CODES_HELP, EXIT_STILL_RUNNING, RunStillRunning, outcome, summary
from infra.cli.tables import Rows

PACKAGE = "serverless-mlops"
MAX_SHOWN_DETAILS = 50


class _Cli(TyperGroup):
    """Usage errors as one line on stderr (exit 2), rather than a usage block in a box."""

    def main(  # type: ignore[override]  # typer's own keyword arguments pass through **extra
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as error:  # typer's click exceptions (UsageError: exit 2)
            exit_code = getattr(error, "exit_code", 1)
            if type(error).__name__ == "NoArgsIsHelpError":  # the help has been printed
                sys.exit(exit_code)
            context = getattr(error, "ctx", None)
            see = f" (see '{context.command_path} --help')" if context is not None and exit_code == 2 else ""
            _error(f"{error.format_message()}{see}")
            sys.exit(exit_code)
        except typer.Abort:
            _error("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Cli,
    help="Run the embedded local stack, and drive a stack (local by default, or --stack NAME).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
runs_app = typer.Typer(help="Training runs.", no_args_is_help=True)
models_app = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)
datasets_app = typer.Typer(help="Training datasets in the stack's bucket.", no_args_is_help=True)
feedback_app = typer.Typer(help="Feedback on predictions (rewards and labels).", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(feedback_app, name="feedback")
app.add_typer(features_app, name="features")
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
feature_policy_app = typer.Typer(
    help="What predictions by entity id do with missing or stale features.", no_args_is_help=True
)
models_app.add_typer(feature_policy_app, name="feature-policy")
routing_app = typer.Typer(help="Traffic routing between a model's versions.", no_args_is_help=True)
app.add_typer(routing_app, name="routing")
rollout_app = typer.Typer(
    help="Guarded rollouts: traffic to a candidate in steps, then promoted or rolled back.",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")
app.add_typer(drift.drift_app, name="drift")
app.add_typer(retrain_app, name="retrain")
app.add_typer(stream.stream_app, name="stream")
app.add_typer(batch.batch_app, name="batch")

# Both follow sys.stdout / sys.stderr as they are when they print (`mlops up` points
# sys.stdout at the functions' log; tests capture both).
console = Console(stderr=True, soft_wrap=True)
out = Console()

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts), as `mlops --json ...`")]


class State:
    stack: str | None = None
    json: bool = False


state = State()


def _print_version(value: bool) -> None:
    if value:
        _say(f"mlops {metadata.version(PACKAGE)}")
        raise typer.Exit()


@app.callback()
def main(
    stack: Annotated[
        str | None, typer.Option(help="A deployed stack's name (default: the local stack)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts)")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit"),
    ] = False,
) -> None:
    state.stack = stack
    state.json = json_output


# ---- output and errors ---------------------------------------------------------------------
def _say(text: str) -> None:
    """A line of output, as it is: no markup, no highlighting, never wrapped by rich."""
    out.print(text, markup=False, highlight=False, soft_wrap=True)


def _error(message: str) -> None:
    console.print(Text(f"Error: {' '.join(message.split())}", style="red"))


def _usage(message: str, *options: str) -> typer.BadParameter:
    """A user's mistake (exit 2) with the options (or argument) it is about."""
    return typer.BadParameter(message, param_hint=list(options))


@contextmanager
def _calls() -> Iterator[None]:
    """The API's and AWS's errors as readable lines on stderr: exit 1 (2 when no stack is found)."""
    try:
        yield
    except ApiError as error:
        _error(str(error))
        details = error.details
        for line in details[:MAX_SHOWN_DETAILS]:
            console.print(Text(f"  - {line}", style="red"))
        if len(details) > MAX_SHOWN_DETAILS:
            console.print(Text(f"  (+{len(details) - MAX_SHOWN_DETAILS} more)", style="red"))
        raise typer.Exit(1) from None
    except StackNotFound as error:
        _error(str(error))
        raise typer.Exit(2) from None
    except requests.RequestException as error:
        _error(f"cannot reach the API: {error}")
        raise typer.Exit(1) from None
    except (BotoCoreError, ClientError) as error:
        _error(f"AWS: {error}")
        raise typer.Exit(1) from None


def _target() -> Target:
    return Target.deployed(state.stack) if state.stack else Target.local_stack()


def _client() -> ApiClient:
    return ApiClient(_target())


def _as_json(flag: bool) -> bool:
    return state.json or flag


def _print_json(payload: Any) -> None:
    out.print_json(json.dumps(payload, default=str))


def _emit(payload: Any, table: Rows | None, json_flag: bool) -> None:
    if table is None or _as_json(json_flag):
        _print_json(payload)
    else:
        table.print(out)


def _when(timestamp: str | None) -> str:
    """An ISO timestamp for a table: UTC to the second, with a space where it may wrap."""
    try:
        moment = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return timestamp or ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _json_option(value: str, option: str) -> Any:
    """A JSON option's value, inline or ``@file.json``."""
    where = ""
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            value = path.read_text()
        except FileNotFoundError:
            raise _usage(f"file {str(path)!r} not found", option) from None
        except (OSError, UnicodeDecodeError) as error:
            raise _usage(f"cannot read {str(path)!r}: {error}", option) from None
        where = f" in {path}"
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise _usage(
            f"not valid JSON{where}: {error.msg} at line {error.lineno}, column {error.colno}", option
        ) from None


# ---- the local stack ------------------------------------------------------------------------
@app.command()
def up(
    demo: Annotated[
        bool, typer.Option(help="Train the sample model, promote it, print curl commands")
    ] = False,
    api_port: Annotated[int, typer.Option(help="Port of the local API")] = 3000,
    moto_port: Annotated[int, typer.Option(help="Port of the embedded moto server")] = 5055,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    state: Annotated[
        Path | None,
        typer.Option(
            file_okay=False,
            help="Keep the registry, runs, artifacts and API key in this directory across restarts",
        ),
    ] = None,
    schedule_speedup: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="Fire the template's EventBridge schedules this many times faster (60: an hourly "
            "schedule every minute)",
        ),
    ] = 1.0,
    exit_after_demo: Annotated[bool, typer.Option(hidden=True)] = False,
) -> None:
    """Start the embedded stack: moto on localhost, the stack's template, its routes."""
    from infra.local import logs
    from infra.local.persistence import StateDoesNotFit
    from infra.local.stack import STATE_DIR, EmbeddedStack, PortInUse

    warnings.filterwarnings("ignore", module="moto")
    warnings.filterwarnings("ignore", module="aws_lambda_powertools")
    # The functions log JSON lines (and EMF metrics) to stdout, as on Lambda; here they go
    # to a file, with moto's and the libraries' warnings, so that the terminal shows the
    # stack's progress and the curl commands.
    terminal = Console(file=sys.stdout)
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    function_log = STATE_DIR / "functions.log"
    sys.stdout = function_log.open("a", buffering=1)
    logs.configure(console, sys.stdout)
    started = time.monotonic()
    try:
        stack = EmbeddedStack(
            host=host,
            api_port=api_port,
            moto_port=moto_port,
            state_dir=state,
            schedule_speedup=schedule_speedup,
        )
        with console.status("starting the local stack (synthesizing the CDK app if it changed)"):
            description = stack.start()
    except PortInUse as error:
        _error(str(error))
        raise typer.Exit(3) from None
    except StateDoesNotFit as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(2) from None
    console.log(f"local stack up in {time.monotonic() - started:.1f} s: API {description.api_url}")
    api = description.api_url
    console.log(f"Swagger UI: {api}/_local/docs/ · model console: {api}/_local/console/")
    console.log(f"function logs and metrics: {function_log}")
    if stack.state is not None:
        console.log(f"state kept in {state} (saved every {stack.state.interval:.0f} s and on Ctrl-C)")
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        if demo:
            _demo(description, terminal)
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


def _demo(description: Any, terminal: Console) -> None:
    from infra.local.demo import DemoFailed, curl_examples, run_demo

    client = ApiClient(
        Target(api_url=description.api_url, api_key=description.api_key, region=description.region)
    )
    try:
        result = run_demo(description, client, console)
    except (DemoFailed, RunStillRunning, ApiError) as error:
        _error(f"demo failed: {error}")
        raise typer.Exit(1) from None
    prediction = result.prediction
    console.log(
        f"demo ready in {result.seconds:.1f} s: v{result.version} predicts {prediction['predictions'][0]} "
        f"(p={max(prediction['probabilities'][0]):.3f}) for the example row"
    )
    terminal.print("\nTry it:\n")
    for line in curl_examples(description):
        terminal.print(line, soft_wrap=True)
    terminal.print()


# ---- datasets --------------------------------------------------------------------------------
class TaskChoice(StrEnum):
    classification = "classification"
    regression = "regression"


def _bucket(target: Target) -> str:
    if not target.artifacts_bucket:
        raise StackNotFound("the stack has no ArtifactsBucketName output: is it this project's stack?")
    return target.artifacts_bucket


@datasets_app.command("upload")
def datasets_upload(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header row", dir_okay=False)],
    name: Annotated[str, typer.Option(help="Dataset name: the S3 prefix datasets/NAME/")],
    target: Annotated[str, typer.Option(help="The column to predict")],
    task: Annotated[
        TaskChoice | None,
        typer.Option(
            help="Default: classification for a target of at most 20 distinct integer or boolean values"
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="vN (default: the next unused version; versions are never overwritten)")
    ] = None,
    drop: Annotated[
        list[str] | None,
        typer.Option("--drop", help="Leave this column out (an identifier, free text); repeatable"),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Upload a CSV and the schema inferred from it as datasets/NAME/vN/data.csv + schema.json.

    Prints the dataset_key to pass to `mlops train --dataset`. The file is checked as the
    training workflow will check it (types, nulls, the target's classes) before anything is
    written. Columns are numbers, booleans (true/false) or text categories (at most 1,000
    distinct values); a text target is a classification target whose classes are its values.
    """
    import boto3

    from infra.cli.datasets import (
        BadDataset,
        VersionTaken,
        check_name,
        check_version,
        prepare,
        upload_dataset,
        versions,
    )

    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise _usage(f"file {str(file)!r} not found", "FILE") from None
    except OSError as error:
        raise _usage(f"cannot read {str(file)!r}: {error}", "FILE") from None
    try:
        check_name(name)
        chosen = check_version(version) if version is not None else None
        # Checked before any call: a file that cannot be a dataset needs no stack to say so.
        dataset = prepare(
            data, name=name, version=chosen or "v1", target=target, task=task and task.value, drop=drop
        )
    except BadDataset as error:
        raise _usage(str(error), str(file)) from None
    with _calls():
        bucket = _bucket(_target())
        s3 = boto3.client("s3")
        existing = versions(s3, bucket, name)
        if chosen is None:
            dataset = replace(dataset, version=f"v{max(existing, default=0) + 1}")
        try:
            dataset = upload_dataset(s3, bucket, dataset, pinned=chosen is not None)
        except VersionTaken as error:
            raise _usage(
                f"{error}; omit --version to upload v{max([*versions(s3, bucket, name), 0]) + 1}", "--version"
            ) from None
    result = {
        "dataset_key": dataset.dataset_key,
        "schema_key": dataset.schema_key,
        "rows": dataset.rows,
        "task": dataset.schema.task,
        "target": dataset.schema.target,
        "features": [c.name for c in dataset.schema.features],
        "schema": dataset.schema.model_dump(mode="json", exclude_none=True),
    }
    if _as_json(json_output):
        _print_json(result)
        return
    _say(
        f"uploaded {dataset.rows} rows: {dataset.schema.task} of {target!r} on "
        f"{len(dataset.schema.features)} features"
    )
    _say(f"dataset_key: {dataset.dataset_key}")
    _say(f"train with:  mlops train --model MODEL --dataset {dataset.dataset_key}")


@datasets_app.command("list")
def datasets_list(json_output: JsonFlag = False) -> None:
    """Datasets under datasets/ in the stack's bucket."""
    import boto3

    from infra.cli.datasets import list_datasets

    with _calls():
        bucket = _bucket(_target())  # first: the local stack's target points boto3 at moto
        found = list_datasets(boto3.client("s3"), bucket)
    table = Rows("dataset_key", "bytes", "uploaded", "schema", ids=("dataset_key",))
    for item in found:
        table.add_row(
            item["dataset_key"],
            str(item["bytes"]),
            _when(item["uploaded_at"]),
            "yes" if item["schema"] else "no",
        )
    _emit(found, table, json_output)


# ---- training --------------------------------------------------------------------------------
def _candidates(raw: str) -> list[Any]:
    candidates = _json_option(raw, "--candidates")
    if (
        not isinstance(candidates, list)
        or not candidates
        or not all(isinstance(c, dict) and "family" in c for c in candidates)
    ):
        raise _usage(
            'expected a non-empty JSON list of {"family": ..., "params": {...}} objects', "--candidates"
        )
    return candidates


def _search(raw: str) -> dict[str, Any]:
    search = _json_option(raw, "--search")
    if not isinstance(search, dict) or "family" not in search or "space" not in search:
        raise _usage('expected a JSON object {"family": ..., "space": {...}, "n_trials": ...}', "--search")
    return search


class PrunerChoice(StrEnum):
    median = "median"
    successive_halving = "successive_halving"
    hyperband = "hyperband"
    none = "none"


def _with_pruner(search: dict[str, Any] | None, pruner: PrunerChoice) -> dict[str, Any]:
    """``--pruner``: the search with Optuna's pruner of that type (the API checks the rest)."""
    if search is None:
        raise _usage("--pruner goes with --search", "--pruner")
    declared = search.get("pruner")
    if isinstance(declared, dict) and declared.get("type") not in (None, pruner.value):
        raise _usage(f"--pruner {pruner.value} but the search declares {declared.get('type')}", "--pruner")
    return search | {"pruner": (declared if isinstance(declared, dict) else {}) | {"type": pruner.value}}


def _follow(client: ApiClient, run_id: str, timeout: float, json_flag: bool) -> None:
    """Wait for the run, print its summary (or JSON), exit with the run's outcome."""
    from infra.cli.runs import wait_for_run

    try:
        run = wait_for_run(client, run_id, console, timeout=timeout)
    except RunStillRunning as error:
        _error(f"{error}; follow it again with `mlops runs wait {run_id}`")
        raise typer.Exit(EXIT_STILL_RUNNING) from None
    except KeyboardInterrupt:
        _error(f"stopped waiting; the run goes on: `mlops runs wait {run_id}`")
        raise typer.Exit(130) from None
    if _as_json(json_flag):
        _print_json(run)
    else:
        for line in summary(run):
            _say(line)
    code = EXIT_CODES[outcome(run)]
    if code:
        raise typer.Exit(code)


WaitTimeout = Annotated[float, typer.Option(help="Seconds to wait before giving up (exit 5)", min=1)]


def _feature_view_inputs(labels: str, features: str, options: dict[str, Any]) -> dict[str, Any]:
    """A training request's labels and feature views; a local labels file is uploaded first
    (content-addressed under datasets/labels/, so the same file is one object)."""
    from infra.cli.training_sets import BadTrainingSetInput, is_local, labels_upload_key, split_views

    try:
        views = split_views(features)
    except BadTrainingSetInput as error:
        raise _usage(str(error), "--features") from None
    key = labels
    if is_local(labels):
        import boto3

        from infra.cli.datasets import upload_files

        data = Path(labels).read_bytes()
        key = labels_upload_key(data)
        upload_files(boto3.client("s3"), _bucket(_target()), {key: data})
        console.print(f"uploaded {labels} to {key}", highlight=False, markup=False)
    return {"labels": key, "feature_views": views, "training_set": options}


def _training_request(
    model: str,
    seed: int,
    *,
    dataset: str | None,
    labels: str | None,
    candidates: str | None,
    search: str | None,
) -> dict[str, Any]:
    """The request's data and what it trains: a dataset or labels; candidates or a search."""
    if (dataset is None) == (labels is None):
        raise _usage("give --dataset, or --labels with --features", "--dataset", "--labels")
    request: dict[str, Any] = {"model_name": model, "seed": seed}
    if dataset is not None:
        request["dataset_key"] = dataset
    if search is not None:
        if candidates is not None:
            raise _usage("give --candidates or --search, not both", "--search")
        request["search"] = _search(search)
    elif candidates is not None:
        request["candidates"] = _candidates(candidates)
    return request


@app.command(epilog=EXIT_CODES_HELP)
def train(
    model: Annotated[str, typer.Option(help="Model name to register under")],
    dataset: Annotated[
        str | None,
        typer.Option(help="S3 key of the CSV in the artifacts bucket (as `mlops datasets upload` prints)"),
    ] = None,
    candidates: Annotated[
        str | None,
        typer.Option(
            help="JSON list of {family, params}, or @file.json [default: by the dataset's task: "
            "logistic_regression and hist_gradient_boosting, or ridge and hist_gradient_boosting_regressor]"
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            help="Optuna's search instead of candidates: a JSON object {family, space, n_trials | rounds | "
            "timeout_seconds, parallelism, ...}, or @space.json (docs/training.md)"
        ),
    ] = None,
    pruner: Annotated[
        PrunerChoice | None,
        typer.Option(
            help="With --search: Optuna's pruner for families that train in steps (boosting, forests), "
            "its defaults; the search's own 'pruner' object sets its options"
        ),
    ] = None,
    metric: Annotated[str | None, typer.Option(help="Target metric (roc_auc, accuracy, rmse, ...)")] = None,
    threshold: Annotated[
        float | None, typer.Option(help="The gate: minimum (or maximum) target metric")
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(help="How much worse than the production champion's target metric is accepted", min=0),
    ] = None,
    expectations: Annotated[str | None, typer.Option(help="S3 key of an expectations suite")] = None,
    promote_to: Annotated[str | None, typer.Option(help="Alias to set on success (e.g. staging)")] = None,
    seed: Annotated[int, typer.Option(help="Random seed (the same seed and data give the same model)")] = 42,
    compute: Annotated[
        str | None,
        typer.Option(
            help="lambda or sagemaker (a training job); unset: SageMaker above the deployment's "
            "dataset size threshold"
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option(help="Follow the run until it ends, then exit with its outcome")
    ] = False,
    timeout: WaitTimeout = 600,
    json_output: JsonFlag = False,
    labels: Annotated[
        str | None,
        typer.Option(
            help="Instead of --dataset: labels (entity id, event time, label) joined point-in-time with "
            "--features; a CSV file (uploaded) or an S3 key under datasets/",
            rich_help_panel="Training on feature views",
        ),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(help="Feature views, comma-separated", rich_help_panel="Training on feature views"),
    ] = None,
    label_column: Annotated[
        str, typer.Option(help="The labels' label column", rich_help_panel="Training on feature views")
    ] = "label",
    timestamp_column: Annotated[
        str, typer.Option(help="The labels' time column", rich_help_panel="Training on feature views")
    ] = "event_timestamp",
    entity_column: Annotated[
        str | None,
        typer.Option(
            help="The labels' entity column (default: the first view's entity)",
            rich_help_panel="Training on feature views",
        ),
    ] = None,
    task: Annotated[
        TaskChoice, typer.Option(help="What the labels are", rich_help_panel="Training on feature views")
    ] = TaskChoice.classification,
    on_missing: Annotated[
        str,
        typer.Option(
            help="Label rows lacking features: drop (counted) or fail",
            rich_help_panel="Training on feature views",
        ),
    ] = "drop",
    max_incomplete: Annotated[
        float,
        typer.Option(
            help="With drop: fail if more than this share of label rows lack features",
            min=0,
            max=1,
            rich_help_panel="Training on feature views",
        ),
    ] = 0.05,
) -> None:
    """Start a training run (a Step Functions execution); --wait follows it to the end.

    On a dataset (--dataset), or on feature views: --labels joined point-in-time with
    --features into the run's dataset (docs/features.md, "Point-in-time training sets").

    With --wait: the run's current step on stderr while it runs, then a summary (status, best
    candidate, holdout metrics, the registered version or why it was rejected); --json prints
    the whole run record instead.
    """
    if (labels is None) != (features is None):
        raise _usage("--labels and --features go together", "--labels", "--features")
    if on_missing not in ("drop", "fail"):
        raise _usage("--on-missing is drop or fail", "--on-missing")
    request = _training_request(
        model, seed, dataset=dataset, labels=labels, candidates=candidates, search=search
    )
    if pruner is not None:
        request["search"] = _with_pruner(request.get("search"), pruner)
    for key, value in (
        ("target_metric", metric),
        ("threshold", threshold),
        ("tolerance", tolerance),
        ("expectations_key", expectations),
        ("promote_to", promote_to),
        ("compute", compute),
    ):
        if value is not None:
            request[key] = value
    with _calls():
        client = _client()
        if labels is not None and features is not None:
            request |= _feature_view_inputs(
                labels,
                features,
                {
                    "label_column": label_column,
                    "timestamp_column": timestamp_column,
                    "task": task.value,
                    "on_missing": on_missing,
                    "max_incomplete_fraction": max_incomplete,
                }
                | ({"entity_column": entity_column} if entity_column else {}),
            )
        started = client.start_training(request)
        if wait:
            console.print(f"started training run {started['run_id']}", highlight=False)
            _follow(client, started["run_id"], timeout, json_output)
            return
    if _as_json(json_output):
        _print_json(started)
    else:
        _say(f"started training run {started['run_id']}")
        _say(f"follow it with: mlops runs wait {started['run_id']}")


@runs_app.command("show")
def runs_show(run_id: str, json_output: JsonFlag = False) -> None:
    """One run: status, dataset, best candidate, metrics, registered version or why not (--json: all)."""
    with _calls():
        run = _client().run(run_id)
    if _as_json(json_output):
        _print_json(run)
        return
    for line in summary(run):
        _say(line)


@runs_app.command("wait", epilog=EXIT_CODES_HELP)
def runs_wait(run_id: str, timeout: WaitTimeout = 600, json_output: JsonFlag = False) -> None:
    """Follow a run until it ends; exit with its outcome (as `mlops train --wait`)."""
    with _calls():
        _follow(_client(), run_id, timeout, json_output)


@runs_app.command("list")
def runs_list(
    model: str,
    limit: Annotated[int, typer.Option(help="At most this many runs", min=1, max=200)] = 50,
    json_output: JsonFlag = False,
) -> None:
    """A model's runs, newest first."""
    with _calls():
        runs = _client().runs(model, limit)
    table = Rows("run", "status", "started", "version", "reason", ids=("run",))
    for run in runs:
        table.add_row(
            run["run_id"],
            run["status"],
            _when(run.get("started_at")),
            str(run.get("registered_version", "")),
            (run.get("evaluation") or {}).get("reason", ""),
        )
    _emit(runs, table, json_output)


# ---- registry --------------------------------------------------------------------------------
@models_app.command("list")
def models_list(json_output: JsonFlag = False) -> None:
    """Registered models."""
    with _calls():
        models = _client().models()
    table = Rows("model", "latest", "owner", "description", ids=("model", "owner"))
    for model in models:
        table.add_row(
            model["name"], str(model["latest_version"]), model.get("owner") or "", model["description"]
        )
    _emit(models, table, json_output)


@models_app.command("show")
def models_show(name: str, json_output: JsonFlag = False) -> None:
    """A model's aliases and versions."""
    with _calls():
        client = _client()
        detail = client.model(name)
        versions = client.versions(name)
    table = Rows("version", "aliases", "stage", "run", "metrics", "created", ids=("run",))
    for version in versions:
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(version["metrics"].items()))
        table.add_row(
            str(version["version"]),
            ", ".join(a["alias"] for a in detail["aliases"] if a["version"] == version["version"]),
            version["stage"],
            version.get("run_id") or "",
            metrics,
            _when(version["created_at"]),
        )
    _emit({**detail, "versions": versions}, table, json_output)


@models_app.command("register")
def models_register(
    name: str,
    feature_view: Annotated[
        list[str],
        typer.Option(help="A feature view whose features (by name) the new version reads; repeatable"),
    ],
    from_alias: Annotated[
        str, typer.Option(help="Register the artifact of this alias's version again")
    ] = "production",
    from_version: Annotated[
        int | None, typer.Option(help="... or of this version (instead of --from-alias)", min=1)
    ] = None,
    description: Annotated[str, typer.Option(help="The new version's description")] = "",
    alias: Annotated[
        str | None,
        typer.Option(help="Then point this alias at it (production: under the model's promotion policy)"),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Register an existing version's artifact as a new version whose signature reads the named
    feature views (predictions by entity id); promote it like any version (or --alias)."""
    with _calls():
        client = _client()
        number = from_version or client.call("GET", f"/models/{name}/aliases/{from_alias}")["version"]
        source = client.version(name, number)
        signature: dict[str, Any] = dict(source["signature"])
        fed: dict[str, list[str]] = {}
        for view_name in feature_view:
            view = client.call("GET", f"/feature-views/{view_name}")["view"]["definition"]
            try:
                signature, fed[view_name] = entity_cli.signature_with_view(signature, view)
            except entity_cli.EntityUsageError as error:
                raise _usage(str(error), "--feature-view") from None
        registered = client.register_version(
            name,
            {
                "artifact_key": source["artifact"]["key"],
                "sha256": source["artifact"]["sha256"],
                "signature": signature,
                "metrics": source["metrics"],
                "description": description or f"v{number} reading {', '.join(feature_view)} by entity id",
            },
        )
        moved = (
            client.promote(
                name, registered["version"], alias, reason=f"reads {', '.join(feature_view)} by entity id"
            )
            if alias
            else None
        )
    if _as_json(json_output):
        _print_json(registered)
        return
    reads = "; ".join(f"{view}: {len(inputs)} inputs" for view, inputs in fed.items())
    _say(f"registered {name} v{registered['version']} (artifact of v{number}; reads {reads})")
    if moved is not None:
        _print_alias(moved, False)


@feature_policy_app.command("show")
def feature_policy_show(name: str, json_output: JsonFlag = False) -> None:
    """What predictions by entity id do with missing or stale online features."""
    with _calls():
        policy = _client().feature_policy(name)
    if _as_json(json_output):
        _print_json(policy)
        return
    for line in entity_cli.describe_policy(policy):
        _say(line)


@feature_policy_app.command("set")
def feature_policy_set(
    name: str,
    missing: Annotated[str, typer.Option(help="refuse (422) or default")] = "refuse",
    stale: Annotated[str, typer.Option(help="refuse (422), serve (flagged) or default")] = "refuse",
    default: Annotated[
        list[str] | None,
        typer.Option(help="INPUT=VALUE served in place of a missing or stale one; repeatable"),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Replace the model's feature policy (audited; live within the inference cache TTL)."""
    try:
        defaults = entity_cli.parse_defaults(default or [])
    except entity_cli.EntityUsageError as error:
        raise _usage(str(error), "--default") from None
    with _calls():
        policy = _client().set_feature_policy(
            name, {"missing": missing, "stale": stale, "defaults": defaults}
        )
    if _as_json(json_output):
        _print_json(policy)
        return
    for line in entity_cli.describe_policy(policy):
        _say(line)


def _print_alias(alias: dict[str, Any], json_flag: bool) -> None:
    if _as_json(json_flag):
        _print_json(alias)
        return
    before = (alias.get("previous_versions") or [None])[0]
    was = f"was v{before}; " if before is not None and before != alias["version"] else ""
    _say(f"{alias['model_name']}@{alias['alias']} -> v{alias['version']} ({was}revision {alias['revision']})")


@models_app.command("promote")
def models_promote(
    name: str,
    version: int,
    alias: Annotated[str, typer.Option(help="Alias to move")] = "production",
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")] = "",
    expected_revision: Annotated[
        int | None, typer.Option(help="Move only if the alias is at this revision")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Point an alias (production by default) at a version, under the model's policy."""
    with _calls():
        moved = _client().promote(name, version, alias, expected_revision=expected_revision, reason=reason)
    _print_alias(moved, json_output)


@models_app.command("rollback")
def models_rollback(
    name: str,
    alias: Annotated[str, typer.Option(help="Alias to move back")] = "production",
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")] = "",
    json_output: JsonFlag = False,
) -> None:
    """Move an alias back to the version it named before."""
    with _calls():
        moved = _client().rollback(name, alias, reason=reason)
    _print_alias(moved, json_output)


@models_app.command("audit")
def models_audit(
    name: str,
    limit: Annotated[int, typer.Option(help="At most this many records", min=1)] = 50,
    json_output: JsonFlag = False,
) -> None:
    """Who registered, promoted and rolled back what, when and why."""
    with _calls():
        trail = _client().audit(name, limit)
    table = Rows("at", "action", "alias", "from", "to", "actor", "reason", ids=("actor",))
    for record in trail:
        table.add_row(
            _when(record["at"]),
            record["action"],
            record.get("alias") or "",
            str(record.get("from_version") or ""),
            str(record["to_version"]),
            record.get("actor") or "",
            record.get("reason") or "",
        )
    _emit(trail, table, json_output)


@models_app.command("card")
def models_card(
    name: str,
    version: int,
    json_output: JsonFlag = False,
    as_json: Annotated[bool, typer.Option("--as-json", hidden=True)] = False,
) -> None:
    """The version's model card (Markdown, or JSON with --json)."""
    if as_json:
        console.print("--as-json is deprecated: use --json", style="yellow")
    json_card = _as_json(json_output) or as_json
    with _calls():
        card = _client().model_card(name, version, "json" if json_card else "markdown")
    if isinstance(card, str):
        _say(card)
    else:
        _print_json(card)


# ---- routing ---------------------------------------------------------------------------------
@routing_app.command("show")
def routing_show(name: str, json_output: JsonFlag = False) -> None:
    """The policy in force; per variant requests, feedback, reward rate and posterior; history."""
    with _calls():
        summary = _client().routing(name)
    if _as_json(json_output):
        _print_json(summary)
        return
    stored = summary["routing"]
    revision = f"revision {stored['revision']}" if stored["revision"] else "default: never set"
    _say(f"{name}: {describe_policy(stored['policy'])} ({revision})")
    summary_table(summary).print(out)
    if summary["history"]:
        _say("history:")
        history_table(summary["history"]).print(out)


@routing_app.command("set")
def routing_set(
    name: str,
    split: Annotated[str | None, typer.Option(help="Weights per version, e.g. 3=0.9,4=0.1")] = None,
    bandit: Annotated[str | None, typer.Option(help="Thompson sampling over versions, e.g. 3,4")] = None,
    alias: Annotated[str | None, typer.Option(help="Serve one alias (resolved per request)")] = None,
    version: Annotated[int | None, typer.Option(help="Serve one pinned version", min=1)] = None,
    shadow: Annotated[int | None, typer.Option(help="Also score (never return) this version", min=1)] = None,
    discount: Annotated[float | None, typer.Option(help="Bandit: forget old rewards, in (0, 1]")] = None,
    min_exploration: Annotated[
        float | None, typer.Option(help="Bandit: share of requests routed uniformly, in [0, 0.5)")
    ] = None,
    file: Annotated[
        Path | None, typer.Option(help="The policy as a JSON file (instead of the options)", exists=True)
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")] = "",
    expected_revision: Annotated[
        int | None, typer.Option(help="Change only if the policy is at this revision (0: never set)", min=0)
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Replace a model's routing policy (audited; live within the inference cache TTL)."""
    if file is not None:
        if any(v is not None for v in (split, bandit, alias, version, shadow, discount, min_exploration)):
            raise _usage("--file takes the whole policy; drop the other policy options", "--file")
        policy = _json_option(f"@{file}", "--file")
    else:
        try:
            policy = policy_from_options(
                split=split,
                bandit=bandit,
                alias=alias,
                version=version,
                shadow=shadow,
                discount=discount,
                min_exploration=min_exploration,
            )
        except PolicyOptionError as error:
            raise _usage(str(error), error.option) from None
    with _calls():
        stored = _client().set_routing(name, policy, reason=reason, expected_revision=expected_revision)
    if _as_json(json_output):
        _print_json(stored)
    else:
        _say(f"{name}: {describe_policy(stored['policy'])} (revision {stored['revision']})")


@routing_app.command("history")
def routing_history(
    name: str,
    since: Annotated[str | None, typer.Option(help="From this ISO 8601 time (UTC) on")] = None,
    limit: Annotated[int | None, typer.Option(help="The newest buckets, at most", min=1)] = None,
    json_output: JsonFlag = False,
) -> None:
    """Traffic share and posterior per variant over time (5-minute buckets, oldest first)."""
    with _calls():
        history = _client().routing_history(name, since=since, limit=limit)
    if _as_json(json_output):
        _print_json(history)
        return
    if not history["buckets"]:
        _say(f"{name}: no traffic or feedback counted in the window yet")
        return
    _say(f"{name}: {len(history['buckets'])} buckets of {history['bucket_seconds']} s")
    timeline_table(history).print(out)


# ---- rollouts --------------------------------------------------------------------------------
def _guard(help_text: str) -> Any:
    return typer.Option(help=help_text, min=0)


@rollout_app.command("start", epilog=rollouts.EXIT_CODES_HELP)
def rollout_start(
    name: str,
    candidate: Annotated[int, typer.Option(help="The version to roll out", min=1)],
    steps: Annotated[str, typer.Option(help="The candidate's share at each step, in percent")] = "10,50,100",
    bake: Annotated[
        str, typer.Option(help="How long each step serves before its check: 90s, 10m, 1h")
    ] = "10m",
    max_error_increase: Annotated[
        float | None, _guard("Error rate allowed above production's (default 0.02: 2 points)")
    ] = None,
    max_p99_ratio: Annotated[
        float | None, _guard("p99 latency allowed, times production's (default 2)")
    ] = None,
    max_p99_ms: Annotated[float | None, _guard("p99 latency allowed, in ms (default: no limit)")] = None,
    max_reward_drop: Annotated[
        float | None, _guard("Reward rate allowed below production's (default: not checked)")
    ] = None,
    min_calls: Annotated[
        int | None, typer.Option(help="Calls a step needs to be judged (100)", min=0)
    ] = None,
    insufficient_traffic: Annotated[
        str | None, typer.Option(help="Too few calls: hold (bake again, 3 times at most), rollback, proceed")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")] = "",
    wait: Annotated[bool, typer.Option(help="Follow it to the end, then exit with its outcome")] = False,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait (default: its longest run)")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Move traffic from production to a candidate in steps, each baked then checked against
    guardrails (defaults: error rate at most 2 points above production's, p99 at most 2x);
    promote at the end, roll back traffic (and alias) when one trips."""
    guardrails = {
        "max_error_rate_increase": max_error_increase,
        "max_p99_ratio": max_p99_ratio,
        "max_p99_ms": max_p99_ms,
        "max_reward_drop": max_reward_drop,
        "min_calls": min_calls,
        "on_insufficient_traffic": insufficient_traffic,
    }
    try:
        body = rollouts.request_body(
            candidate=candidate, steps=steps, bake=bake, reason=reason, guardrails=guardrails
        )
    except rollouts.RolloutOptionError as error:
        raise _usage(str(error), error.option) from None
    with _calls():
        client = _client()
        started = rollouts.start(client, name, body)
        rollout_id = started["rollout_id"]
        if not wait:
            if _as_json(json_output):
                _print_json(started)
            else:
                _say(f"started rollout {rollout_id}")
                _say(f"follow it with: mlops rollout show {name} {rollout_id}")
            return
        console.print(f"started rollout {rollout_id}", highlight=False)
        limit = timeout or rollouts.longest_seconds(started["rollout"])
        try:
            ended = rollouts.wait_for_rollout(client, name, rollout_id, console, timeout=limit)
        except rollouts.RolloutStillRunning as error:
            _error(f"{error}; see it with `mlops rollout show {name} {rollout_id}`")
            raise typer.Exit(rollouts.EXIT_STILL_RUNNING) from None
        except KeyboardInterrupt:
            _error(
                f"stopped waiting; the rollout goes on (`mlops rollout abort {name} {rollout_id}` stops it)"
            )
            raise typer.Exit(130) from None
    _show_rollout(ended, json_output)
    if rollouts.EXIT_CODES[ended["status"]]:
        raise typer.Exit(rollouts.EXIT_CODES[ended["status"]])


def _show_rollout(rollout: dict[str, Any], json_flag: bool) -> None:
    if _as_json(json_flag):
        _print_json(rollout)
        return
    for line in rollouts.summary(rollout):
        _say(line)
    rollouts.steps_table(rollout).print(out)


@rollout_app.command("show")
def rollout_show(
    name: str,
    rollout_id: Annotated[str | None, typer.Argument(help="A rollout (default: list the model's)")] = None,
    limit: Annotated[int, typer.Option(help="At most this many rollouts", min=1, max=200)] = 20,
    json_output: JsonFlag = False,
) -> None:
    """A rollout with every step's checks (candidate vs production), or the model's rollouts."""
    with _calls():
        client = _client()
        if rollout_id is not None:
            _show_rollout(rollouts.get(client, name, rollout_id), json_output)
            return
        found = rollouts.recent(client, name, limit)
    _emit(found, rollouts.list_table(found), json_output)


@rollout_app.command("abort")
def rollout_abort(
    name: str,
    rollout_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit trail)")] = "",
    json_output: JsonFlag = False,
) -> None:
    """Stop a running rollout; all traffic goes back to production."""
    with _calls():
        aborted = rollouts.abort(_client(), name, rollout_id, reason)
    _show_rollout(aborted, json_output)


# ---- serving ---------------------------------------------------------------------------------
@app.command()
def predict(
    model: str,
    instances: Annotated[
        str | None,
        typer.Option(
            help="JSON list of rows (lists or feature objects), or @file.json; with --entity: objects of "
            "the request-time inputs, one per row"
        ),
    ] = None,
    entity: Annotated[
        list[str] | None,
        typer.Option(
            help="Predict by entity id: one row, VIEW=ID or ENTITY_KEY=ID (comma-separated for several "
            "views); repeat for more rows. Features come from the online store"
        ),
    ] = None,
    alias: Annotated[
        str | None, typer.Option(help="Predict with this alias's version (default: production)")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Predict with this version (not with --alias)", min=1)
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Call POST /models/{model}/predict; prints the response (JSON)."""
    if alias is not None and version is not None:
        raise _usage("mutually exclusive: pass one of them", "--alias", "--version")
    if instances is None and not entity:
        raise _usage("pass --instances, --entity, or both", "--instances", "--entity")
    rows = None if instances is None else _json_option(instances, "--instances")
    if rows is not None and (not isinstance(rows, list) or not rows):
        raise _usage("expected a non-empty JSON list of rows, e.g. '[[1.0, 2.5]]'", "--instances")
    try:
        entity_ids = entity_cli.entity_rows(entity) if entity else None
    except entity_cli.EntityUsageError as error:
        raise _usage(str(error), "--entity") from None
    with _calls():
        _print_json(_client().predict(model, rows, alias=alias, version=version, entity_ids=entity_ids))


FEEDBACK_EXIT_CODES = (
    "Exit codes: 0 every feedback recorded (or recorded before: a duplicate), 1 an API error or a "
    "feedback not recorded (unknown prediction, a label outside the model's classes...), 2 a usage "
    "error or a malformed line."
)


@feedback_app.command("send", epilog=FEEDBACK_EXIT_CODES)
def feedback_send(
    prediction_id: Annotated[str | None, typer.Option(help="A prediction id from a predict answer")] = None,
    reward: Annotated[int | None, typer.Option(help="The outcome: 1 (success) or 0", min=0, max=1)] = None,
    label: Annotated[
        str | None,
        typer.Option(help='The true outcome: JSON (1, true, "1") or plain text, a class or a number'),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(help="JSON Lines: one {prediction_id, reward | label} per line", dir_okay=False),
    ] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to keep retrying predictions not captured yet (409)", min=0)
    ] = 20,
    json_output: JsonFlag = False,
) -> None:
    """Send feedback: one (--prediction-id with --reward or --label), or a file of them in batches."""
    from infra.cli import feedback

    if file is not None:
        if prediction_id is not None or reward is not None or label is not None:
            raise _usage("a file carries its own feedback: pass --file alone", "--file")
        try:
            lines = feedback.read_lines(file.read_text())
        except (OSError, UnicodeDecodeError) as error:
            raise _usage(f"cannot read {str(file)!r}: {error}", "--file") from None
        except feedback.BadFeedback as error:
            raise _usage(f"{file}: {error}", "--file") from None
        with _calls():
            client = _client()
            sent = feedback.send_batches(client.feedback_batch, [e for _, e in lines], wait=wait)
        _print_feedback(sent, [n for n, _ in lines], json_output)
        if sent.failed:
            raise typer.Exit(1)
        return
    if prediction_id is None:
        raise _usage("pass --prediction-id (with --reward or --label), or --file", "--prediction-id")
    if (reward is None) == (label is None):
        raise _usage("pass exactly one of them", "--reward", "--label")
    try:
        one = feedback.entry(
            prediction_id, reward=reward, label=None if label is None else feedback.parse_label(label)
        )
    except feedback.BadFeedback as error:
        raise _usage(str(error), "--prediction-id", "--label") from None
    with _calls():
        client = _client()
        result = feedback.retry_not_captured(lambda: client.feedback(one), _not_captured_pause, wait=wait)
    _print_json(result)


def _not_captured_pause(error: Exception) -> float | None:
    if isinstance(error, ApiError) and error.status == 409:
        return error.retry_after or 1.0
    return None


def _print_feedback(sent: Any, line_numbers: list[int], json_flag: bool) -> None:
    table = Rows("line", "prediction", "status", "reward", "label", "note", ids=("prediction",))
    for number, result in zip(line_numbers, sent.results, strict=True):
        note = result.get("message") or ("duplicate" if result.get("duplicate") else "recorded")
        if result.get("duplicate") and result.get("matches_original") is False:
            note = "duplicate: the recorded feedback differs from this line's"
        table.add_row(
            str(number),
            result["prediction_id"],
            str(result["status"]),
            "" if result.get("reward") is None else str(result["reward"]),
            "" if result.get("label") is None else json.dumps(result["label"]),
            note,
        )
    _emit(sent.summary(), table, json_flag)


# ---- the model console ----------------------------------------------------------------------
class ConsolePage(StrEnum):
    models = "models"
    model = "model"
    runs = "runs"
    run = "run"
    routing = "routing"
    drift = "drift"
    batch = "batch"


@app.command("console")
def console_page(
    page: Annotated[ConsolePage, typer.Argument(help="The page")] = ConsolePage.models,
    model: Annotated[str | None, typer.Option(help="The model (every page but models and run)")] = None,
    run: Annotated[str | None, typer.Option(help="The training run (the run page)")] = None,
    sort: Annotated[str | None, typer.Option(help="Sort column (runs, run pages)")] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", dir_okay=False, help="Write the page's HTML to this file")
    ] = None,
) -> None:
    """The model console: print a page's address (local stack) or the models dashboard's
    (--stack); with --out, save the local page's HTML."""
    if state.stack:
        import boto3

        region = boto3.session.Session().region_name or "us-east-1"
        _say(
            f"https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}"
            f"#dashboards/dashboard/{state.stack}-models"
        )
        return
    with _calls():
        target = _target()
    params = {k: v for k, v in {"page": page.value, "model": model, "run": run, "sort": sort}.items() if v}
    url = f"{target.api_url}/_local/console/?{urlencode(params)}"
    if out_file is None:
        _say(url)
        return
    with _calls():
        answer = requests.get(url, timeout=30)
    if answer.status_code != 200:
        message = re.sub(r"<[^>]+>", " ", answer.text)
        found = re.search(r'class="error">([^<]+)<', answer.text)
        _error(html.unescape(found.group(1)) if found else message[:300])
        raise typer.Exit(1)
    out_file.write_text(answer.text)
    _say(f"wrote {out_file} ({len(answer.content):,} bytes): {url}")


@app.command()
def invoke(
    function: Annotated[
        str, typer.Argument(help="Function: inference, registry, training-api, training-validate-data, ...")
    ],
    event_file: Annotated[Path, typer.Argument(help="An event from events/", exists=True, dir_okay=False)],
    json_output: JsonFlag = False,
) -> None:
    """Invoke one function of the local stack with an event file (like `sam local invoke`)."""
    import boto3

    with _calls():
        target = _target()
        if target.local is None:
            raise _usage("invoke runs functions of the local stack; drop --stack", "--stack")
        lambda_client = boto3.client("lambda")
        names = {
            cfg["Environment"]["Variables"].get("POWERTOOLS_SERVICE_NAME"): cfg["FunctionName"]
            for cfg in lambda_client.list_functions()["Functions"]
            if cfg.get("Environment")
        }
        if function not in names:
            raise _usage(
                f"unknown function {function!r}; one of: {', '.join(sorted(n for n in names if n))}",
                "FUNCTION",
            )
        response = lambda_client.invoke(FunctionName=names[function], Payload=event_file.read_bytes())
    payload = json.loads(response["Payload"].read() or b"null")
    _print_json(payload)
    if response.get("FunctionError"):
        raise typer.Exit(1)


drift.bind(sys.modules[__name__])
stream.bind(sys.modules[__name__])
batch.bind(sys.modules[__name__])


def run() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    run()
