"""`mlops features ...`: feature views from the repository's TOML files, materializations,
freshness and lookups, against the stack's API (local or `--stack NAME`).

    mlops features apply [PATH ...] [--dry-run]   register the views of features/*.toml (default)
    mlops features list | show VIEW               what is registered (versions)
    mlops features materialize VIEW [--start --end] [--wait]
    mlops features runs VIEW                      its materialization runs
    mlops features freshness [VIEW]               age of the newest row, share past TTL, stale?
    mlops features get VIEW ENTITY_ID [...]       online values (the lookup function, API key)

A definition file holds one or more ``[[view]]`` tables, each a ``FeatureViewDefinition``
(validated here before anything is sent, with each problem's file and field).
"""

from __future__ import annotations

import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from infra.cli.client import ApiClient
from infra.cli.tables import Rows
from mlops_core.features.entities import FeatureViewDefinition, describe_seconds

#: Where `mlops features apply` looks when given no path.
DEFAULT_DEFINITIONS = Path("features")
WAIT_POLL_SECONDS = 0.5

features_app = typer.Typer(
    help="Feature views, materialization, freshness and online lookups.", no_args_is_help=True
)


class BadDefinition(Exception):
    """A definition file that cannot be read or does not validate (exit 2)."""


def definition_files(paths: Sequence[Path]) -> list[Path]:
    """The ``*.toml`` files named, or found in the directories named (sorted)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(path.glob("*.toml")))
        elif path.is_file():
            found.append(path)
        else:
            raise BadDefinition(f"{path}: no such file or directory")
    if not found:
        raise BadDefinition(f"no *.toml definition files in {', '.join(map(str, paths))}")
    return found


def load_definitions(paths: Sequence[Path]) -> list[FeatureViewDefinition]:
    """Every ``[[view]]`` of the files, validated; names must be unique across them."""
    views: list[FeatureViewDefinition] = []
    seen: dict[str, Path] = {}
    for file in definition_files(paths):
        try:
            document = tomllib.loads(file.read_text())
        except (OSError, UnicodeDecodeError) as error:
            raise BadDefinition(f"{file}: cannot read it: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise BadDefinition(f"{file}: not valid TOML: {error}") from None
        unknown = sorted(set(document) - {"view"})
        if unknown or not isinstance(document.get("view"), list):
            raise BadDefinition(
                f"{file}: expected [[view]] tables only (found {', '.join(unknown) or 'none'})"
            )
        for index, raw in enumerate(document["view"]):
            try:
                view = FeatureViewDefinition.model_validate(raw)
            except ValidationError as error:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'view'}: {e['msg']}" for e in error.errors()
                )
                name = raw.get("name", f"#{index + 1}") if isinstance(raw, dict) else f"#{index + 1}"
                raise BadDefinition(f"{file}: view {name}: {problems}") from None
            if view.name in seen:
                raise BadDefinition(f"{file}: view {view.name} is also defined in {seen[view.name]}")
            seen[view.name] = file
            views.append(view)
    return views


# ---- API calls -----------------------------------------------------------------------------
def apply_view(client: ApiClient, view: FeatureViewDefinition, *, dry_run: bool, reason: str) -> Any:
    body = {"definition": view.model_dump(mode="json"), "dry_run": dry_run, "reason": reason}
    return client.call("PUT", f"/feature-views/{view.name}", body)


def request_run(
    client: ApiClient, view: str, start: str | None, end: str | None, *, full: bool = False
) -> Any:
    window: dict[str, Any] = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    if full:
        window["full"] = True
    return client.call("POST", f"/feature-views/{view}/materializations", window)


def run_of(client: ApiClient, view: str, run_id: str) -> Any:
    return client.call("GET", f"/feature-views/{view}/materializations/{run_id}")


def wait_for(
    client: ApiClient, view: str, run_id: str, *, timeout: float, sleep: Callable[[float], None] = time.sleep
) -> Any:
    """The run once it ended (succeeded, failed, skipped), or its last state at the timeout."""
    until = time.monotonic() + timeout
    while True:
        run = run_of(client, view, run_id)
        if run["status"] not in ("requested", "running") or time.monotonic() >= until:
            return run
        sleep(WAIT_POLL_SECONDS)


def lookup(client: ApiClient, view: str, entity_ids: Sequence[str]) -> Any:
    if len(entity_ids) == 1:
        return client.call("GET", f"/features/{view}/{entity_ids[0]}", iam=False)
    return client.call("POST", f"/features/{view}", {"entity_ids": list(entity_ids)}, iam=False)


# ---- output ----------------------------------------------------------------------------------
def apply_lines(result: dict[str, Any]) -> list[str]:
    view = result["view"]
    name, version = view["definition"]["name"], view["version"]
    if not result["changed"]:
        return [f"{name}: unchanged (v{version})"]
    verb = "would become" if result["dry_run"] else "is now"
    was = f"v{result['previous_version']}" if result["previous_version"] else "new"
    return [f"{name}: {was} -> {verb} v{version}", *(f"  {change}" for change in result["changes"])]


def run_lines(run: dict[str, Any]) -> list[str]:
    lines = [f"{run['view']} run {run['run_id']}: {run['status']}"]
    if run.get("error"):
        lines.append(f"  error: {run['error']}")
        lines.extend(
            f"    - {'.'.join(map(str, d.get('loc', [])))}: {d.get('msg')}"
            for d in run.get("error_detail") or []
        )
    if run["status"] in ("succeeded", "failed"):
        lines.append(
            f"  objects read {run['objects_read']} (unchanged, skipped: {run['objects_skipped']}), "
            f"rows read {run['rows_read']}, rejected {run['rows_rejected']}, outside the window "
            f"{run['rows_outside_window']}"
        )
        lines.append(
            f"  entities {run['entities']}: written {run['items_written']}, "
            f"unchanged {run['items_unchanged']} ({run['write_requests']} write and "
            f"{run['read_requests']} read requests, {run.get('duration_ms', 0)} ms)"
        )
        for reason, count in sorted((run.get("rejected_reasons") or {}).items()):
            lines.append(f"  rejected {count}: {reason}")
    if run.get("partitioned"):
        lines.insert(1, "  partitioned: one child per source object (the sources exceed one function)")
    lines.extend(f"  failed object {f['object_key']}: {f['error']}" for f in run.get("failed_objects") or [])
    return lines


def views_table(views: list[dict[str, Any]]) -> Rows:
    table = Rows("view", "version", "entity", "features", "ttl", "schedule", "owner", ids=("view", "owner"))
    for view in views:
        definition = view["definition"]
        table.add_row(
            definition["name"],
            str(view["version"]),
            f"{definition['entity']['name']} ({definition['entity']['type']})",
            str(len(definition["features"])),
            describe_seconds(definition["ttl"]),
            describe_seconds(definition.get("schedule")),
            definition["owner"],
        )
    return table


def freshness_table(reports: list[dict[str, Any]]) -> Rows:
    table = Rows(
        "view", "entities", "newest row", "age", "target", "stale", "past ttl", "last run", ids=("view",)
    )
    for report in reports:
        age = report.get("age_seconds")
        table.add_row(
            report["view"],
            str(report["entities"]),
            report.get("newest_event_time") or "-",
            "-" if age is None else describe_age(age),
            describe_seconds(report.get("freshness_target_seconds")),
            "yes" if report["stale"] else "no",
            f"{100 * report['expired_share']:.1f}%",
            report.get("last_run_status") or "-",
        )
    return table


def describe_age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


PathsArgument = Annotated[
    list[Path] | None, typer.Argument(help=f"Definition files or folders (default: {DEFAULT_DEFINITIONS}/)")
]


# ---- the commands (helpers of infra.cli.main imported when a command runs: main imports us) ----
def _client(ctx: typer.Context) -> ApiClient:
    """The client for ``--stack`` (or the local stack) as the root command was given it.

    Read from the root command's parameters, not from ``infra.cli.main.state``: run as
    ``python -m infra.cli.main`` that module is ``__main__``, and importing it here makes a
    second copy whose state the root callback never set.
    """
    from infra.cli.client import Target

    stack = ctx.find_root().params.get("stack")
    return ApiClient(Target.deployed(stack) if stack else Target.local_stack())


def _json(ctx: typer.Context, flag: bool) -> bool:
    return flag or bool(ctx.find_root().params.get("json_output"))


def _emit(ctx: typer.Context, payload: Any, table: Rows, flag: bool) -> None:
    from infra.cli import main as cli

    if _json(ctx, flag):
        cli._print_json(payload)
    else:
        table.print(cli.out)


@features_app.command("apply")
def apply_command(
    ctx: typer.Context,
    paths: PathsArgument = None,
    dry_run: Annotated[bool, typer.Option(help="Only print what would change")] = False,
    reason: Annotated[str, typer.Option(help="Kept with each new version")] = "",
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Register the views defined in TOML files: a new version where a definition changed."""
    from infra.cli import main as cli

    try:
        views = load_definitions(paths or [DEFAULT_DEFINITIONS])
    except BadDefinition as error:
        raise cli._usage(str(error), "PATHS") from None
    results = []
    with cli._calls():
        client = _client(ctx)
        for view in views:
            results.append(apply_view(client, view, dry_run=dry_run, reason=reason))
    if _json(ctx, json_output):
        cli._print_json(results)
        return
    for result in results:
        for line in apply_lines(result):
            cli._say(line)


@features_app.command("list")
def list_command(
    ctx: typer.Context, json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False
) -> None:
    """Registered feature views (the version in force)."""
    from infra.cli import main as cli

    with cli._calls():
        views = _client(ctx).call("GET", "/feature-views")["views"]
    _emit(ctx, views, views_table(views), json_output)


@features_app.command("show")
def show_command(
    ctx: typer.Context,
    view: str,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """A view's definition in force and its versions."""
    from infra.cli import main as cli

    with cli._calls():
        detail = _client(ctx).call("GET", f"/feature-views/{view}")
    if _json(ctx, json_output):
        cli._print_json(detail)
        return
    current = detail["view"]
    definition = current["definition"]
    cli._say(
        f"{definition['name']} v{current['version']} "
        f"(applied {current['applied_at']} by {current.get('applied_by') or '-'})"
    )
    cli._say(f"  {definition['description']}" if definition["description"] else "  (no description)")
    cli._say(
        f"  entity {definition['entity']['name']} ({definition['entity']['type']}), "
        f"owner {definition['owner']}"
    )
    source = definition["source"]
    cli._say(f"  source {source['format']} {source['path']} (event time: {source['event_timestamp']})")
    cli._say(
        f"  ttl {describe_seconds(definition['ttl'])}, freshness target "
        f"{describe_seconds(definition.get('freshness_target'))}, "
        f"schedule {describe_seconds(definition.get('schedule'))}"
    )
    table = Rows("feature", "type", ids=("feature",))
    for feature in definition["features"]:
        table.add_row(feature["name"], feature["type"])
    table.print(cli.out)
    cli._say("versions: " + ", ".join(f"v{v['version']} ({v['applied_at']})" for v in detail["versions"]))


@features_app.command(
    "materialize", epilog="Exit codes: 0 succeeded (or requested, without --wait), 1 failed or skipped."
)
def materialize_command(
    ctx: typer.Context,
    view: str,
    start: Annotated[
        str | None, typer.Option(help="Only rows at or after this event time (ISO 8601 with a zone)")
    ] = None,
    end: Annotated[
        str | None, typer.Option(help="Only rows at or before this event time (default: now)")
    ] = None,
    full: Annotated[bool, typer.Option(help="Read every source object again, not only new ones")] = False,
    wait: Annotated[bool, typer.Option(help="Follow the run until it ends")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds --wait waits", min=1)] = 600,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Materialize a view now: source objects not read before (or changed), in the window.

    --full reads every object in the window again (rows are still written only where newer
    than the stored ones)."""
    from infra.cli import main as cli

    with cli._calls():
        client = _client(ctx)
        run = request_run(client, view, start, end, full=full)
        if wait:
            run = wait_for(client, view, run["run_id"], timeout=timeout)
    if _json(ctx, json_output):
        cli._print_json(run)
    else:
        for line in run_lines(run):
            cli._say(line)
        if not wait:
            cli._say(f"follow it with: mlops features runs {view}")
    if run["status"] in ("failed", "skipped") or (wait and run["status"] != "succeeded"):
        raise typer.Exit(1)


@features_app.command("runs")
def runs_command(
    ctx: typer.Context,
    view: str,
    limit: Annotated[int, typer.Option(help="At most this many runs", min=1, max=100)] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """A view's materialization runs, newest first."""
    from infra.cli import main as cli

    with cli._calls():
        runs = _client(ctx).call(
            "GET", f"/feature-views/{view}/materializations", query={"limit": str(limit)}
        )["materializations"]
    table = Rows(
        "run", "trigger", "status", "rows read", "written", "unchanged", "rejected", "ms", ids=("run",)
    )
    for run in runs:
        table.add_row(
            run["run_id"],
            run["trigger"],
            run["status"],
            str(run["rows_read"]),
            str(run["items_written"]),
            str(run["items_unchanged"]),
            str(run["rows_rejected"]),
            str(run.get("duration_ms") or ""),
        )
    _emit(ctx, runs, table, json_output)


@features_app.command("freshness", epilog="Exit codes: 0 every view fresh, 1 a view with a target is stale.")
def freshness_command(
    ctx: typer.Context,
    view: Annotated[str | None, typer.Argument(help="One view (default: every view)")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Age of each view's newest row against its freshness target, and the share of rows past TTL."""
    from infra.cli import main as cli

    with cli._calls():
        client = _client(ctx)
        names = (
            [view]
            if view
            else [v["definition"]["name"] for v in client.call("GET", "/feature-views")["views"]]
        )
        reports = [client.call("GET", f"/feature-views/{name}/freshness") for name in names]
    _emit(ctx, reports, freshness_table(reports), json_output)
    if any(r["stale"] and r.get("freshness_target_seconds") is not None for r in reports):
        raise typer.Exit(1)


@features_app.command("get")
def get_command(
    ctx: typer.Context,
    view: str,
    entity_ids: Annotated[list[str], typer.Argument(help="One entity id, or up to 100")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Online features of entities (GET /features/{view}/{id}, or POST /features/{view} for several)."""
    from infra.cli import main as cli

    if len(entity_ids) > 100:
        raise cli._usage("at most 100 entity ids per call", "ENTITY_IDS")
    with cli._calls():
        answer = lookup(_client(ctx), view, entity_ids)
    del json_output  # the answer is JSON either way
    cli._print_json(answer)


@features_app.command(
    "training-set",
    epilog="Every label row is written, with a {view}__status column (ok, missing, expired) per view.",
)
def training_set_command(
    ctx: typer.Context,
    labels: Annotated[
        str,
        typer.Option(help="Labels CSV (entity id, event time, label): a file, or an S3 key under datasets/"),
    ],
    views: Annotated[str, typer.Option(help="Feature views to join, comma-separated")],
    out: Annotated[Path, typer.Option(help="Where to write the training set (CSV)", dir_okay=False)],
    entity_column: Annotated[
        str | None, typer.Option(help="The labels' entity id column (default: the first view's entity)")
    ] = None,
    timestamp_column: Annotated[str, typer.Option(help="The labels' time column")] = "event_timestamp",
    label_column: Annotated[str, typer.Option(help="The labels' label column")] = "label",
    definitions: Annotated[
        list[Path] | None,
        typer.Option(help="Read the views from these TOML files/folders, not from the stack"),
    ] = None,
    source: Annotated[
        list[str] | None, typer.Option(help="VIEW=FILE: read that view's source from a local file")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """A point-in-time training set, built here: for each label row, each view's latest row at
    or before its time (never after), expired past the view's TTL, missing if none.

    The same join as the training workflow's BuildTrainingSet. With --definitions and a
    --source for every view, no stack is needed.
    """
    from infra.cli import main as cli
    from infra.cli.client import Target
    from infra.cli.training_sets import (
        BadTrainingSetInput,
        LabelColumns,
        build_offline,
        parse_sources,
        read_labels_bytes,
        registered,
        report_lines,
        split_views,
    )
    from mlops_core.errors import Invalid, MlopsError, NotFound
    from mlops_core.storage.s3 import ArtifactStore

    stores: list[ArtifactStore] = []

    def store() -> ArtifactStore:  # the stack is looked up only if something is read from it
        if not stores:
            stack = ctx.find_root().params.get("stack")
            target = Target.deployed(stack) if stack else Target.local_stack()
            if not target.artifacts_bucket:
                raise BadTrainingSetInput("the stack has no ArtifactsBucketName output")
            stores.append(ArtifactStore(target.artifacts_bucket))
        return stores[0]

    try:
        names = split_views(views)
        local_sources = parse_sources(source or [])
        if definitions:
            defined = {v.name: v for v in load_definitions(definitions)}
            missing = [n for n in names if n not in defined]
            if missing:
                raise BadTrainingSetInput(
                    f"not defined in {', '.join(map(str, definitions))}: {', '.join(missing)}"
                )
            chosen: list[tuple[FeatureViewDefinition, int | None]] = [(defined[n], None) for n in names]
        else:
            with cli._calls():
                client = _client(ctx)
                chosen = [registered(client.call("GET", f"/feature-views/{n}")) for n in names]
        with cli._calls():
            data = read_labels_bytes(labels, store)
            training_set = build_offline(
                data,
                LabelColumns(entity_column, timestamp_column, label_column),
                chosen,
                local_sources,
                store,
            )
    except (BadTrainingSetInput, BadDefinition) as error:
        raise cli._usage(str(error), "--labels", "--views", "--source") from None
    except (Invalid, NotFound) as error:
        raise cli._usage(error.message, "--labels", "--views", "--source") from None
    except MlopsError as error:
        cli._error(error.message)
        raise typer.Exit(1) from None
    out.write_bytes(training_set.to_csv())
    report = training_set.report()
    if _json(ctx, json_output):
        cli._print_json(report.model_dump(mode="json") | {"out": str(out)})
        return
    lines, table = report_lines(training_set)
    for line in lines:
        cli._say(line)
    table.print(cli.out)
    cli._say(f"wrote {out}")
