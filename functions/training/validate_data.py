"""Training step ValidateData: check the request, candidates and dataset; write the profile.

Fails with ``InvalidTrainingRequest`` or ``DataValidationError`` (the Step Functions
error name), whose message lists every violation.
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import TrainingComputeSettings, core_settings
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.steps import validate_data
from mlops_core.training.tracking import RunTracker

logger = Logger()
settings = core_settings()
store = ArtifactStore(settings.artifacts_bucket)
tracker = RunTracker(MetadataTable(settings.metadata_table))
compute = TrainingComputeSettings.from_environment()


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"))
    state = validate_data(event, store, tracker, compute)
    logger.info(
        "dataset valid", extra={"rows": state["dataset"]["rows"], "candidates": len(state["candidates"])}
    )
    return state
