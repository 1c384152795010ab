"""`mlops retrain`: what the retraining loop decided on a model's drift findings.

    mlops retrain list M [--limit N]     the decisions, newest first: started (the run) or skipped (why)
    mlops retrain show M DECISION_ID     one decision, its run's outcome and the version it registered

DECISION_ID may be ``latest`` (the newest decision). Retraining is switched on per model in
its monitoring configuration (``mlops drift configure M --file F``, ``retraining.enabled``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from infra.cli.client import ApiClient, ApiError
from infra.cli.drift import _cli as drift_cli
from infra.cli.tables import Rows

retrain_app = typer.Typer(help="The retraining loop's decisions on drift findings.", no_args_is_help=True)

LATEST = "latest"

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts), as `mlops --json ...`")]


def _cli() -> Any:
    """The `mlops` module whose helpers the commands use (the one `mlops drift` is bound to)."""
    return drift_cli()


def decisions_table(decisions: list[dict[str, Any]]) -> Rows:
    table = Rows(
        "decision",
        "at",
        "drift run",
        "kinds",
        "outcome",
        "training run",
        "reason",
        ids=("decision", "training run"),
    )
    for decision in decisions:
        table.add_row(
            decision["decision_id"],
            decision["at"],
            decision["drift_run_id"],
            ", ".join(decision["kinds"]),
            decision["outcome"],
            decision.get("run_id") or "",
            decision["reason"],
        )
    return table


def describe_decision(view: dict[str, Any]) -> list[str]:
    """A decision and what came of it, as lines."""
    decision, run = view["decision"], view.get("training_run")
    lines = [
        f"decision {decision['decision_id']} ({decision['at']}): {decision['outcome']}: {decision['reason']}",
        f"  from drift run {decision['drift_run_id']} ({', '.join(decision['kinds'])}), "
        f"event {decision['event_id']}",
    ]
    counts = decision.get("counts")
    if counts:
        skipped = ", ".join(f"{k} {v}" for k, v in counts["skipped"].items()) or "none"
        lines.append(
            f"  dataset {decision.get('dataset_key') or '-'}: {counts['rows']} rows ({counts['labelled']} "
            f"labelled of {counts['captured']} captured, {counts['training_rows']} of the training data; "
            f"left out: {skipped})"
        )
    if run is not None:
        status = (run.get("status") or "unknown") if run.get("found", True) else "no record yet"
        lines.append(f"  training run {run['run_id']}: {status}")
        evaluation = run.get("evaluation")
        if evaluation:
            lines.append(
                f"  gate: {'passed' if evaluation.get('passed') else 'refused'}: {evaluation.get('reason')}"
            )
        if run.get("failure"):
            lines.append(f"  failure: {run['failure']}")
    if view.get("registered_version") is not None:
        lines.append(
            f"  registered version {view['registered_version']} "
            f"(`mlops models card {decision['model_name']} {view['registered_version']}`)"
        )
    return lines


def resolve_decision_id(client: ApiClient, name: str, decision_id: str) -> str:
    """``latest``: the newest decision; anything else as it is."""
    if decision_id != LATEST:
        return decision_id
    newest = client.retraining_decisions(name, 1)
    if not newest:
        raise ApiError(404, {"message": f"model '{name}' has no retraining decision yet"})
    return str(newest[0]["decision_id"])


@retrain_app.command("list")
def list_decisions(
    name: str,
    limit: Annotated[int, typer.Option(help="Decisions to show", min=1, max=200)] = 50,
    json_output: JsonFlag = False,
) -> None:
    """The model's retraining decisions, newest first (GET /models/{name}/retraining)."""
    cli = _cli()

    with cli._calls():
        decisions = cli._client().retraining_decisions(name, limit)
    if cli._as_json(json_output):
        cli._print_json({"decisions": decisions})
    elif not decisions:
        cli._say(f"no retraining decision for {name} (retraining is switched on in `mlops drift configure`)")
    else:
        decisions_table(decisions).print(cli.out)


@retrain_app.command("show")
def show_decision(
    name: str,
    decision_id: Annotated[str, typer.Argument(help="A decision id, or `latest`")],
    json_output: JsonFlag = False,
) -> None:
    """One decision with its training run's outcome and the version it registered."""
    cli = _cli()

    with cli._calls():
        client = cli._client()
        view = client.retraining_decision(name, resolve_decision_id(client, name, decision_id))
    if cli._as_json(json_output):
        cli._print_json(view)
    else:
        for line in describe_decision(view):
            cli._say(line)
