"""Materialize function: the feature store's control plane, and its materializer.

Three triggers, one function (one role):

- **API Gateway** (IAM routes): ``GET /feature-views``, ``PUT|GET /feature-views/{view}``
  (``mlops features apply`` / ``show``), ``POST|GET /feature-views/{view}/materializations``
  (an on-demand run is recorded and answered 202; it runs asynchronously, see below),
  ``GET /feature-views/{view}/materializations/{run_id}``, ``GET /feature-views/{view}/freshness``;
- **the template's schedule** (``Scheduled Event``, every 5 minutes): every scheduled view
  that is due is materialized, then every view's freshness is emitted as metrics;
- **FeatureMaterializationRequested** (the project's bus, a rule): the on-demand run.

A run whose chosen source objects are larger than ``MATERIALIZE_SINGLE_RUN_MAX_BYTES`` is
handed to the partitioned workflow (``partition.py`` per object, ``finish.py`` at the end).

Thin entry point over ``mlops_core.features.service``.
"""

from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlops_core.config.observability import count_errors, make_tracer
from mlops_core.config.settings import MaterializeSettings
from mlops_core.errors import Invalid, NotFound, detail
from mlops_core.features.entities import (
    VIEW_NAME_PATTERN,
    ApplyResult,
    FeatureViewDefinition,
    Freshness,
    MaterializationRecord,
    StoredFeatureView,
)
from mlops_core.features.events import FeatureMaterializationRequested
from mlops_core.features.online import OnlineStore
from mlops_core.features.partitions import PartitionedRuns
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.features.run_metrics import NAMESPACE, emit_run, view_metric
from mlops_core.features.service import RUN_ID_PATTERN, DispatchReport, FeatureStoreService, record_summary
from mlops_core.http import READ_ERRORS, WRITE_ERRORS, resolve, responses, rest_app
from mlops_core.registry.repository import RegistryRepository
from mlops_core.storage.dynamo import KeyedTable, MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import MaterializationWorkflow

logger = Logger()
tracer = make_tracer()
metrics = Metrics(namespace=NAMESPACE)
app = rest_app(logger)

settings = MaterializeSettings.from_environment()
service = FeatureStoreService(
    FeatureViewRepository(MetadataTable(settings.metadata_table)),
    OnlineStore(KeyedTable(settings.features_table, what="online feature store")),
    ArtifactStore(settings.artifacts_bucket),
    publisher=EventPublisher(settings.event_bus_name),
    workers=settings.write_workers,
    conditional_writes=settings.conditional_writes,
    # apply refuses a definition that breaks a registered version's signature
    registry=RegistryRepository(MetadataTable(settings.metadata_table)),
    # a run whose chosen objects exceed one function's memory goes to the Distributed Map
    partitions=PartitionedRuns(
        MaterializationWorkflow(settings.partition_state_machine_arn)
        if settings.partition_state_machine_arn
        else None,
        single_run_max_bytes=settings.single_run_max_bytes,
    ),
)

ViewName = Annotated[str, Path(pattern=VIEW_NAME_PATTERN, max_length=63)]
RunId = Annotated[str, Path(pattern=RUN_ID_PATTERN)]


class ApplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    definition: FeatureViewDefinition
    dry_run: bool = Field(default=False, description="Only say what would change")
    reason: str = Field(default="", max_length=1000, description="Kept with the version")


class ViewDetail(BaseModel):
    view: StoredFeatureView
    versions: list[StoredFeatureView] = Field(description="Every version applied, newest first")


class MaterializeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: datetime | None = Field(default=None, description="Only rows with an event time at or after this")
    end: datetime | None = Field(
        default=None, description="Only rows with an event time at or before this (default: now)"
    )
    full: bool = Field(
        default=False,
        description="Read every source object in the window again, even those read before and unchanged "
        "(rows still written only where newer than the stored ones)",
    )

    @field_validator("start", "end")
    @classmethod
    def _with_zone(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (e.g. 2026-12-01T00:00:00Z)")
        return value


def _actor() -> str | None:
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.caller or None


@app.get("/feature-views", responses=responses((403, 503)))
def list_views() -> dict[str, list[StoredFeatureView]]:
    return {"views": service.list_views()}


@app.put("/feature-views/<view>", responses=responses(WRITE_ERRORS))
@tracer.capture_method
def apply_view(view: ViewName, request: ApplyRequest) -> ApplyResult:
    if request.definition.name != view:
        raise Invalid(
            f"the path names view {view} but the definition is {request.definition.name}",
            details=[
                detail(["body", "definition", "name"], f"must be {view!r}, as in the path", "value_error")
            ],
        )
    return service.apply(request.definition, actor=_actor(), reason=request.reason, dry_run=request.dry_run)


@app.get("/feature-views/<view>", responses=responses(READ_ERRORS))
def get_view(view: ViewName) -> ViewDetail:
    stored = service.get(view)
    return ViewDetail(view=stored, versions=service.views.versions(view))


@app.post(
    "/feature-views/<view>/materializations",
    responses=responses(WRITE_ERRORS, success=202, description="Requested: poll the run"),
)
@tracer.capture_method
def request_materialization(view: ViewName, request: MaterializeRequest) -> Response[MaterializationRecord]:
    start = None if request.start is None else int(request.start.timestamp() * 1000)
    end = None if request.end is None else int(request.end.timestamp() * 1000)
    if start is not None and end is not None and start > end:
        raise Invalid(
            "start is after end",
            details=[detail(["body", "start"], "must be at or before end", "value_error")],
        )
    record = service.request_materialization(view, start_ms=start, end_ms=end, full=request.full)
    return Response(
        status_code=HTTPStatus.ACCEPTED.value, content_type=content_types.APPLICATION_JSON, body=record
    )


@app.get("/feature-views/<view>/materializations", responses=responses(READ_ERRORS))
def list_materializations(
    view: ViewName, limit: Annotated[int, Query(ge=1, le=100)] = 20
) -> dict[str, list[MaterializationRecord]]:
    service.get(view)
    return {"materializations": service.views.records(view, limit=limit)}


@app.get("/feature-views/<view>/materializations/<run_id>", responses=responses(READ_ERRORS))
def get_materialization(view: ViewName, run_id: RunId) -> MaterializationRecord:
    record = service.views.record(view, run_id)
    if record is None:
        raise NotFound(f"materialization {run_id} of feature view {view} not found")
    return record


@app.get("/feature-views/<view>/freshness", responses=responses(READ_ERRORS))
def get_freshness(view: ViewName) -> Freshness:
    return service.freshness(view)


# ---- the schedule and the bus --------------------------------------------------------------
def _emit_freshness(report: DispatchReport) -> None:
    stale = 0
    for fresh in report.freshness:
        view_metric(fresh.view, "FeatureExpiredShare", MetricUnit.Percent, 100 * fresh.expired_share)
        view_metric(fresh.view, "FeatureEntities", MetricUnit.Count, fresh.entities)
        if fresh.age_seconds is not None:
            view_metric(fresh.view, "FeatureAgeSeconds", MetricUnit.Seconds, fresh.age_seconds)
        if fresh.freshness_target_seconds is not None and fresh.stale:
            stale += 1
    # The alarm's metric (no per-view dimension: views are data, the alarm is in the template).
    metrics.add_metric(name="StaleFeatureViews", unit=MetricUnit.Count, value=stale)
    logger.info(
        "freshness",
        extra={
            "stale_views": stale,
            "views": [
                f.model_dump(include={"view", "age_seconds", "stale", "expired_share"})
                for f in report.freshness
            ],
        },
    )


def _on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    kind = event.get("detail-type")
    if kind == "Scheduled Event":
        report = service.dispatch(time_left_s=lambda: context.get_remaining_time_in_millis() / 1000)
        for record in report.runs:
            emit_run(record, logger)
        _emit_freshness(report)
        return {
            "runs": [record_summary(r) for r in report.runs],
            "busy": report.busy,
            "left_for_later": report.left_for_later,
        }
    if kind == FeatureMaterializationRequested.detail_type():
        requested = FeatureMaterializationRequested.model_validate(event.get("detail") or {})
        ran = service.run_requested(requested.view, requested.run_id)
        if ran is None:
            logger.info("materialization already claimed", extra={"run_id": requested.run_id})
            return {"run_id": requested.run_id, "status": "already_claimed"}
        emit_run(ran, logger)
        return record_summary(ran)
    logger.warning("ignored an event of an unknown kind", extra={"detail_type": kind})
    return {"ignored": kind}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "httpMethod" not in event:
        return _on_event(event, context)
    response = resolve(app, event, context)
    count_errors(metrics, response)
    return response
