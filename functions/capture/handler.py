"""Capture function: the inference function's capture lines, delivered by a CloudWatch Logs
subscription filter, into the prediction log (DynamoDB) and the bulk capture (S3); it also
scores the requests' shadow versions and counts each version's traffic.

A delivery that fails is retried by CloudWatch Logs (and then by Lambda's asynchronous
retries); every write is idempotent (the traffic counts are added once per delivery, under
a marker), so a redelivered batch changes nothing.
"""

import time
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import CloudWatchLogsEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from mlops_core.config.settings import CaptureSettings
from mlops_core.feedback.capture_store import CaptureStore
from mlops_core.feedback.prediction_log import PredictionLog
from mlops_core.feedback.shadow import ShadowScorer
from mlops_core.feedback.traffic import TrafficCounter
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.serving.capture import CAPTURE_MARKER, CapturedPrediction, CaptureLine, ErrorLine
from mlops_core.serving.predictor import Predictor
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
metrics = Metrics(namespace="ServerlessMLOps")
settings = CaptureSettings.from_environment()
predictions_table = MetadataTable(settings.predictions_table, what="prediction log")
metadata_table = MetadataTable(settings.metadata_table)
artifacts = ArtifactStore(settings.artifacts_bucket)
prediction_log = PredictionLog(predictions_table, ttl_days=settings.prediction_ttl_days)
capture_store = CaptureStore(artifacts)
traffic = TrafficCounter(
    predictions_table, metadata_table, history_bucket_seconds=settings.routing_history_bucket_seconds
)
shadows = ShadowScorer(
    Predictor(
        RegistryLookup(metadata_table),
        artifacts,
        alias_ttl=60.0,
        cache_size=settings.model_cache_size,
        max_batch_size=10_000,
    )
)


def _captured(messages: list[tuple[str, str]]) -> tuple[list[CapturedPrediction], list[ErrorLine]]:
    rows: list[CapturedPrediction] = []
    errors: list[ErrorLine] = []
    for event_id, message in messages:
        if f'"{CAPTURE_MARKER}"' not in message:
            continue  # the subscription's filter pattern should have left it out
        try:
            if '"kind":"error"' in message:
                errors.append(ErrorLine.model_validate_json(message))
            else:
                rows.extend(CaptureLine.model_validate_json(message).rows())
        except ValidationError as error:
            # A line this function cannot read would fail every retry: count it and go on.
            logger.error(
                "unreadable capture line", extra={"log_event_id": event_id, "error": str(error)[:500]}
            )
            metrics.add_metric(name="CaptureLinesRejected", unit=MetricUnit.Count, value=1)
    return rows, errors


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@event_source(data_class=CloudWatchLogsEvent)
def lambda_handler(event: CloudWatchLogsEvent, _context: LambdaContext) -> dict[str, Any]:
    data = event.parse_logs_data()
    log_events = list(data.log_events)
    rows, errors = _captured([(e.get_id, e.message) for e in log_events])
    batch_id = log_events[0].get_id
    if not rows:
        counted = bool(errors) and traffic.count([], errors=errors, batch_id=batch_id, now_s=int(time.time()))
        return {"captured": 0, "objects": [], **({"counted": counted} if errors else {})}
    rows = shadows.score(rows)
    shadow_failures = sum(1 for row in rows if row.shadow_error is not None)
    if shadow_failures:
        logger.warning(
            "shadow not scored", extra={"rows": shadow_failures, "reason": _first_shadow_error(rows)}
        )
        metrics.add_metric(name="ShadowFailures", unit=MetricUnit.Count, value=shadow_failures)
    recorded = prediction_log.record(rows)
    objects = capture_store.write(rows, batch_id=batch_id)
    # Last: a failure before it is retried with the writes above repeated (idempotent), and
    # the marker makes the counts of a delivery land once.
    counted = traffic.count(rows, errors=errors, batch_id=batch_id, now_s=int(time.time()))
    metrics.add_metric(name="PredictionsCaptured", unit=MetricUnit.Count, value=recorded)
    logger.info(
        "predictions captured", extra={"predictions": recorded, "objects": len(objects), "counted": counted}
    )
    return {"captured": recorded, "objects": objects, "counted": counted}


def _first_shadow_error(rows: list[CapturedPrediction]) -> str | None:
    return next((row.shadow_error for row in rows if row.shadow_error is not None), None)
