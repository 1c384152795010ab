"""Prediction capture: the prediction log table, and the capture function that a
CloudWatch Logs subscription on the inference function's log group feeds.

The inference function logs one capture line per request (`mlops_core.serving.capture`);
the subscription filter passes only those lines to the capture function, which writes the
prediction log (DynamoDB, TTL) and the bulk capture (JSON Lines under `capture/`).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Duration,
    RemovalPolicy,
    aws_dynamodb,
    aws_iam,
    aws_lambda_destinations,
    aws_logs,
    aws_logs_destinations,
)
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction, failure_queue
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.serving.capture import CAPTURE_MARKER
from mlops_core.storage import keys

#: How long captured predictions stay in the prediction log (the bulk capture in S3 stays).
PREDICTION_TTL_DAYS = 30
#: Only capture lines reach the capture function (the Logger's own lines do not).
CAPTURE_FILTER = aws_logs.FilterPattern.literal(f"{{ $.{CAPTURE_MARKER} = 1 }}")


class CaptureConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        source: ServiceFunction,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)

        self.predictions_table = aws_dynamodb.Table(
            self,
            "PredictionsTable",
            partition_key=aws_dynamodb.Attribute(
                name=keys.PARTITION_KEY, type=aws_dynamodb.AttributeType.STRING
            ),
            sort_key=aws_dynamodb.Attribute(name=keys.SORT_KEY, type=aws_dynamodb.AttributeType.STRING),
            billing_mode=aws_dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=keys.EXPIRES_AT,
            point_in_time_recovery_specification=aws_dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=aws_dynamodb.TableEncryption.AWS_MANAGED,
            # Feedback on a prediction will reach the bandit's reward counts from here.
            stream=aws_dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.function = ServiceFunction(
            self,
            "Capture",
            service_name="capture",
            description="Writes captured predictions to the prediction log and to S3 (capture/).",
            code_dir=functions_dir / "capture",
            handler="handler.lambda_handler",
            # serving: it scores the requests' shadow versions with the same ONNX runtime.
            layers=[layers.core, layers.serving],
            memory_size=1024,
            timeout=Duration.seconds(60),
            environment={
                "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
                "METADATA_TABLE": storage.metadata_table.table_name,
                "PREDICTIONS_TABLE": self.predictions_table.table_name,
                "PREDICTION_TTL_DAYS": str(PREDICTION_TTL_DAYS),
            },
            log_retention=log_retention,
        )
        self.function.role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                # BatchWriteItem: the log; PutItem: a delivery's counted marker (in a transaction).
                actions=["dynamodb:BatchWriteItem", "dynamodb:PutItem"],
                resources=[self.predictions_table.table_arn],
            )
        )
        storage.grant_prefix_write(self.function.role, keys.CAPTURE_PREFIX)
        # Shadows: the version records and their artifacts; traffic: the per-version totals.
        storage.grant_metadata_read(self.function.role)
        storage.grant_prefix_read(self.function.role, keys.MODELS_PREFIX)
        self.function.role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:UpdateItem"], resources=[storage.metadata_table.table_arn]
            )
        )

        self.subscription = aws_logs.SubscriptionFilter(
            self,
            "CaptureSubscription",
            log_group=source.log_group,
            destination=aws_logs_destinations.LambdaDestination(self.function.function, add_permissions=True),
            filter_pattern=CAPTURE_FILTER,
            filter_name="prediction-capture",
        )
        # CloudWatch Logs invokes the function asynchronously: a delivery that still fails
        # after Lambda's two retries is kept in a queue (14 days) to be redriven, never
        # dropped; the capture writes are idempotent, so a redrive changes nothing twice.
        self.failed_deliveries = failure_queue(self, "FailedDeliveries", of="the capture function")
        self.function.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=aws_lambda_destinations.SqsDestination(self.failed_deliveries),
        )

    def grant_feedback_write(self, role: aws_iam.IRole) -> None:
        """Record feedback in the prediction log: read a prediction with its feedback (Query of
        its partition; GetItem of the feedback after a lost conditional write) and write the
        feedback once (a conditional PutItem). Never UpdateItem or DeleteItem: what is recorded
        stays as recorded (the rewards updater, not this role, marks it counted)."""
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
                resources=[self.predictions_table.table_arn],
            )
        )
