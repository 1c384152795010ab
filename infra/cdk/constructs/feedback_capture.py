"""The bulk feedback: the feedback-capture function, fed the prediction log's DynamoDB stream.

A second event source mapping on the stream the rewards function reads, with the same
filter (INSERTs of `FEEDBACK` items): it writes each batch's feedback as JSON Lines under
`feedback/` (`mlops_core.feedback.feedback_store`), where concept drift and the retraining
loop read it in bulk. Two readers is what DynamoDB Streams recommends at most per shard: a
third consumer of the stream would go through this bulk copy, not another mapping.

The batch is written whole or not at all, so the mapping neither bisects nor reports
partial failures: a failed batch comes back whole and rewrites its own objects. After the
retries its description goes to the `FailedFeedbackBatches` queue (the stream keeps the
records 24 hours, to redrive from there).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Acknowledgment,
    Duration,
    Validations,
    aws_dynamodb,
    aws_lambda,
    aws_lambda_event_sources,
    aws_logs,
)
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction, failure_queue
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.rewards import FEEDBACK_INSERTED
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.storage import keys

#: Records per invocation: one object per model and hour holds them all, so larger batches
#: mean fewer, larger objects for the readers to list and get.
BATCH_SIZE = 1000
#: How long Lambda gathers records first; concept drift and retraining read windows of hours.
BATCHING_WINDOW = Duration.seconds(5)
#: Retries of a failing batch (whole) before it is described on the queue.
RETRY_ATTEMPTS = 10


class FeedbackCaptureConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        predictions_table: aws_dynamodb.Table,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)

        self.function = ServiceFunction(
            self,
            "FeedbackCapture",
            service_name="feedback-capture",
            description="Copies recorded feedback to S3 (feedback/) for concept drift and retraining.",
            code_dir=functions_dir / "feedback_capture",
            handler="handler.lambda_handler",
            layers=[layers.core],
            memory_size=512,
            timeout=Duration.seconds(60),
            environment={"ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name},
            log_retention=log_retention,
        )
        Validations.of(self.function.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Besides X-Ray's actions, the stream event source adds dynamodb:ListStreams, which "
                "Lambda's poller needs and which supports no resource-level permissions; the stream's "
                "records are read only from this table's stream ARN.",
            )
        )
        # It writes its own prefix and nothing else: no table, no other object.
        storage.grant_prefix_write(self.function.role, keys.FEEDBACK_CAPTURE_PREFIX)

        self.failed_batches = failure_queue(
            self, "FailedFeedbackBatches", of="the feedback-capture function's stream mapping"
        )
        # TRIM_HORIZON: feedback recorded before the mapping existed (24 h of stream) is copied too.
        self.event_source = aws_lambda_event_sources.DynamoEventSource(
            predictions_table,
            starting_position=aws_lambda.StartingPosition.TRIM_HORIZON,
            batch_size=BATCH_SIZE,
            max_batching_window=BATCHING_WINDOW,
            bisect_batch_on_error=False,
            retry_attempts=RETRY_ATTEMPTS,
            on_failure=aws_lambda_event_sources.SqsDlq(self.failed_batches),
            filters=[aws_lambda.FilterCriteria.filter(FEEDBACK_INSERTED)],
        )
        self.function.function.add_event_source(self.event_source)
