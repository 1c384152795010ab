"""Feature lookup function: online features by entity id (API key, like predict).

    GET  /features/{view}/{entity_id}     one entity: values, event time, age, stale
    POST /features/{view}                 {"entity_ids": [...]}: up to 100 in one BatchGetItem

Thin entry point over ``mlops_core.features.lookup``. Unknown view or entity -> 404; an entity
id that is not of the view's key type -> 422. Reads are signed HTTPS requests
(``mlops_core.storage.signed_reads``): botocore is never imported, and a warm lookup is one
DynamoDB round trip.
"""

from typing import Annotated, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from mlops_core.config.observability import count_errors, make_tracer
from mlops_core.config.settings import FeatureLookupSettings
from mlops_core.features.entities import VIEW_NAME_PATTERN
from mlops_core.features.lookup import (
    MAX_ENTITIES_PER_CALL,
    BatchLookupResult,
    FeatureLookup,
    FeatureLookupResult,
)
from mlops_core.features.online import OnlineStore
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.http import resolve, responses, rest_app
from mlops_core.storage.dynamo import KeyedTable, MetadataTable

logger = Logger()
tracer = make_tracer(patch_modules=("httplib",))
metrics = Metrics(namespace="ServerlessMLOps")
app = rest_app(logger)

settings = FeatureLookupSettings.from_environment()
lookup = FeatureLookup(
    FeatureViewRepository(MetadataTable(settings.metadata_table)),
    OnlineStore(KeyedTable(settings.features_table, what="online feature store")),
    cache_ttl_seconds=settings.view_cache_ttl_seconds,
)

ViewName = Annotated[str, Path(pattern=VIEW_NAME_PATTERN, max_length=63)]
EntityId = Annotated[str, Path(min_length=1, max_length=1024)]


class BatchGetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_ids: list[str | int] = Field(
        min_length=1,
        max_length=MAX_ENTITIES_PER_CALL,
        description=f"1 to {MAX_ENTITIES_PER_CALL} entity ids (strings, or integers for an int64 key)",
        examples=[["842302", "842517"]],
    )


@app.get("/features/<view>/<entity_id>", responses=responses((403, 404, 422, 429, 503)))
@tracer.capture_method
def get_features(view: ViewName, entity_id: EntityId) -> FeatureLookupResult:
    result = lookup.get(view, entity_id)
    metrics.add_metric(name="FeatureLookups", unit="Count", value=1)
    if result.stale:
        metrics.add_metric(name="StaleFeatureLookups", unit="Count", value=1)
    return result


@app.post("/features/<view>", responses=responses((400, 403, 404, 415, 422, 429, 503)))
@tracer.capture_method
def batch_get_features(view: ViewName, request: BatchGetRequest) -> BatchLookupResult:
    result = lookup.batch(view, [str(e) for e in request.entity_ids])
    metrics.add_metric(name="FeatureLookups", unit="Count", value=len(result.results))
    stale = sum(1 for r in result.results if r.stale)
    if stale:
        metrics.add_metric(name="StaleFeatureLookups", unit="Count", value=stale)
    return result


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = resolve(app, event, context)
    count_errors(metrics, response)
    return response
