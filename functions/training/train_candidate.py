"""Training step TrainCandidate (one Map iteration): fit, export to ONNX, score on validation."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import core_settings
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.steps import train_candidate
from mlops_core.training.tracking import RunTracker

logger = Logger()
settings = core_settings()
store = ArtifactStore(settings.artifacts_bucket)
tracker = RunTracker(MetadataTable(settings.metadata_table))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"), candidate=event.get("candidate_id"))
    result = train_candidate(event, store, tracker)
    if result.get("state") == "PRUNED":  # a search trial its pruner stopped (no model)
        logger.info("trial pruned", extra={"step": result["step"], "value": result["value"]})
    else:
        logger.info("candidate trained", extra={"metrics": result["validation_metrics"]})
    return result
