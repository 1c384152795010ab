"""Registry function: models, versions and aliases (IAM-authenticated routes).

Thin entry point over ``mlops_core.registry.service``. The caller's IAM principal, taken from
the request context, is recorded as the actor of every write.
"""

from http import HTTPStatus
from typing import Annotated, Any, Literal, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from mlops_core.config.observability import count_errors, make_tracer
from mlops_core.config.settings import EventSettings
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.features.usage import FeatureViewResolver
from mlops_core.http import READ_ERRORS, WRITE_ERRORS, resolve, responses, rest_app
from mlops_core.registry.entities import (
    ALIAS_PATTERN,
    MODEL_NAME_PATTERN,
    Alias,
    AuditRecord,
    FeaturePolicy,
    ModelVersion,
    PromotionPolicy,
    RegisteredModel,
    RegisterVersionRequest,
    Tags,
)
from mlops_core.registry.model_card import ModelCard, render_markdown
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.history import DEFAULT_LIMIT, MAX_LIMIT, RoutingHistory
from mlops_core.routing.policy import RoutingPolicy
from mlops_core.routing.service import RoutingService, RoutingSummary
from mlops_core.routing.state import StoredRouting
from mlops_core.serving.sessions import load_session
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.tracking import RunTracker

logger = Logger()
tracer = make_tracer()
metrics = Metrics(namespace="ServerlessMLOps")
app = rest_app(logger)

settings = EventSettings.from_environment()
table = MetadataTable(settings.metadata_table)
store = ArtifactStore(settings.artifacts_bucket)
publisher = EventPublisher(settings.event_bus_name)
registry = ModelRegistry(
    table,
    store,
    publisher,
    runs=RunTracker(table).get_with_candidates,
    feature_views=FeatureViewResolver(FeatureViewRepository(table)),
)
routing = RoutingService(table, registry=registry, publisher=publisher)

T = TypeVar("T", bound=BaseModel)
ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, max_length=128)]
AliasName = Annotated[str, Path(pattern=ALIAS_PATTERN, max_length=64)]
VersionNumber = Annotated[int, Path(ge=1)]


class CreateModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    tags: Tags = Field(default_factory=dict, max_length=50)


class SetAliasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    expected_revision: int | None = Field(
        default=None, ge=0, description="Move only if the alias is still at this revision (0: must not exist)"
    )
    reason: str = Field(default="", max_length=1000, description="Recorded in the audit trail")


class PromoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(default="production", pattern=ALIAS_PATTERN)
    expected_revision: int | None = Field(
        default=None, ge=0, description="Move only if the alias is still at this revision (0: must not exist)"
    )
    reason: str = Field(default="", max_length=1000, description="Recorded in the audit trail")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alias: str = Field(default="production", pattern=ALIAS_PATTERN)
    expected_revision: int | None = Field(default=None, ge=1)
    reason: str = Field(default="", max_length=1000)


class UpdateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, max_length=2000)
    tags: Tags | None = Field(default=None, max_length=50)


class SetRoutingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: RoutingPolicy = Field(
        description="single (an alias or a version), split (weights over versions) or bandit "
        "(Thompson sampling over versions); any of them with an optional shadow version",
        examples=[
            {"type": "split", "weights": [{"version": 3, "weight": 0.9}, {"version": 4, "weight": 0.1}]},
            {"type": "bandit", "versions": [3, 4], "discount": 0.999, "min_exploration": 0.05},
            {"type": "single", "alias": "production", "shadow": 5},
        ],
    )
    expected_revision: int | None = Field(
        default=None, ge=0, description="Change only if the policy in force has this revision (0: none)"
    )
    reason: str = Field(default="", max_length=1000, description="Recorded in the audit trail")


class ModelDetail(BaseModel):
    model: RegisteredModel
    aliases: list[Alias]


def _actor() -> str | None:
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.caller or None


def _created(body: T) -> Response[T]:
    return Response(
        status_code=HTTPStatus.CREATED.value, content_type=content_types.APPLICATION_JSON, body=body
    )


@app.get("/models", responses=responses((403, 503)))
def list_models() -> dict[str, list[RegisteredModel]]:
    return {"models": registry.list_models()}


@app.post("/models", responses=responses(WRITE_ERRORS, success=201, description="Created"))
def create_model(request: CreateModelRequest) -> Response[RegisteredModel]:
    model = registry.create_model(
        request.name, description=request.description, tags=request.tags, owner=_actor()
    )
    return _created(model)


@app.get("/models/<name>", responses=responses(READ_ERRORS))
def get_model(name: ModelName) -> ModelDetail:
    return ModelDetail(model=registry.get_model(name), aliases=registry.list_aliases(name))


@app.get("/models/<name>/versions", responses=responses(READ_ERRORS))
def list_versions(
    name: ModelName, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, list[ModelVersion]]:
    return {"versions": registry.list_versions(name, limit=limit)}


@app.post("/models/<name>/versions", responses=responses(WRITE_ERRORS, success=201, description="Registered"))
@tracer.capture_method
def register_version(name: ModelName, request: RegisterVersionRequest) -> Response[ModelVersion]:
    version = registry.register_version(name, request, actor=_actor(), validate_model=load_session)
    logger.info("version registered", extra={"model": name, "version": version.version})
    return _created(version)


@app.get("/models/<name>/versions/<version>", responses=responses(READ_ERRORS))
def get_version(name: ModelName, version: VersionNumber) -> ModelVersion:
    return registry.get_version(name, version)


@app.get("/models/<name>/aliases/<alias>", responses=responses(READ_ERRORS))
def get_alias(name: ModelName, alias: AliasName) -> Alias:
    return registry.get_alias(name, alias)


@app.put("/models/<name>/aliases/<alias>", responses=responses(WRITE_ERRORS))
def set_alias(name: ModelName, alias: AliasName, request: SetAliasRequest) -> Alias:
    return registry.set_alias(
        name,
        alias,
        request.version,
        expected_revision=request.expected_revision,
        actor=_actor(),
        reason=request.reason,
    )


@app.post("/models/<name>/versions/<version>/promote", responses=responses(WRITE_ERRORS))
def promote_version(name: ModelName, version: VersionNumber, request: PromoteRequest) -> Alias:
    """Point an alias (production by default) at this version, under the model's policy."""
    return registry.move_alias(
        name,
        request.alias,
        version,
        expected_revision=request.expected_revision,
        actor=_actor(),
        reason=request.reason,
    )


@app.post("/models/<name>/rollback", responses=responses(WRITE_ERRORS))
def rollback(name: ModelName, request: RollbackRequest) -> Alias:
    """Move an alias (production by default) back to the version it named before."""
    return registry.rollback(
        name,
        request.alias,
        expected_revision=request.expected_revision,
        actor=_actor(),
        reason=request.reason,
    )


@app.get("/models/<name>/audit", responses=responses(READ_ERRORS))
def audit_trail(
    name: ModelName, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, list[AuditRecord]]:
    return {"audit": registry.list_audit(name, limit=limit)}


@app.get("/models/<name>/feature-policy", responses=responses(READ_ERRORS))
def get_feature_policy(name: ModelName) -> FeaturePolicy:
    """What predictions by entity id do with missing or stale online features (default: refuse)."""
    return registry.get_model(name).feature_policy


@app.put("/models/<name>/feature-policy", responses=responses(WRITE_ERRORS))
def set_feature_policy(name: ModelName, policy: FeaturePolicy) -> FeaturePolicy:
    """Replace the model's feature policy (audited; warm inference containers read it within the
    alias cache's TTL): missing refuse|default, stale refuse|serve|default, defaults by input."""
    return registry.set_feature_policy(name, policy, actor=_actor()).feature_policy


@app.put("/models/<name>/policy", responses=responses(WRITE_ERRORS))
def set_policy(name: ModelName, policy: PromotionPolicy) -> RegisteredModel:
    return registry.set_policy(name, policy, actor=_actor())


@app.get("/models/<name>/routing", responses=responses(READ_ERRORS))
def routing_summary(name: ModelName) -> RoutingSummary:
    """The routing policy in force and what each variant has served and earned: requests,
    feedback, reward rate, the Beta posterior (mean, 95% credible interval, P(best)), and
    the policy's history."""
    return routing.summary(name)


@app.get("/models/<name>/routing/history", responses=responses(READ_ERRORS))
def routing_history(
    name: ModelName,
    since: Annotated[
        str | None, Query(description="Buckets starting at or after this ISO 8601 time (UTC)", max_length=40)
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=MAX_LIMIT, description="The newest buckets, at most")
    ] = DEFAULT_LIMIT,
) -> RoutingHistory:
    """Traffic share and posterior per variant over time, oldest bucket first: per time bucket
    (5 minutes) each version's predictions, calls, errors, shadow rows, feedback, its share of
    the bucket's predictions, and its Beta posterior (mean, 90% credible interval) at the
    bucket's end."""
    return routing.routing_history(name, since=since, limit=limit)


@app.put("/models/<name>/routing", responses=responses(WRITE_ERRORS))
def set_routing(name: ModelName, request: SetRoutingRequest) -> StoredRouting:
    """Replace the model's routing policy (audited; takes effect in every warm inference
    container within the alias cache TTL). 422 and nothing saved when it names a version
    that does not exist or is archived."""
    return routing.set_policy(
        name,
        request.policy.model_dump(),
        actor=_actor(),
        reason=request.reason,
        expected_revision=request.expected_revision,
    )


@app.patch("/models/<name>", responses=responses(WRITE_ERRORS))
def update_model(name: ModelName, request: UpdateRequest) -> RegisteredModel:
    return registry.update_model(name, description=request.description, tags=request.tags)


@app.patch("/models/<name>/versions/<version>", responses=responses(WRITE_ERRORS))
def update_version(name: ModelName, version: VersionNumber, request: UpdateRequest) -> ModelVersion:
    return registry.update_version(name, version, description=request.description, tags=request.tags)


_CARD_RESPONSES = responses(READ_ERRORS) | {
    200: {
        "description": "The card: Markdown by default, the same content as JSON with format=json",
        "content": {
            "text/markdown": {"schema": {"type": "string"}},
            "application/json": {"model": ModelCard},
        },
    }
}


@app.get("/models/<name>/versions/<version>/card", responses=_CARD_RESPONSES)
def model_card(
    name: ModelName,
    version: VersionNumber,
    format: Annotated[
        Literal["markdown", "json"], Query(description="markdown (default) or json")
    ] = "markdown",
) -> Response[str]:
    """The version's model card, built from current metadata (the copy stored beside the
    artifact is the one written at registration)."""
    card = registry.model_card(name, version)
    if format == "json":
        return Response(
            status_code=200, content_type=content_types.APPLICATION_JSON, body=card.model_dump_json()
        )
    return Response(status_code=200, content_type="text/markdown; charset=utf-8", body=render_markdown(card))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = resolve(app, event, context)
    count_errors(metrics, response)
    return response
