"""Feedback-capture function: feedback recorded in the prediction log, from its DynamoDB stream,
written in bulk to S3 (``feedback/{model}/{yyyy}/{mm}/{dd}/{hh}/{first sequence number}.jsonl``)
for concept drift and retraining datasets.

A second event source mapping on the stream, beside the rewards function's and with the same
filter (INSERTs of FEEDBACK items): the bandit's exactly-once counting stays as it is, and
an S3 failure here never holds up a reward. The batch is written whole or not at all: a
failure raises, Lambda delivers the same batch again, and it rewrites its own objects.
Records whose feedback cannot be read are logged and skipped (the rewards function sends
the same records to its failure queue).
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import FeedbackCaptureSettings
from mlops_core.feedback.feedback_store import FeedbackStore, stream_feedback
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
metrics = Metrics(namespace="ServerlessMLOps")
settings = FeedbackCaptureSettings.from_environment()
store = FeedbackStore(ArtifactStore(settings.artifacts_bucket))


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, int]:
    batch = stream_feedback(event.get("Records") or [])
    objects = store.write(batch.feedback, batch_id=batch.batch_id)
    metrics.add_metric(name="FeedbackCaptured", unit=MetricUnit.Count, value=len(batch.feedback))
    if batch.unreadable:
        metrics.add_metric(name="FeedbackUnreadable", unit=MetricUnit.Count, value=len(batch.unreadable))
        logger.error("unreadable feedback records skipped", extra={"unreadable": batch.unreadable})
    logger.info(
        "feedback captured",
        extra={
            "batch_id": batch.batch_id,
            "feedback": len(batch.feedback),
            "objects": len(objects),
            "ignored": batch.ignored,
        },
    )
    return {"feedback": len(batch.feedback), "objects": len(objects), "unreadable": len(batch.unreadable)}
