"""The project's EventBridge bus: domain events (training failed, version registered, ...).

Events go to a bus of their own rather than the account's default bus, so that rules
and archives for this project neither see nor disturb anybody else's events.
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy, Stack, aws_events
from constructs import Construct

EVENT_SOURCE = "serverless-mlops"


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
