"""Retrain function: the project bus's ``DriftDetected`` events (an EventBridge rule) -> a
training run on captured predictions joined with their feedback labels, when the model's
monitoring configuration switches retraining on (``mlops_core.retraining.service``).

Every decision is returned (and, once retraining is on for the model, recorded in the
registry); a dependency failure raises, so Lambda delivers the event again, and after its
retries the event goes to the failure queue.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import RetrainSettings
from mlops_core.retraining.service import RetrainingService
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import TrainingWorkflow

logger = Logger()
metrics = Metrics(namespace="ServerlessMLOps")
settings = RetrainSettings.from_environment()
service = RetrainingService(
    MetadataTable(settings.metadata_table),
    ArtifactStore(settings.artifacts_bucket),
    TrainingWorkflow(settings.state_machine_arn),
)

#: Decision outcome -> the metric counting it.
OUTCOME_METRICS = {
    "started": "RetrainingStarted",
    "skipped": "RetrainingSkipped",
    "duplicate": "RetrainingDuplicates",
    "ignored": "RetrainingIgnored",
}


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    decision = service.handle(event)
    metrics.add_metric(name=OUTCOME_METRICS[decision.outcome], unit=MetricUnit.Count, value=1)
    logger.info(
        "retraining decision",
        extra={
            "model_name": decision.model_name,
            "outcome": decision.outcome,
            "reason": decision.reason,
            "run_id": decision.run_id,
            "drift_run_id": decision.drift_run_id,
        },
    )
    return decision.model_dump(mode="json", exclude_none=True)
