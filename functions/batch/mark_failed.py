"""Batch step MarkFailed (every step's Catch): the job is recorded as failed, with the error
and cause Step Functions caught (the Map's ``States.ExceedToleratedFailureThreshold`` when too
many objects failed)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from mlops_core.batch.entities import BATCH_JOB_ID_PATTERN
from mlops_core.batch.service import BatchJobs
from mlops_core.config.settings import CoreSettings
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
settings = CoreSettings.from_environment()
jobs = BatchJobs(MetadataTable(settings.metadata_table), ArtifactStore(settings.artifacts_bucket))


class CaughtError(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    error: str = Field(default="States.Runtime", alias="Error")
    cause: str = Field(default="", alias="Cause")


class MarkFailedInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(pattern=BATCH_JOB_ID_PATTERN)
    failure: CaughtError = Field(default_factory=CaughtError)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    request = MarkFailedInput.model_validate(event)
    logger.append_keys(job_id=request.job_id)
    job = jobs.fail(request.job_id, request.failure.error, request.failure.cause)
    logger.warning("batch job failed", extra={"error": job.error})
    return {"job_id": job.job_id, "status": job.status, "error": job.error, "cause": job.cause}
