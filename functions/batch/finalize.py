"""Batch step Finalize: the Map's ResultWriter manifest -> the job's counts and status."""

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


class FinalizeInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(pattern=BATCH_JOB_ID_PATTERN)
    manifest_key: str = Field(min_length=1)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    request = FinalizeInput.model_validate(event)
    logger.append_keys(job_id=request.job_id)
    job = jobs.finalize(request.job_id, request.manifest_key)
    logger.info(
        "batch job finished",
        extra={
            "rows_scored": job.rows_scored,
            "rows_failed": job.rows_failed,
            "objects_failed": job.objects_failed,
        },
    )
    return {"job_id": job.job_id, "status": job.status}
