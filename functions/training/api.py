"""Training API function: ``POST /training`` starts a run, ``GET /runs/{run_id}`` reads it,
``GET /models/{name}/runs`` lists a model's runs (IAM-authenticated routes).

A run is a named Step Functions execution; its name is the run id. The request is
validated here in full, against the dataset's schema too (read from the bucket, never
written), so a bad request is a 422 and no execution starts.
"""

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import SkipJsonSchema

from mlops_core.config.observability import make_tracer
from mlops_core.config.settings import TrainingApiSettings, TrainingComputeSettings
from mlops_core.errors import Invalid, NotFound
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.http import READ_ERRORS, WRITE_ERRORS, resolve, responses, rest_app
from mlops_core.registry.entities import MODEL_NAME_PATTERN
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import TrainingWorkflow
from mlops_core.training.compute import check_available
from mlops_core.training.launch import start_training_run
from mlops_core.training.requests import TrainingRequest
from mlops_core.training.tracking import RUN_ID_PATTERN, RunTracker, new_run_id, status_before_record

logger = Logger()
tracer = make_tracer()
app = rest_app(logger)

settings = TrainingApiSettings.from_environment()
tracker = RunTracker(MetadataTable(settings.metadata_table))
datasets = ArtifactStore(settings.artifacts_bucket)  # read-only here: schemas, labels
feature_views = FeatureViewRepository(MetadataTable(settings.metadata_table))  # read-only here
workflow = TrainingWorkflow(settings.state_machine_arn)
compute = TrainingComputeSettings.from_environment()


class StartTrainingRequest(TrainingRequest):
    """The workflow's input; ``run_id`` may be omitted (one is generated). ``triggered_by``
    is not taken here: only the retraining loop starts runs on a drift finding."""

    run_id: str | None = None  # type: ignore[assignment]
    # Lineage is the retraining loop's to record, not a caller's to claim.
    triggered_by: SkipJsonSchema[None] = None
    # The views' versions are BuildTrainingSet's to record.
    feature_view_versions: SkipJsonSchema[None] = None


class TrainingStarted(BaseModel):
    run_id: str
    execution_arn: str
    status_path: str


@app.post("/training", responses=responses(WRITE_ERRORS, success=202, description="Started"))
@tracer.capture_method
def start_training(request: StartTrainingRequest) -> Response[TrainingStarted]:
    run_id = request.run_id or new_run_id(request.model_name)
    try:
        execution_input = TrainingRequest.model_validate(request.model_dump() | {"run_id": run_id})
    except ValidationError:
        raise Invalid(
            f"invalid run_id {run_id!r}",
            details=[{"loc": ["body", "run_id"], "msg": f"must match {RUN_ID_PATTERN}", "type": "pattern"}],
        ) from None
    check_available(execution_input.compute, compute)  # SageMaker asked for where there is none: 422
    arn = start_training_run(execution_input, datasets, workflow, feature_views)
    logger.info("training started", extra={"run_id": run_id})
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=content_types.APPLICATION_JSON,
        body=TrainingStarted(run_id=run_id, execution_arn=arn, status_path=f"/runs/{run_id}"),
    )


@app.get("/runs/<run_id>", responses=responses(READ_ERRORS))
def get_run(run_id: Annotated[str, Path(pattern=RUN_ID_PATTERN)]) -> dict[str, Any]:
    execution = workflow.describe(run_id)
    try:
        run = tracker.get_with_candidates(run_id)
    except NotFound:
        # Started, but ValidateData has not written the record yet (or failed before it).
        run = {"run_id": run_id, "status": status_before_record(execution["status"])}
    return {**run, "execution": execution}


@app.get("/models/<name>/runs", responses=responses(READ_ERRORS))
def list_runs(
    name: Annotated[str, Path(pattern=MODEL_NAME_PATTERN)], limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> dict[str, list[dict[str, Any]]]:
    return {"runs": tracker.list_for_model(name, limit=limit)}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
