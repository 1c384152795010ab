"""Registry function: models, versions and aliases (IAM-authenticated routes).

Thin entry point over ``mlops_core.registry``. The caller's IAM principal, taken from
the request context, is recorded as the actor of every write.
"""

from http import HTTPStatus
from typing import Annotated, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from mlops_core.api_errors import register_error_handlers
from mlops_core.dynamo import MetadataTable
from mlops_core.predict import load_session
from mlops_core.registry import (
    ALIAS_PATTERN,
    MODEL_NAME_PATTERN,
    Alias,
    ModelRegistry,
    ModelVersion,
    RegisteredModel,
    RegisterVersionRequest,
)
from mlops_core.s3 import ArtifactStore
from mlops_core.settings import core_settings

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace="ServerlessMLOps")
app = APIGatewayRestResolver(enable_validation=True)
register_error_handlers(app, logger)

settings = core_settings()
registry = ModelRegistry(MetadataTable(settings.metadata_table), ArtifactStore(settings.artifacts_bucket))

T = TypeVar("T", bound=BaseModel)
ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, max_length=128)]
AliasName = Annotated[str, Path(pattern=ALIAS_PATTERN, max_length=64)]
VersionNumber = Annotated[int, Path(ge=1)]


class CreateModelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MODEL_NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    tags: dict[str, str] = Field(default_factory=dict, max_length=50)


class SetAliasRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)
    expected_revision: int | None = Field(
        default=None, ge=0, description="Move only if the alias is still at this revision (0: must not exist)"
    )


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


@app.get("/models")
def list_models() -> dict[str, list[RegisteredModel]]:
    return {"models": registry.list_models()}


@app.post("/models")
def create_model(request: CreateModelRequest) -> Response[RegisteredModel]:
    model = registry.create_model(
        request.name, description=request.description, tags=request.tags, owner=_actor()
    )
    return _created(model)


@app.get("/models/<name>")
def get_model(name: ModelName) -> ModelDetail:
    return ModelDetail(model=registry.get_model(name), aliases=registry.list_aliases(name))


@app.get("/models/<name>/versions")
def list_versions(
    name: ModelName, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, list[ModelVersion]]:
    return {"versions": registry.list_versions(name, limit=limit)}


@app.post("/models/<name>/versions")
@tracer.capture_method
def register_version(name: ModelName, request: RegisterVersionRequest) -> Response[ModelVersion]:
    version = registry.register_version(name, request, actor=_actor(), validate_model=load_session)
    logger.info("version registered", extra={"model": name, "version": version.version})
    return _created(version)


@app.get("/models/<name>/versions/<version>")
def get_version(name: ModelName, version: VersionNumber) -> ModelVersion:
    return registry.get_version(name, version)


@app.get("/models/<name>/aliases/<alias>")
def get_alias(name: ModelName, alias: AliasName) -> Alias:
    return registry.get_alias(name, alias)


@app.put("/models/<name>/aliases/<alias>")
def set_alias(name: ModelName, alias: AliasName, request: SetAliasRequest) -> Alias:
    return registry.set_alias(
        name, alias, request.version, expected_revision=request.expected_revision, actor=_actor()
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
