"""Streaming inference: an input Kinesis data stream, the stream inference function fed by
its event source mapping, and an output Kinesis data stream for the results.

Kinesis, not SQS: results must keep the order of their partition key (a standard queue has
no order; a FIFO queue does, per message group, but caps a group's throughput and cannot
be read again by a second consumer). A shard is read by one invocation at a time
(parallelization factor 1), so a key's records are scored in order; the function writes
one output record per key per batch (``mlops_core.serving.stream``), so the output keeps
that order too. Errors are handled as ``mlops_core.serving.stream`` says: refusals are
results, dependency failures are batch item failures retried from the failed record,
poison records fail the invocation, are bisected down to themselves, retried
``RETRY_ATTEMPTS`` times and described in the ``FailedRecords`` queue (KMS-encrypted).

Every prediction is logged as the inference function logs it: a second subscription filter
feeds the function's capture lines to the capture function (prediction log, bulk capture).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Duration,
    aws_iam,
    aws_kinesis,
    aws_lambda,
    aws_lambda_event_sources,
    aws_logs,
    aws_logs_destinations,
    aws_sqs,
)
from constructs import Construct

from infra.cdk.constructs.capture import CAPTURE_FILTER, CaptureConstruct
from infra.cdk.constructs.functions import ServiceFunction, failure_queue
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import MODELS_PREFIX, StorageConstruct

#: Shards of each stream: each takes 1 MB/s or 1,000 records/s in, and is read in order by
#: one invocation at a time. Resharding changes which shard a key goes to, never its order.
SHARDS = 2
#: Records per invocation (the predictor scores them in a few calls, one per version chosen).
BATCH_SIZE = 100
#: How long Lambda gathers records before invoking with fewer than BATCH_SIZE.
BATCHING_WINDOW = Duration.seconds(1)
#: Retries of a failing batch (after bisection) before its description goes to the queue.
RETRY_ATTEMPTS = 3
#: Records stay in the input stream this long (Kinesis's minimum, no extra charge): the
#: dead-letter queue names a poison record's shard and sequence number, read back from here.
RETENTION = Duration.hours(24)


class StreamInferenceConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        capture: CaptureConstruct,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)

        # Server-side encryption with the AWS managed key (aws/kinesis: no key to manage or pay for).
        self.input_stream = aws_kinesis.Stream(
            self,
            "InputStream",
            shard_count=SHARDS,
            retention_period=RETENTION,
            encryption=aws_kinesis.StreamEncryption.MANAGED,
        )
        self.output_stream = aws_kinesis.Stream(
            self,
            "OutputStream",
            shard_count=SHARDS,
            retention_period=RETENTION,
            encryption=aws_kinesis.StreamEncryption.MANAGED,
        )

        self.function = ServiceFunction(
            self,
            "StreamInference",
            service_name="stream-inference",
            description="Scores the input stream's records with the registered models, in order per key.",
            code_dir=functions_dir / "stream_inference",
            handler="handler.lambda_handler",
            layers=[layers.core, layers.serving],
            memory_size=1024,
            timeout=Duration.seconds(60),
            environment={
                "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
                "METADATA_TABLE": storage.metadata_table.table_name,
                "OUTPUT_STREAM": self.output_stream.stream_name,
            },
            log_retention=log_retention,
        )
        role = self.function.role
        # What the predictor reads (versions, aliases, routing policy and arms; the artifacts).
        storage.grant_metadata_read(role)
        storage.grant_prefix_read(role, MODELS_PREFIX)
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(actions=["kinesis:PutRecords"], resources=[self.output_stream.stream_arn])
        )

        # A poison record's description (shard, sequence number), kept 14 days to be read back
        # from the input stream and redriven by hand. KMS (the AWS managed aws/sqs key).
        self.failed_records = failure_queue(
            self,
            "FailedRecords",
            of="the stream inference function's event source mapping",
            encryption=aws_sqs.QueueEncryption.KMS_MANAGED,
        )
        # TRIM_HORIZON: records put before the mapping existed (or while it was disabled) are scored.
        self.event_source = aws_lambda_event_sources.KinesisEventSource(
            self.input_stream,
            starting_position=aws_lambda.StartingPosition.TRIM_HORIZON,
            batch_size=BATCH_SIZE,
            max_batching_window=BATCHING_WINDOW,
            bisect_batch_on_error=True,
            retry_attempts=RETRY_ATTEMPTS,
            report_batch_item_failures=True,
            on_failure=aws_lambda_event_sources.SqsDlq(self.failed_records),
        )
        self.function.function.add_event_source(self.event_source)

        # The capture lines, to the capture function: the same prediction log as real time.
        self.subscription = aws_logs.SubscriptionFilter(
            self,
            "CaptureSubscription",
            log_group=self.function.log_group,
            destination=aws_logs_destinations.LambdaDestination(
                capture.function.function, add_permissions=True
            ),
            filter_pattern=CAPTURE_FILTER,
            filter_name="stream-prediction-capture",
        )
