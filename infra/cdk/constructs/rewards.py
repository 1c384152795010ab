"""Bandit reward updates: the rewards function, fed the prediction log's DynamoDB stream.

Only INSERTs of `FEEDBACK` items invoke it (filter criteria: the stream also carries every
captured prediction, the updater's own `counted_at` updates and the TTL's deletions). It
counts each feedback once on the arm that served the prediction
(`mlops_core.feedback.rewards`) and reports the records it could not count as batch item
failures; after the mapping's retries, the batch's description goes to the
`FailedRecords` queue.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Acknowledgment,
    Duration,
    Validations,
    aws_dynamodb,
    aws_iam,
    aws_lambda,
    aws_lambda_event_sources,
    aws_logs,
)
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction, failure_queue
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.storage import keys

#: Stream records per invocation: one transaction per model holds up to 100 operations
#: (a feedback each, the ARMS item, each version's totals), so 100 records are one or two.
BATCH_SIZE = 100
#: How long Lambda gathers records before invoking with fewer than BATCH_SIZE: fuller
#: batches write the model's hot ARMS item less often; inference reads it through a
#: 10-second cache anyway.
BATCHING_WINDOW = Duration.seconds(1)
#: Retries of a failing batch (from its first failed record) before it goes to the queue.
RETRY_ATTEMPTS = 5
#: What invokes the function: a feedback recorded (nothing else in the stream is a reward).
FEEDBACK_INSERTED = {
    "eventName": aws_lambda.FilterRule.is_equal("INSERT"),
    "dynamodb": {"Keys": {keys.SORT_KEY: {"S": aws_lambda.FilterRule.is_equal(keys.FEEDBACK_SK)}}},
}


class RewardsConstruct(Construct):
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
            "Rewards",
            service_name="rewards",
            description="Counts recorded feedback, once, on the bandit arm that served the prediction.",
            code_dir=functions_dir / "rewards",
            handler="handler.lambda_handler",
            layers=[layers.core],
            memory_size=512,
            timeout=Duration.seconds(60),
            environment={
                "METADATA_TABLE": storage.metadata_table.table_name,
                "PREDICTIONS_TABLE": predictions_table.table_name,
            },
            log_retention=log_retention,
        )
        role = self.function.role
        Validations.of(role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Besides X-Ray's actions, the stream event source adds dynamodb:ListStreams, which "
                "Lambda's poller needs and which supports no resource-level permissions; the stream's "
                "records are read only from this table's stream ARN.",
            )
        )
        # Transactions are authorised per item (UpdateItem, PutItem), each only in the
        # partitions the function writes: predictions' FEEDBACK marks, models' ARMS/VARIANT.
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"],
                resources=[predictions_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.prediction_pk("*")]}},
            )
        )
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[storage.metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.model_pk("*")]}},
            )
        )

        # The stream's records stay 24 hours: a batch that still fails after the retries is
        # described here (shard, sequence range) to be read again and redriven by hand; the
        # FEEDBACK items themselves stay uncounted (no counted_at) until then.
        self.failed_records = failure_queue(self, "FailedRecords", of="the rewards function's stream mapping")
        # TRIM_HORIZON, not LATEST: when the mapping is created (or re-created), feedback
        # recorded before it is still in the stream (24 h) and is counted; counting is
        # idempotent, so reading records again is harmless while skipping them loses rewards.
        self.event_source = aws_lambda_event_sources.DynamoEventSource(
            predictions_table,
            starting_position=aws_lambda.StartingPosition.TRIM_HORIZON,
            batch_size=BATCH_SIZE,
            max_batching_window=BATCHING_WINDOW,
            bisect_batch_on_error=True,
            retry_attempts=RETRY_ATTEMPTS,
            report_batch_item_failures=True,
            on_failure=aws_lambda_event_sources.SqsDlq(self.failed_records),
            filters=[aws_lambda.FilterCriteria.filter(FEEDBACK_INSERTED)],
        )
        self.function.function.add_event_source(self.event_source)
