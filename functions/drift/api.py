"""Drift API function (IAM-authenticated routes): a model's monitoring configuration, its
drift runs and their reports.

    PUT  /models/{name}/monitoring                     configure (422 and nothing saved if it cannot work)
    GET  /models/{name}/monitoring                     the configuration in force (defaults when unset)
    POST /models/{name}/drift-runs                     202: a run is recorded and handed to the drift function
    GET  /models/{name}/drift-runs                     the history, newest first
    GET  /models/{name}/drift-runs/{run_id}            one run: its summary and per-feature numbers
    GET  /models/{name}/drift-runs/{run_id}/report     the HTML report (or its JSON, format=json)
    GET  /models/{name}/drift                          the latest finished run and the recent history
    GET  /models/{name}/retraining                     the retraining loop's decisions, newest first
    GET  /models/{name}/retraining/{decision_id}       one decision, its training run and the version

``POST .../drift-runs`` records the run as ``running`` and invokes the drift function
asynchronously (``InvocationType=Event``): the answer comes at once and the run finishes in
its own invocation (up to 15 minutes); ``GET .../drift-runs/{run_id}`` follows it. If the
invocation cannot be queued the run is recorded as failed and the answer is 503.
"""

from http import HTTPStatus
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from mlops_core.config.observability import count_errors, make_tracer
from mlops_core.config.settings import DriftApiSettings
from mlops_core.errors import NotFound, Unavailable
from mlops_core.http import READ_ERRORS, WRITE_ERRORS, resolve, responses, rest_app
from mlops_core.monitoring.config import MonitoringConfig
from mlops_core.monitoring.entities import DriftResult
from mlops_core.monitoring.records import RUN_ID_PATTERN, DriftRunSummary
from mlops_core.monitoring.report import DriftReport, WindowFacts, report_key
from mlops_core.monitoring.service import DriftOverview, MonitoringService, MonitoringView
from mlops_core.registry.entities import MODEL_NAME_PATTERN
from mlops_core.retraining.entities import DECISION_ID_PATTERN, RetrainDecision
from mlops_core.retraining.views import RetrainDecisionView, RetrainingViews
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.lambda_invoke import AsyncInvoker
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
metrics = Metrics()
tracer = make_tracer()
app = rest_app(logger)

settings = DriftApiSettings.from_environment()
service = MonitoringService(MetadataTable(settings.metadata_table))
retraining = RetrainingViews(MetadataTable(settings.metadata_table))
reports = ArtifactStore(settings.artifacts_bucket)  # read-only here: drift-reports/
drift_function = AsyncInvoker(settings.drift_function_name)

ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN)]
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN)]
DecisionId = Annotated[str, Path(pattern=DECISION_ID_PATTERN)]


class RunStarted(BaseModel):
    model_name: str
    run_id: str
    status: str
    status_path: str = Field(description="GET it to follow the run")


class RunDetail(BaseModel):
    run: DriftRunSummary
    window: WindowFacts | None = Field(description="What was read: time range, rows, rows per version")
    result: DriftResult | None = Field(
        description="Per feature: test, statistic, p-value, corrected p-value, effect size, threshold, "
        "decision, by severity (null while running, or when the run ended before comparing)"
    )
    report_path: str | None = Field(description="The HTML report (GET), when the run wrote one")


def _actor() -> str | None:
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.caller or None


@app.put("/models/<name>/monitoring", responses=responses(WRITE_ERRORS))
def configure(
    name: ModelName,
    config: MonitoringConfig,
    expected_revision: Annotated[
        int | None, Query(ge=0, description="Change only if the configuration is at this revision (0: unset)")
    ] = None,
) -> MonitoringView:
    """Replace the model's monitoring configuration: schedule (every_minutes), window
    (window_hours, max_rows), drift tests and thresholds, concept and retraining settings.
    Omitted fields take their defaults."""
    return service.configure(name, config, actor=_actor(), expected_revision=expected_revision)


@app.get("/models/<name>/monitoring", responses=responses(READ_ERRORS))
def monitoring(name: ModelName) -> MonitoringView:
    return service.view(name)


@app.post("/models/<name>/drift-runs", responses=responses(WRITE_ERRORS, success=202, description="Started"))
def start_run(name: ModelName) -> Response[RunStarted]:
    """Run drift detection now (whether or not scheduled runs are enabled), with the model's
    configuration; follow it with GET /models/{name}/drift-runs/{run_id}."""
    run = service.start_run(name, trigger="on_demand")
    try:
        drift_function.invoke({"model_name": name, "run_id": run.run_id})
    except Unavailable as error:
        failed = run.model_copy(
            update={"status": "failed", "error": "not_started", "message": f"not started: {error.message}"}
        )
        service.repository.finish_run(failed)
        raise
    logger.info("drift run started", extra={"model_name": name, "run_id": run.run_id})
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=content_types.APPLICATION_JSON,
        body=RunStarted(
            model_name=name,
            run_id=run.run_id,
            status=run.status,
            status_path=f"/models/{name}/drift-runs/{run.run_id}",
        ),
    )


@app.get("/models/<name>/drift-runs", responses=responses(READ_ERRORS))
def list_runs(
    name: ModelName, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, list[DriftRunSummary]]:
    """The model's drift runs, newest first."""
    return {"runs": service.runs(name, limit=limit)}


@app.get("/models/<name>/drift-runs/<run_id>", responses=responses(READ_ERRORS))
def get_run(name: ModelName, run_id: RunId) -> RunDetail:
    run = service.get_run(name, run_id)
    report = _report(run)
    return RunDetail(
        run=run,
        window=report.window if report else None,
        result=report.result if report else None,
        report_path=f"/models/{name}/drift-runs/{run_id}/report" if report else None,
    )


_REPORT_RESPONSES = responses(READ_ERRORS) | {
    200: {
        "description": "The report: self-contained HTML (inline SVG plots, no script), or its JSON",
        "content": {"text/html": {"schema": {"type": "string"}}, "application/json": {"model": DriftReport}},
    }
}


@app.get("/models/<name>/drift-runs/<run_id>/report", responses=_REPORT_RESPONSES)
def get_report(
    name: ModelName,
    run_id: RunId,
    format: Annotated[Literal["html", "json"], Query(description="html (default) or json")] = "html",
) -> Response[str]:
    run = service.get_run(name, run_id)
    try:
        stored = reports.get(report_key(run, format))
    except NotFound:
        raise NotFound(f"drift run '{run_id}' has no report ({run.status})") from None
    content_type = "text/html; charset=utf-8" if format == "html" else content_types.APPLICATION_JSON
    return Response(status_code=200, content_type=content_type, body=stored.data.decode())


@app.get("/models/<name>/drift", responses=responses(READ_ERRORS))
def drift(name: ModelName, limit: Annotated[int, Query(ge=1, le=200)] = 20) -> DriftOverview:
    """The latest finished drift run and the history (newest first), with the configuration."""
    return service.overview(name, limit=limit)


@app.get("/models/<name>/retraining", responses=responses(READ_ERRORS))
def list_retraining(
    name: ModelName, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, list[RetrainDecision]]:
    """What the model's DriftDetected events led to (retraining switched on), newest first:
    a training run started (its id, dataset and counts) or skipped (the reason)."""
    return {"decisions": retraining.decisions(name, limit=limit)}


@app.get("/models/<name>/retraining/<decision_id>", responses=responses(READ_ERRORS))
def get_retraining(name: ModelName, decision_id: DecisionId) -> RetrainDecisionView:
    """One retraining decision with the training run it started (status, dataset, the gate's
    evaluation) and the version that run registered, as they are now."""
    return retraining.decision(name, decision_id)


def _report(run: DriftRunSummary) -> DriftReport | None:
    if run.status == "running" or run.window_start is None:
        return None
    try:
        return DriftReport.model_validate_json(reports.get(report_key(run, "json")).data)
    except NotFound:
        return None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = resolve(app, event, context)
    count_errors(metrics, response)
    return response
