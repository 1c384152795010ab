"""The retraining loop: an EventBridge rule on the project bus for `DriftDetected`, and the
`retrain` function it invokes.

The function (`mlops_core.retraining.service`) does nothing for a model whose monitoring
configuration does not switch retraining on (the default). When it is on, it builds a
dataset from the drift window's captured predictions joined with their feedback labels
(plus, configurably, the production version's training data), writes it under
`datasets/{model}-retraining/`, and starts the training workflow with the model's last
successful configuration; the workflow's gate decides. Its role reads exactly that:
the metadata table (configuration, registry, runs), `capture/`, `feedback/` and
`datasets/`; it writes `datasets/` and, in the models' partitions only, its claim and
decisions; it starts executions of the training state machine and nothing else.

EventBridge invokes the function asynchronously (its default retry policy: 24 hours, 185
attempts, for a delivery it cannot make); a function error is retried twice by Lambda, then
the event goes to the `FailedRetrainEvents` queue (as sent, to redrive). A redelivered
event is handled once: its run id is derived from the event id.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Duration,
    aws_events,
    aws_events_targets,
    aws_iam,
    aws_lambda_destinations,
    aws_logs,
    aws_stepfunctions,
)
from constructs import Construct

from infra.cdk.constructs.events import EVENT_SOURCE
from infra.cdk.constructs.functions import ServiceFunction, failure_queue
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.monitoring.events import DriftDetected
from mlops_core.storage import keys

#: What the rule passes on: drift findings of this project's drift runs.
DRIFT_DETECTED = [DriftDetected.detail_type()]


class RetrainingConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        event_bus: aws_events.IEventBus,
        state_machine: aws_stepfunctions.IStateMachine,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)

        self.function = ServiceFunction(
            self,
            "Retrain",
            service_name="retrain",
            description="On DriftDetected (retraining on): trains on captured predictions with their labels.",
            code_dir=functions_dir / "retrain",
            handler="handler.lambda_handler",
            layers=[layers.core],
            memory_size=1024,
            timeout=Duration.minutes(5),
            environment={
                "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
                "METADATA_TABLE": storage.metadata_table.table_name,
                "STATE_MACHINE_ARN": state_machine.state_machine_arn,
            },
            log_retention=log_retention,
        )
        role = self.function.role
        # Reads: monitoring configuration, versions and aliases, runs (by model, on the index).
        storage.grant_metadata_read(role, index=True)
        # Writes: the claim (UpdateItem) and the decisions (PutItem), in models' partitions only.
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[storage.metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.model_pk("*")]}},
            )
        )
        # Captured predictions and feedback are read as they are now; the base training data
        # by the version its run pinned.
        for prefix in (keys.CAPTURE_PREFIX, keys.FEEDBACK_CAPTURE_PREFIX):
            storage.grant_prefix_read(role, prefix, versions=False)
            storage.grant_prefix_list(role, prefix)
        storage.grant_prefix_read(role, keys.DATASETS_PREFIX)
        storage.grant_prefix_list(role, keys.DATASETS_PREFIX)
        storage.grant_prefix_write(role, keys.DATASETS_PREFIX)
        state_machine.grant_start_execution(role)

        self.failed_events = failure_queue(
            self, "FailedRetrainEvents", of="the retrain function's asynchronous invocations"
        )
        self.function.function.configure_async_invoke(
            retry_attempts=2,
            max_event_age=Duration.hours(6),
            on_failure=aws_lambda_destinations.SqsDestination(self.failed_events),
        )
        self.rule = aws_events.Rule(
            self,
            "DriftDetectedRule",
            event_bus=event_bus,
            description="Drift findings to the retrain function (which acts only where retraining is on)",
            event_pattern=aws_events.EventPattern(source=[EVENT_SOURCE], detail_type=DRIFT_DETECTED),
            targets=[aws_events_targets.LambdaFunction(self.function.function)],
        )
