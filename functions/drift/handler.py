"""Drift function: scheduled and on-demand drift runs.

Two kinds of event:

- **The schedule** (EventBridge ``Scheduled Event`` from the template's ``rate(5 minutes)``
  rule, ``DISPATCH_MINUTES``): every monitored model that is due runs, one after another,
  in this invocation (``mlops_core.monitoring.dispatch``); those left when less than
  ``DRIFT_RESERVE_SECONDS`` remains wait for the next tick (``DriftRunsDeferred``).
- **One run** ``{"model_name": "...", "run_id": "..."}`` (the drift API's asynchronous
  invocation for ``POST /models/{name}/drift-runs``, or a direct invocation; without
  ``run_id`` a new run is made).

A run's outcome is recorded whatever happens (``mlops_core.monitoring.runner``), so the
function raises only when it cannot record it (then Lambda's own retries of an
asynchronous invocation redo the run, which is idempotent). Metrics (EMF): ``DriftRuns``,
``DriftRunFailures``, ``DriftDetected`` (dimension ``service``, what the alarms watch), and
per model ``DriftShare`` and per feature ``FeatureDriftScore`` (effect size over its
threshold: 1 is the threshold).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_core.config.observability import make_tracer
from mlops_core.config.settings import DriftFunctionSettings
from mlops_core.feedback.capture_store import CaptureStore
from mlops_core.feedback.feedback_store import FeedbackStore
from mlops_core.monitoring.concept_hook import ConceptHook
from mlops_core.monitoring.concept_window import (
    CONCEPT_DRIFT_METRIC,
    ConceptStateRepository,
    ConceptWindowEvaluator,
)
from mlops_core.monitoring.dispatch import dispatch
from mlops_core.monitoring.records import RUN_ID_PATTERN, ConceptEvaluator, new_run_id
from mlops_core.monitoring.runner import DriftRunner, RunOutcome
from mlops_core.monitoring.service import MonitoringService
from mlops_core.registry.entities import MODEL_NAME_PATTERN
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
metrics = Metrics()
tracer = make_tracer()
settings = DriftFunctionSettings.from_environment()
table = MetadataTable(settings.metadata_table)
artifacts = ArtifactStore(settings.artifacts_bucket)
service = MonitoringService(table)
runner = DriftRunner(
    table, artifacts, CaptureStore(artifacts), publisher=EventPublisher(settings.event_bus_name)
)

#: The concept-drift hook (``mlops_core.monitoring.records.ConceptEvaluator``) given to every
#: run: the window's labelled feedback against the training baseline, and ADWIN over it.
concept: ConceptEvaluator | None = ConceptHook(
    ConceptWindowEvaluator(FeedbackStore(artifacts), ConceptStateRepository(table))
)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(pattern=MODEL_NAME_PATTERN)
    run_id: str | None = Field(None, pattern=RUN_ID_PATTERN)


def is_schedule(event: dict[str, Any]) -> bool:
    return event.get("source") == "aws.events" and event.get("detail-type") == "Scheduled Event"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if is_schedule(event):
        return run_due_models(context)
    try:
        request = RunRequest.model_validate(event)
    except ValidationError as error:
        # A malformed invocation cannot succeed on a retry: say why and end.
        problems = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in error.errors()]
        logger.error("not a drift run request", extra={"problems": problems})
        return {"error": "invalid_request", "detail": problems}
    run_id = request.run_id or new_run_id(datetime.now(UTC))
    outcome = runner.run(request.model_name, run_id, trigger="on_demand", concept=concept)
    record(outcome)
    return _answer(outcome)


def run_due_models(context: LambdaContext) -> dict[str, Any]:
    done = dispatch(
        service,
        runner,
        remaining_seconds=lambda: context.get_remaining_time_in_millis() / 1000,
        reserve_seconds=settings.reserve_seconds,
        concept=concept,
        on_outcome=record,
    )
    metrics.add_metric(name="DriftRunsDeferred", unit=MetricUnit.Count, value=len(done.deferred))
    if done.not_recorded:
        metrics.add_metric(name="DriftRunFailures", unit=MetricUnit.Count, value=len(done.not_recorded))
    logger.info(
        "dispatched",
        extra={
            "due": done.due,
            "ran": len(done.outcomes),
            "deferred": done.deferred,
            "not_recorded": done.not_recorded,
        },
    )
    return {
        "due": done.due,
        "ran": [_answer(outcome) for outcome in done.outcomes],
        "deferred": done.deferred,
        "not_recorded": done.not_recorded,
    }


def record(outcome: RunOutcome) -> None:
    """The run's metrics (once: a run that had ended already is not counted again)."""
    if not outcome.ran:
        return
    summary = outcome.summary
    metrics.add_metric(name="DriftRuns", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="DriftRunFailures", unit=MetricUnit.Count, value=1 if summary.status == "failed" else 0
    )
    metrics.add_metric(name="DriftDetected", unit=MetricUnit.Count, value=1 if summary.dataset_drift else 0)
    if summary.concept is not None:  # the concept-drift alarm watches this one
        concept_drifted = 1 if summary.concept.get("drifted") else 0
        metrics.add_metric(name=CONCEPT_DRIFT_METRIC, unit=MetricUnit.Count, value=concept_drifted)
    logger.info(
        "drift run",
        extra={
            "model_name": summary.model_name,
            "run_id": summary.run_id,
            "status": summary.status,
            "drifted_features": summary.drifted_features,
            "window_rows": summary.window_rows,
            "seconds": summary.seconds,
        },
    )
    if outcome.result is None:
        return
    model = {"model": summary.model_name}
    with single_metric(
        name="DriftShare", unit=MetricUnit.NoUnit, value=summary.drift_share, default_dimensions=model
    ) as per_model:
        per_model.add_metric(name="DriftDetected", unit=MetricUnit.Count, value=int(summary.dataset_drift))
        per_model.add_metric(name="DriftWindowRows", unit=MetricUnit.Count, value=summary.window_rows)
        if summary.concept is not None:
            drifted = int(bool(summary.concept.get("drifted")))
            per_model.add_metric(name=CONCEPT_DRIFT_METRIC, unit=MetricUnit.Count, value=drifted)
    for feature in outcome.result.features:
        if feature.p_value is None:
            continue
        with single_metric(
            name="FeatureDriftScore",
            unit=MetricUnit.NoUnit,
            value=feature.severity,
            default_dimensions={**model, "feature": feature.feature},
        ):
            pass


def _answer(outcome: RunOutcome) -> dict[str, Any]:
    summary = outcome.summary
    return {
        "model_name": summary.model_name,
        "run_id": summary.run_id,
        "status": summary.status,
        "drifted_features": summary.drifted_features,
        "message": summary.message,
    }
