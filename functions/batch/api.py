"""Batch scoring API: ``POST /batch-predictions`` starts a job (a Step Functions Distributed
Map over the input's objects), ``GET /batch-predictions[/{job_id}]`` lists and reads jobs
(IAM-authenticated routes). The caller's IAM principal is recorded as the actor.
"""

from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from mlops_core.batch.entities import BATCH_JOB_ID_PATTERN, BatchJob, BatchJobRequest
from mlops_core.batch.service import BatchJobs
from mlops_core.config.observability import make_tracer
from mlops_core.config.settings import BatchApiSettings
from mlops_core.http import READ_ERRORS, WRITE_ERRORS, resolve, responses, rest_app
from mlops_core.registry.entities import MODEL_NAME_PATTERN
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import BatchWorkflow

logger = Logger()
tracer = make_tracer()
app = rest_app(logger)

settings = BatchApiSettings.from_environment()
jobs = BatchJobs(
    MetadataTable(settings.metadata_table),
    ArtifactStore(settings.artifacts_bucket),
    workflow=BatchWorkflow(settings.state_machine_arn),
)

JobId = Annotated[str, Path(pattern=BATCH_JOB_ID_PATTERN)]


class BatchJobAccepted(BaseModel):
    job_id: str
    status_path: str
    job: BatchJob


def _actor() -> str | None:
    identity = app.current_event.request_context.identity
    return identity.user_arn or identity.caller or None


@app.post("/batch-predictions", responses=responses(WRITE_ERRORS, success=202, description="Started"))
@tracer.capture_method
def start_batch_job(request: BatchJobRequest) -> Response[BatchJobAccepted]:
    """Score every object under ``input`` with one version of a model (``version``, or the one
    ``alias`` names now, production by default): pinned for the whole job. Predictions go to
    ``batch/{job_id}/predictions/``, refused rows (by line) to ``batch/{job_id}/errors/``.
    404: unknown model or version, or no production version; 422: no objects under the input."""
    job = jobs.start(request, actor=_actor())
    logger.info(
        "batch job started", extra={"model": job.model_name, "job_id": job.job_id, "version": job.version}
    )
    return Response(
        status_code=HTTPStatus.ACCEPTED.value,
        content_type=content_types.APPLICATION_JSON,
        body=BatchJobAccepted(job_id=job.job_id, status_path=f"/batch-predictions/{job.job_id}", job=job),
    )


@app.get("/batch-predictions", responses=responses(READ_ERRORS))
def list_batch_jobs(
    model: Annotated[str | None, Query(pattern=MODEL_NAME_PATTERN, max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, list[BatchJob]]:
    """Batch jobs, newest first (of one model with ``?model=``)."""
    return {"jobs": jobs.recent(limit=limit, model_name=model)}


@app.get("/batch-predictions/<job_id>", responses=responses(READ_ERRORS))
def get_batch_job(job_id: JobId) -> BatchJob:
    """A job: status, version, objects and rows scored and refused, the first refused rows (line
    and reason) and failed objects, duration."""
    return jobs.get(job_id)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return resolve(app, event, context)
