"""`mlops batch`: score every object under an S3 prefix with one version of a model.

    mlops batch upload FILE... --prefix NAME    files to s3://<bucket>/batch-input/NAME/
    mlops batch start M --input s3://<bucket>/batch-input/NAME/ [--version V | --alias A] [--wait]
    mlops batch show JOB_ID                     counts, version, the first refused rows
    mlops batch list [--model M]                jobs, newest first

``start --wait`` exits 0 when the job succeeded (rows refused by line are counted, not a
failure), 4 when it failed, 5 when still running at ``--timeout``.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from infra.cli.client import ApiClient
from infra.cli.tables import Rows

batch_app = typer.Typer(
    help="Batch scoring of S3 objects (a Step Functions Distributed Map).", no_args_is_help=True
)

INPUT_PREFIX = "batch-input/"
EXIT_FAILED, EXIT_STILL_RUNNING = 4, 5
EXIT_CODES_HELP = (
    "Exit codes with --wait: 0 the job succeeded (refused rows are counted, not failures), "
    f"{EXIT_FAILED} it failed, {EXIT_STILL_RUNNING} still running when --timeout passed; 1 an API error, "
    "2 a usage error."
)
POLL_SECONDS = 1.0
_host: list[Any] = []
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts), as `mlops --json ...`")]


def bind(cli_module: ModuleType) -> None:
    """The `mlops` module whose helpers and state the commands use."""
    _host[:] = [cli_module]


def _cli() -> Any:
    return _host[0] if _host else importlib.import_module("infra.cli.main")


def start_job(client: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    return dict(client.call("POST", "/batch-predictions", body))


def get_job(client: ApiClient, job_id: str) -> dict[str, Any]:
    return dict(client.call("GET", f"/batch-predictions/{job_id}"))


def list_jobs(client: ApiClient, model: str | None, limit: int) -> list[dict[str, Any]]:
    query = {"limit": str(limit)} | ({"model": model} if model else {})
    return list(client.call("GET", "/batch-predictions", query=query)["jobs"])


def wait_for_job(client: ApiClient, job_id: str, timeout: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(client, job_id)
        if job["status"] != "running":
            return job
        if time.monotonic() >= deadline:
            return None
        time.sleep(POLL_SECONDS)


def summary(job: dict[str, Any]) -> list[str]:
    lines = [
        f"job {job['job_id']}: {job['status']} ({job['model_name']} v{job['version']}"
        + (f", from alias {job['alias']})" if job.get("alias") else ")"),
        f"input:  {job['input_prefix']}",
        f"output: {job['output_prefix']}predictions/ (refused rows: {job['output_prefix']}errors/)",
    ]
    if job.get("objects") is not None:
        lines.append(
            f"objects: {job['objects']} ({job['objects_failed']} failed); rows: {job['rows']} read, "
            f"{job['rows_scored']} scored, {job['rows_failed']} refused; {job['duration_seconds']} s"
        )
    if job.get("error"):
        lines.append(f"error: {job['error']}: {job.get('cause') or ''}".rstrip(": "))
    for failed in job.get("failed_objects") or []:
        lines.append(f"  failed object {failed['key']}: {failed['error']}: {failed['cause']}")
    for row in job.get("failed_rows") or []:
        lines.append(f"  refused {row['key']} line {row['line']}: {row['reason']}")
    shown = len(job.get("failed_rows") or [])
    if job.get("rows_failed") and job["rows_failed"] > shown:
        lines.append(f"  ... {job['rows_failed'] - shown} more refused rows in {job['output_prefix']}errors/")
    return lines


def list_table(jobs: list[dict[str, Any]]) -> Rows:
    table = Rows("job_id", "model", "version", "status", "rows", "refused", "started", ids=("job_id",))
    for job in jobs:
        table.add_row(
            job["job_id"],
            job["model_name"],
            str(job["version"]),
            job["status"],
            "" if job.get("rows") is None else str(job["rows"]),
            "" if job.get("rows_failed") is None else str(job["rows_failed"]),
            _cli()._when(job["created_at"]),
        )
    return table


@batch_app.command("upload")
def upload(
    files: Annotated[
        list[Path], typer.Argument(help="CSV (header row), JSON Lines or Parquet files", dir_okay=False)
    ],
    prefix: Annotated[str, typer.Option(help=f"Folder under {INPUT_PREFIX} to put them in")],
    json_output: JsonFlag = False,
) -> None:
    """Upload files to score to s3://<bucket>/batch-input/PREFIX/ (prints the --input to pass)."""
    import boto3

    cli = _cli()
    folder = prefix.strip("/")
    if not folder or ".." in folder.split("/"):
        raise cli._usage("name a folder, e.g. nightly/2026-12-01", "--prefix")
    contents = []
    for file in files:
        try:
            contents.append((file.name, file.read_bytes()))
        except OSError as error:
            raise cli._usage(f"cannot read {str(file)!r}: {error}", "FILES") from None
    with cli._calls():
        bucket = cli._bucket(cli._target())
        s3 = boto3.client("s3")
        for name, data in contents:
            s3.put_object(Bucket=bucket, Key=f"{INPUT_PREFIX}{folder}/{name}", Body=data)
    uri = f"s3://{bucket}/{INPUT_PREFIX}{folder}/"
    if cli._as_json(json_output):
        cli._print_json({"input": uri, "objects": [name for name, _ in contents]})
        return
    cli._say(f"uploaded {len(contents)} object(s) to {uri}")
    cli._say(f"score them with: mlops batch start MODEL --input {uri}")


@batch_app.command("start", epilog=EXIT_CODES_HELP)
def start(  # noqa: PLR0917 (typer takes each option as a parameter)
    model: str,
    input_uri: Annotated[
        str, typer.Option("--input", help="s3://<bucket>/batch-input/FOLDER/ (or batch-input/FOLDER/)")
    ],
    version: Annotated[int | None, typer.Option(help="Score with this version", min=1)] = None,
    alias: Annotated[str | None, typer.Option(help="Score with the version this alias names now")] = None,
    wait: Annotated[bool, typer.Option(help="Follow the job to its end")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait", min=1)] = 3600,
    json_output: JsonFlag = False,
) -> None:
    """Score every object under --input with one version of MODEL (production by default),
    pinned for the whole job; predictions per object under batch/JOB/predictions/."""
    cli = _cli()
    if version is not None and alias is not None:
        raise cli._usage("give --version or --alias, not both", "--version", "--alias")
    body: dict[str, Any] = {"model_name": model, "input": input_uri}
    if version is not None:
        body["version"] = version
    if alias is not None:
        body["alias"] = alias
    with cli._calls():
        client = cli._client()
        started = start_job(client, body)
        job_id = started["job_id"]
        if not wait:
            if cli._as_json(json_output):
                cli._print_json(started)
            else:
                cli._say(f"started batch job {job_id} ({model} v{started['job']['version']})")
                cli._say(f"follow it with: mlops batch show {job_id}")
            return
        cli.console.print(f"started batch job {job_id}", highlight=False)
        ended = wait_for_job(client, job_id, timeout)
    if ended is None:
        cli._error(
            f"batch job {job_id} still running after {timeout:.0f} s; see it with `mlops batch show {job_id}`"
        )
        raise typer.Exit(EXIT_STILL_RUNNING)
    _show(ended, json_output)
    if ended["status"] == "failed":
        raise typer.Exit(EXIT_FAILED)


def _show(job: dict[str, Any], json_flag: bool) -> None:
    cli = _cli()
    if cli._as_json(json_flag):
        cli._print_json(job)
        return
    for line in summary(job):
        cli._say(line)


@batch_app.command("show")
def show(job_id: str, json_output: JsonFlag = False) -> None:
    """A batch job: status, version, objects and rows scored and refused, the first refused rows."""
    cli = _cli()
    with cli._calls():
        job = get_job(cli._client(), job_id)
    _show(job, json_output)


@batch_app.command("list")
def list_command(
    model: Annotated[str | None, typer.Option(help="Only this model's jobs")] = None,
    limit: Annotated[int, typer.Option(help="At most this many jobs", min=1, max=200)] = 20,
    json_output: JsonFlag = False,
) -> None:
    """Batch jobs, newest first."""
    cli = _cli()
    with cli._calls():
        found = list_jobs(cli._client(), model, limit)
    cli._emit(found, list_table(found), json_output)
