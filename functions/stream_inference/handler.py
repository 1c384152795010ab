"""Stream inference function: records of the input Kinesis stream scored with the same
predictor as ``POST /models/{name}/predict``, results onto the output stream.

Thin entry point (``mlops_core.serving.stream`` holds the logic): the whole batch is scored
first, then the results are written (one output record per partition key, in order), then
the capture lines are logged — the capture function's log subscription turns them into the
prediction log, exactly as for real-time predictions. Powertools' batch processor reports
the records from the first one that hit a failing dependency as batch item failures
(Lambda retries from there). A poison record fails the invocation: the event source
mapping bisects the batch until it is alone, retries it a bounded number of times and
sends its description to the dead-letter queue.
"""

import base64
import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import StreamInferenceSettings
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.routing.repository import RoutingRepository
from mlops_core.serving.capture import emit
from mlops_core.serving.predictor import Predictor
from mlops_core.serving.routing_cache import RoutingCache
from mlops_core.serving.stream import InputRecord, score_batch
from mlops_core.storage import deadline
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.kinesis import KinesisStream
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
metrics = Metrics(namespace="ServerlessMLOps")
settings = StreamInferenceSettings.from_environment()
metadata = MetadataTable(settings.metadata_table)
predictor = Predictor(
    RegistryLookup(metadata),
    ArtifactStore(settings.artifacts_bucket),
    alias_ttl=settings.alias_cache_ttl_seconds,
    cache_size=settings.model_cache_size,
    max_batch_size=settings.max_batch_size,
    routing=RoutingCache(RoutingRepository(metadata), ttl=settings.alias_cache_ttl_seconds),
)
output = KinesisStream(settings.output_stream)
#: Time kept back after the last dependency call to answer Lambda.
MARGIN_SECONDS = 2.0


class PoisonRecord(Exception):
    """A record that is not a stream-inference record: the invocation fails (see above)."""


def _input(record: dict[str, Any]) -> InputRecord:
    kinesis = record["kinesis"]
    return InputRecord(
        sequence_number=kinesis["sequenceNumber"],
        partition_key=kinesis["partitionKey"],
        data=base64.b64decode(kinesis["data"]),
        arrived_ms=int(float(kinesis["approximateArrivalTimestamp"]) * 1000),
        event_id=record["eventID"],
    )


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    raw = event.get("Records") or []
    records = [_input(record) for record in raw]
    seconds = context.get_remaining_time_in_millis() / 1000 - MARGIN_SECONDS
    with deadline.request_deadline(seconds):
        batch = score_batch(
            predictor, records, request_id=context.aws_request_id, now_ms=int(time.time() * 1000)
        )
        if batch.poison is not None:
            index, reason = batch.poison
            poison = records[index]
            logger.error(
                "poison record",
                extra={
                    "sequence_number": poison.sequence_number,
                    "reason": reason,
                    "batch_size": len(records),
                },
            )
            metrics.add_metric(name="StreamPoisonBatches", unit=MetricUnit.Count, value=1)
            raise PoisonRecord(f"record {poison.sequence_number}: {reason}")
        output.put(batch.output_entries())  # before the capture: a failure here writes neither
    emit(batch.capture)
    metrics.add_metric(name="StreamPredictions", unit=MetricUnit.Count, value=batch.scored)
    metrics.add_metric(name="StreamRecordsRefused", unit=MetricUnit.Count, value=batch.refused)
    failed = set() if batch.failed_from is None else {r.sequence_number for r in records[batch.failed_from :]}
    if failed:
        metrics.add_metric(name="StreamRecordsRetried", unit=MetricUnit.Count, value=len(failed))
        logger.warning("records left for a retry", extra={"records": len(failed), "reason": batch.failure})
    logger.info("stream batch scored", extra={"scored": batch.scored, "refused": batch.refused})

    def report(record: KinesisStreamRecord) -> None:
        if record.kinesis.sequence_number in failed:
            raise RuntimeError(f"not processed: {batch.failure}")

    # A processor per invocation: it keeps the batch's results between its calls.
    processor = BatchProcessor(event_type=EventType.KinesisDataStreams)
    return process_partial_response(event=event, record_handler=report, processor=processor, context=context)
