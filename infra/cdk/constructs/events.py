"""The project's EventBridge bus and the rules that route its domain events.

Events go to a bus of their own rather than the account's default bus, so that rules
and archives for this project neither see nor disturb anybody else's events. Schemas:
``mlops_core.events`` (pydantic), documented in docs/events.md.

Rules:
  * ModelLifecycle — ModelVersionRegistered, ModelPromoted, ModelRolledBack, RolloutCompleted,
    RolloutRolledBack
  * TrainingFailures — TrainingRunFailed
both into the ``notifications`` queue (encrypted, TLS-only, with a dead-letter queue),
where a notifier (chat, e-mail, a ticket) or another account's pipeline consumes them.
"""

from __future__ import annotations

from aws_cdk import (
    Duration,
    RemovalPolicy,
    Stack,
    aws_events,
    aws_events_targets,
    aws_sqs,
)
from constructs import Construct

EVENT_SOURCE = "serverless-mlops"
MODEL_LIFECYCLE_EVENTS = [
    "ModelVersionRegistered",
    "ModelPromoted",
    "ModelRolledBack",
    "RolloutCompleted",
    "RolloutRolledBack",
]
TRAINING_FAILURE_EVENTS = ["TrainingRunFailed"]


class EventsConstruct(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.bus = aws_events.EventBus(
            self,
            "Bus",
            # Named after the stack: rules in other stacks and accounts can target it by name.
            event_bus_name=f"{Stack.of(self).stack_name}-events",
            description="Domain events of the serverless MLOps platform",
        )
        # Replayable history: a consumer added later can catch up on what it missed.
        self.archive = self.bus.archive(
            "Archive",
            # Named explicitly: generated names can exceed EventBridge's 48 characters.
            archive_name=f"{Stack.of(self).stack_name}-events-archive"[:48],
            description="Every serverless-mlops event, kept 90 days",
            event_pattern=aws_events.EventPattern(source=[EVENT_SOURCE]),
            retention=Duration.days(90),
        )
        self.archive.apply_removal_policy(RemovalPolicy.RETAIN)

        self.dead_letters = aws_sqs.Queue(
            self,
            "NotificationsDeadLetters",
            encryption=aws_sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.notifications = aws_sqs.Queue(
            self,
            "Notifications",
            encryption=aws_sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
            dead_letter_queue=aws_sqs.DeadLetterQueue(queue=self.dead_letters, max_receive_count=5),
        )
        target = aws_events_targets.SqsQueue(self.notifications)
        self.model_lifecycle_rule = aws_events.Rule(
            self,
            "ModelLifecycle",
            event_bus=self.bus,
            description="Registrations, promotions and rollbacks of model versions, and how rollouts ended",
            event_pattern=aws_events.EventPattern(source=[EVENT_SOURCE], detail_type=MODEL_LIFECYCLE_EVENTS),
            targets=[target],
        )
        self.training_failures_rule = aws_events.Rule(
            self,
            "TrainingFailures",
            event_bus=self.bus,
            description="Training runs that failed (the run record holds the error)",
            event_pattern=aws_events.EventPattern(source=[EVENT_SOURCE], detail_type=TRAINING_FAILURE_EVENTS),
            targets=[target],
        )
