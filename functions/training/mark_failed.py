"""Training step MarkFailed (every Catch leads here): record why the run failed."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import EventSettings
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.training.steps import mark_failed
from mlops_core.training.tracking import RunTracker

logger = Logger()
metrics = Metrics(namespace="ServerlessMLOps")
settings = EventSettings.from_environment()
tracker = RunTracker(MetadataTable(settings.metadata_table))
publisher = EventPublisher(settings.event_bus_name)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"))
    record = mark_failed(event, tracker, publisher)
    logger.warning("training run failed", extra=record)
    # A step failed (not a gate rejection): what the TrainingFailures alarm counts.
    metrics.add_metric(name="TrainingRunsFailed", unit=MetricUnit.Count, value=1)
    return record
