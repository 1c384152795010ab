"""Rollout API function: ``POST /models/{name}/rollouts`` starts a guarded rollout (a Step
Functions execution), ``GET`` lists and reads them, ``POST .../{id}/abort`` stops one
(IAM-authenticated routes). The caller's IAM principal is recorded as the actor.
"""

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from mlops_core.config.observability import make_tracer
from mlops_core.config.settings import RolloutApiSettings
from mlops_core.http import READ_ERRORS, WRITE_ERRORS, resolve, responses, rest_app
from mlops_core.registry.entities import MODEL_NAME_PATTERN
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.rollout.entities import ROLLOUT_ID_PATTERN, Rollout, RolloutRequest
from mlops_core.routing.rollout.service import RolloutService
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import RolloutWorkflow

logger = Logger()
tracer = make_tracer()
app = rest_app(logger)

settings = RolloutApiSettings.from_environment()
table = MetadataTable(settings.metadata_table)
publisher = EventPublisher(settings.event_bus_name)
rollouts = RolloutService(
    table,
    registry=ModelRegistry(table, ArtifactStore(settings.artifacts_bucket), publisher),
    publisher=publisher,
    workflow=RolloutWorkflow(settings.state_machine_arn),
)

ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, max_length=128)]
RolloutId = Annotated[str, Path(pattern=ROLLOUT_ID_PATTERN)]


class RolloutAccepted(BaseModel):
    rollout_id: str
    status_path: str
    rollout: Rollout


class AbortRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=1000, description="Recorded in the audit trail")


def _actor() -> str | None:
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.caller or None


@app.post("/models/<name>/rollouts", responses=responses(WRITE_ERRORS, success=202, description="Started"))
@tracer.capture_method
def start_rollout(name: ModelName, request: RolloutRequest) -> Response[RolloutAccepted]:
    """Move traffic from production to the candidate in steps, each baked and checked against
    the guardrails; promote at the end, or roll everything back when a guardrail trips. 409
    while another rollout of the model runs."""
    rollout = rollouts.start(name, request, actor=_actor())
    logger.info("rollout started", extra={"model": name, "rollout_id": rollout.rollout_id})
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=content_types.APPLICATION_JSON,
        body=RolloutAccepted(
            rollout_id=rollout.rollout_id,
            status_path=f"/models/{name}/rollouts/{rollout.rollout_id}",
            rollout=rollout,
        ),
    )


@app.get("/models/<name>/rollouts", responses=responses(READ_ERRORS))
def list_rollouts(
    name: ModelName, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, list[Rollout]]:
    """The model's rollouts, newest first."""
    return {"rollouts": rollouts.recent(name, limit=limit)}


@app.get("/models/<name>/rollouts/<rollout_id>", responses=responses(READ_ERRORS))
def get_rollout(name: ModelName, rollout_id: RolloutId) -> Rollout:
    """A rollout: its status, every step with each check's numbers, how it ended."""
    return rollouts.get(name, rollout_id)


@app.post("/models/<name>/rollouts/<rollout_id>/abort", responses=responses(WRITE_ERRORS))
def abort_rollout(name: ModelName, rollout_id: RolloutId, request: AbortRequest) -> Rollout:
    """Stop a running rollout and route all traffic back to production (409 once it ended)."""
    return rollouts.abort(name, rollout_id, actor=_actor(), reason=request.reason)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
