"""Inference function: ``POST /models/{name}/predict`` and ``GET /health``.

Thin entry point: parse and validate the request, call ``mlops_core.serving.predictor`` and map
errors. Imports numpy, onnxruntime, pydantic and Powertools only; scikit-learn and
scipy never load here.
"""

import gc

# Cold start: the imports below create some 400k long-lived objects, and the cyclic GC
# would walk them again and again while they load (~30 ms here). Collection resumes at
# the end of this module, with everything created so far frozen out of later collections.
gc.disable()

import os
import time
from typing import Annotated, Any, Literal

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, WithJsonSchema

from mlops_core.config.observability import count_errors, make_tracer
from mlops_core.config.settings import inference_settings
from mlops_core.errors import IntegrityError, Invalid, MlopsError, detail
from mlops_core.features.online import MAX_KEYS_PER_READ, OnlineStore
from mlops_core.http import resolve, responses, rest_app
from mlops_core.registry.entities import ALIAS_PATTERN, MODEL_NAME_PATTERN, PRODUCTION, ModelVersion
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.routing.repository import RoutingRepository
from mlops_core.serving.capture import capture_lines, emit, error_line, prediction_ids
from mlops_core.serving.entity_features import Assembled, EntityFeatures
from mlops_core.serving.predictor import Predictor, RoutedBy
from mlops_core.serving.routing_cache import RoutingCache
from mlops_core.storage import clients
from mlops_core.storage.dynamo import KeyedTable, MetadataTable
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
# Its only AWS calls are signed reads over http.client: X-Ray patches just that.
tracer = make_tracer(patch_modules=("httplib",))
metrics = Metrics(namespace="ServerlessMLOps")
app = rest_app(logger)

settings = inference_settings()

#: A feature value as sent; checked against the signature by ``instances_to_matrix``, which
#: names the feature and what it needs (a list or an object here is "must be a number, got list").
Value = Annotated[
    Any,
    WithJsonSchema({"anyOf": [{"type": kind} for kind in ("number", "boolean", "string", "null")]}),
]


def _row_kind(row: Any) -> str | None:
    return "list" if isinstance(row, list) else "object" if isinstance(row, dict) else None


#: One row: a list in feature order or an object by feature name (rows of a request may mix
#: them). Tagged, so that a row that is neither gets one precise error at its index.
Row = Annotated[
    Annotated[list[Value], Tag("list")] | Annotated[dict[str, Value], Tag("object")],
    Discriminator(
        _row_kind,
        custom_error_type="instance_type",
        custom_error_message="an instance is a list of values or an object of features",
    ),
]


EntityId = Annotated[str | int, Field(union_mode="left_to_right")]


class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    instances: list[Row] | None = Field(
        default=None,
        description=(
            "Rows to score: lists of values in the signature's feature order, or objects keyed by "
            f"feature name. At most {settings.max_batch_size} per call. With entity_ids: one object per "
            "row holding only the request-time inputs (those no feature view feeds)."
        ),
        examples=[
            [[17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871]],
            [{"mean_radius": 17.99, "mean_texture": 10.38, "...": "one key per signature feature"}],
        ],
    )
    request_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description=(
            "A stable id of the caller's subject (a user or session id): under a split policy the "
            "same key always gets the same version. Recorded with the prediction."
        ),
        examples=["user-4711"],
    )
    entity_ids: list[dict[Annotated[str, Field(max_length=128)], EntityId]] | None = Field(
        default=None,
        min_length=1,
        description=(
            "Predict by entity id: per row, {feature view name or its entity key: id}. The features the "
            "signature's feature_views name are read from the online store (one BatchGetItem for the "
            f"request: at most {MAX_KEYS_PER_READ} distinct (view, entity) keys), in signature order; "
            "missing or stale ones follow the model's feature policy."
        ),
        examples=[[{"tumour_measurements": 1}, {"patient_id": 2}]],
    )


class EntityServedModel(BaseModel):
    view: str
    entity_id: str = Field(description="As the store keys it (an int64 id in canonical form)")
    served: Literal["online", "stale", "defaulted"] = Field(
        description="online: fresh values; stale: values past the view's TTL served (policy serve); "
        "defaulted: the policy's defaults served"
    )
    reason: Literal["missing", "stale"] | None = None
    age_seconds: float | None = Field(default=None, description="Age of the online row (null: no row)")
    defaulted: list[str] = Field(default_factory=list, description="The inputs given their default")


class PredictResponse(BaseModel):
    model_name: str
    model_version: int = Field(description="The version that answered: the variant feedback is credited to")
    alias: str | None = Field(
        description="The alias that was resolved; null when a version answered directly"
    )
    routed_by: RoutedBy = Field(
        description="How the version was chosen: the alias or version you asked for, the model's routing "
        "policy (single, split, bandit), or fallback (the policy's version was refused; production answered)"
    )
    policy_revision: int | None = Field(
        description="Revision of the routing policy that decided (0: the default policy); null when you "
        "named an alias or a version"
    )
    prediction_ids: list[str]
    predictions: list[Any]
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    entities: list[list[EntityServedModel]] | None = Field(
        default=None,
        description="With entity_ids: per row, per feature view, the entity read and how it was served",
    )


def _record_integrity_failure(version: ModelVersion, error: IntegrityError) -> None:
    logger.error(
        "artifact refused",
        extra={"model": version.model_name, "version": version.version, "reason": error.message},
    )
    metrics.add_metric(name="ArtifactIntegrityFailures", unit=MetricUnit.Count, value=1)


metadata = MetadataTable(settings.metadata_table)
predictor = Predictor(
    RegistryLookup(metadata),
    ArtifactStore(settings.artifacts_bucket),
    alias_ttl=settings.alias_cache_ttl_seconds,
    cache_size=settings.model_cache_size,
    max_batch_size=settings.max_batch_size,
    on_integrity_failure=_record_integrity_failure,
    routing=RoutingCache(RoutingRepository(metadata), ttl=settings.alias_cache_ttl_seconds),
)
entity_features = (
    EntityFeatures(OnlineStore(KeyedTable(settings.features_table, what="online feature store")))
    if settings.features_table
    else None
)


@app.get("/health", responses=responses(()))
def health() -> dict[str, Any]:
    return {"status": "ok", "loaded_models": predictor.loaded_count}


@app.post("/models/<name>/predict", responses=responses((400, 403, 404, 415, 422, 429, 503)))
@tracer.capture_method
def predict(
    name: Annotated[str, Path(pattern=MODEL_NAME_PATTERN, max_length=128)],
    request: PredictRequest,
    alias: Annotated[
        str | None,
        Query(
            pattern=ALIAS_PATTERN,
            max_length=64,
            description="Serve this alias, bypassing the model's routing policy (default: the policy)",
        ),
    ] = None,
    version: Annotated[
        int | None, Query(ge=1, description="Serve exactly this version, bypassing routing (not with alias)")
    ] = None,
) -> PredictResponse:
    if alias is not None and version is not None:
        raise Invalid(
            "give alias or version, not both",
            details=[detail(["query", "version"], "alias and version are mutually exclusive", "exclusive")],
        )
    if request.instances is None and request.entity_ids is None:
        raise Invalid(
            "send instances, entity_ids, or both",
            details=[detail(["body", "instances"], "instances or entity_ids is required", "missing")],
        )
    started = time.perf_counter()
    choice = predictor.choose(name, alias=alias, version=version, key=request.request_key)
    # This call loaded the version it serves (the first call of a container to it).
    model_load_ms = round(choice.model.load_ms, 3) if choice.model.loaded_at >= started else None
    assembled: Assembled | None = None
    try:
        if request.entity_ids is not None:
            if entity_features is None:
                raise Invalid("this deployment has no online feature store: send instances")
            assembled = entity_features.assemble(
                choice.model.version.signature,
                request.entity_ids,
                request.instances,
                predictor.feature_policy(name),
                model=f"model '{name}' v{choice.model.version.version}",
                max_rows=settings.max_batch_size,
            )
            result = predictor.score(choice, assembled.rows)
        else:
            result = predictor.score(choice, request.instances or [])
    except Exception as error:
        # Counted against the chosen version: a candidate that cannot score what callers
        # send trips its rollout's error-rate guardrail.
        emit(
            [
                error_line(
                    model_name=name,
                    model_version=choice.model.version.version,
                    routed_by=choice.routed_by,
                    policy_revision=choice.policy_revision,
                    error=type(error).__name__,
                    at_ms=int(time.time() * 1000),
                    latency_ms=(time.perf_counter() - started) * 1000,
                    request_id=app.lambda_context.aws_request_id,
                    model_load_ms=model_load_ms,
                )
            ]
        )
        raise
    elapsed_ms = (time.perf_counter() - started) * 1000
    metrics.add_dimension(name="ModelName", value=name)
    metrics.add_metric(name="PredictionLatency", unit=MetricUnit.Milliseconds, value=elapsed_ms)
    metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=len(result.predictions))
    metrics.add_metadata(key="model_version", value=result.model_version)
    metrics.add_metadata(key="routed_by", value=result.routed_by)
    logger.append_keys(model=name, model_version=result.model_version)
    ids = prediction_ids(len(result.predictions))
    # One log line per request: the capture function records it (no AWS call here).
    emit(
        capture_lines(
            model_name=result.model_name,
            model_version=result.model_version,
            alias=result.alias,
            features=result.features,
            prediction_ids=ids,
            inputs=result.inputs,
            predictions=result.predictions,
            probabilities=result.probabilities,
            request_id=app.lambda_context.aws_request_id,
            at_ms=int(time.time() * 1000),
            routed_by=result.routed_by,
            policy_revision=result.policy_revision,
            request_key=request.request_key,
            shadow_version=result.shadow_version,
            latency_ms=round(elapsed_ms, 3),
            model_load_ms=model_load_ms,
            entity_ids=assembled.entity_ids if assembled else None,
            served=[{e.view: e.served for e in row} for row in assembled.served] if assembled else None,
        )
    )
    return PredictResponse(
        model_name=result.model_name,
        model_version=result.model_version,
        alias=result.alias,
        routed_by=result.routed_by,
        policy_revision=result.policy_revision,
        prediction_ids=ids,
        predictions=result.shown_predictions,
        probabilities=result.probabilities,
        classes=result.shown_classes,
        entities=[[EntityServedModel(**vars(e)) for e in row] for row in assembled.served]
        if assembled
        else None,
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = resolve(app, event, context)
    count_errors(metrics, response)
    return response


# ---- Lambda SnapStart (a deploy option: hooks registered only when running under it) -------

_snapshot_clock: list[float] = []


def _warm_before_snapshot() -> None:
    """Once, before the snapshot: create the readers and open the production version of each
    model named in SNAPSTART_MODELS (comma-separated), so that every environment restored
    from the snapshot answers its first prediction without reading or loading it."""
    clients.reader("dynamodb")
    clients.reader("s3")
    for name in filter(None, (part.strip() for part in os.environ.get("SNAPSTART_MODELS", "").split(","))):
        try:
            predictor.model_for(name, PRODUCTION)
        except MlopsError as error:  # not registered yet, say: that must not fail the deployment
            logger.warning("model not preloaded", extra={"model": name, "reason": error.message})
    _snapshot_clock.append(predictor.clock())


def _refresh_after_restore() -> None:
    """In each restored environment: aliases are read again on first use (they may have moved
    since the snapshot); loaded versions are immutable and kept. The monotonic clock need not
    count the time spent in the snapshot, so the predictor's clock is moved past every entry
    it stamped before it, by one alias TTL."""
    clock = predictor.clock
    offset = predictor.alias_ttl + max(0.0, (_snapshot_clock[-1] if _snapshot_clock else 0.0) - clock())
    predictor.clock = lambda: clock() + offset


clients.register_snapstart_hooks(_warm_before_snapshot, _refresh_after_restore)

gc.freeze()
gc.enable()
