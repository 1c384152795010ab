"""Training step CollectTrainingJob (after a SageMaker training job): read the candidate's
result the job wrote, check it against its artifact, record it on the run."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import core_settings
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.tracking import RunTracker
from mlops_core.training.training_job import collect_training_job

logger = Logger()
settings = core_settings()
store = ArtifactStore(settings.artifacts_bucket)
tracker = RunTracker(MetadataTable(settings.metadata_table))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"), candidate=event.get("candidate_id"))
    result = collect_training_job(event, store, tracker)
    logger.info("training job collected", extra={"metrics": result["validation_metrics"]})
    return result
