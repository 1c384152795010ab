"""Rewards function: feedback recorded in the prediction log, from its DynamoDB stream, added
exactly once to the bandit arm (the version) that served each prediction.

The event source mapping passes only INSERTs of FEEDBACK items. The whole batch is counted
first (one transaction per model, ``mlops_core.feedback.rewards``); then Powertools' batch
processor reports, record by record, the ones that were not counted as batch item failures,
so Lambda retries from the first of them (records after it that were counted are then
"already counted", which changes nothing), and after the mapping's retries sends the batch's
description to the failed-records queue.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import RewardsSettings
from mlops_core.feedback.reward_stream import count_stream_batch
from mlops_core.feedback.rewards import RewardUpdater
from mlops_core.storage.dynamo import MetadataTable

logger = Logger()
metrics = Metrics(namespace="ServerlessMLOps")
settings = RewardsSettings.from_environment()
updater = RewardUpdater(
    MetadataTable(settings.metadata_table),
    MetadataTable(settings.predictions_table, what="prediction log"),
    history_bucket_seconds=settings.routing_history_bucket_seconds,
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    batch = count_stream_batch(updater, event.get("Records") or [])
    metrics.add_metric(name="RewardsCounted", unit=MetricUnit.Count, value=batch.counted)
    metrics.add_metric(name="RewardsAlreadyCounted", unit=MetricUnit.Count, value=batch.already_counted)
    if batch.failed:
        metrics.add_metric(name="RewardRecordsFailed", unit=MetricUnit.Count, value=batch.failed)
    logger.info(
        "feedback counted",
        extra={
            "counted": batch.counted,
            "already_counted": batch.already_counted,
            "ignored": batch.ignored,
            "failed": batch.failed,
        },
    )

    def report(record: DynamoDBRecord) -> None:
        batch.check(record.dynamodb.sequence_number if record.dynamodb else None)

    # A processor per invocation: it keeps the batch's results between its calls.
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
    return process_partial_response(event=event, record_handler=report, processor=processor, context=context)
