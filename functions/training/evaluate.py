"""Training step Evaluate: holdout metrics of the exported model and of the champion; the gate."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import core_settings
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.steps import evaluate
from mlops_core.training.tracking import RunTracker

logger = Logger()
metrics = Metrics(namespace="ServerlessMLOps")
settings = core_settings()
store = ArtifactStore(settings.artifacts_bucket)
table = MetadataTable(settings.metadata_table)
registry = ModelRegistry(table, store)
tracker = RunTracker(table)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"))
    state = evaluate(event, store, registry, tracker)
    logger.info("gate decided", extra={"evaluation": state["evaluation"]})
    # The operations dashboard's "rejected" (the state machine counts them as failed executions).
    rejected = 0 if state["evaluation"]["passed"] else 1
    metrics.add_metric(name="TrainingRunsRejected", unit=MetricUnit.Count, value=rejected)
    return state
