"""The local stack's EventBridge gap-filler: rule targets moto cannot deliver (Lambda, Step
Functions) and schedules moto never fires."""

from __future__ import annotations

import json
import re
import threading
from typing import Any

import boto3
import pytest

from infra.local import event_rules
from infra.local.event_rules import EventRules, UnsupportedSchedule, schedule_seconds, waited_for
from tests.support import REGION

FUNCTION_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:drift-fn"
MACHINE_ARN = f"arn:aws:states:{REGION}:123456789012:stateMachine:retrain"


def template(*rules: dict[str, Any]) -> dict[str, Any]:
    return {
        "Resources": {f"Rule{i}": {"Type": "AWS::Events::Rule", "Properties": p} for i, p in enumerate(rules)}
    }


class Recorder:
    def __init__(self) -> None:
        self.invoked: list[tuple[str, dict[str, Any]]] = []
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def invoke(self, logical_id: str, event: dict[str, Any]) -> None:
        with self.lock:
            self.invoked.append((logical_id, event))

    def start(self, arn: str, document: str) -> None:
        with self.lock:
            self.started.append((arn, json.loads(document)))


def rules_for(recorder: Recorder, tpl: dict[str, Any], **kwargs: Any) -> EventRules:
    return EventRules(
        tpl,
        recorder.invoke,
        recorder.start,
        function_names={"DriftFunction": "drift-fn"},
        resolve={"DriftFunction": FUNCTION_ARN}.get,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("expression", "seconds"),
    [("rate(1 minute)", 60), ("rate(5 minutes)", 300), ("rate(1 hour)", 3600), ("rate(2 days)", 172800)],
)
def test_rates_are_read(expression: str, seconds: float) -> None:
    assert schedule_seconds(expression) == seconds


@pytest.mark.parametrize(
    "expression", ["cron(0 * * * ? *)", "rate(5 minute)", "rate(1 hours)", "rate(0 minutes)"]
)
def test_other_schedules_are_refused_when_the_stack_starts(expression: str) -> None:
    with pytest.raises(UnsupportedSchedule):
        rules_for(Recorder(), template({"ScheduleExpression": expression, "Targets": []}))


def test_a_schedule_fires_its_targets_sped_up_with_the_scheduled_event_or_its_input() -> None:
    recorder = Recorder()
    tpl = template(
        {
            "ScheduleExpression": "rate(1 minute)",
            "Targets": [
                {"Arn": {"Fn::GetAtt": ["DriftFunction", "Arn"]}, "Id": "a"},
                {"Arn": {"Fn::GetAtt": ["DriftFunction", "Arn"]}, "Id": "b", "Input": '{"model": "m"}'},
            ],
        },
        {"ScheduleExpression": "rate(1 hour)", "State": "DISABLED", "Targets": []},
    )
    rules = rules_for(recorder, tpl, speedup=600.0)  # every 0.1 s
    assert len(rules.schedules) == 1
    rules.start(region=REGION, account="123456789012")
    try:
        assert waited_for(rules, 4)
    finally:
        rules.stop()
    events = [event for logical_id, event in recorder.invoked if logical_id == "DriftFunction"]
    scheduled = [e for e in events if e.get("detail-type") == "Scheduled Event"]
    assert (
        scheduled
        and scheduled[0]["source"] == "aws.events"
        and scheduled[0]["resources"][0].endswith("/Rule0")
    )
    assert {"model": "m"} in events


def test_put_events_reaches_lambda_and_state_machine_targets_and_moto_keeps_the_rest(aws: None) -> None:
    recorder = Recorder()
    rules = rules_for(recorder, template())
    event_rules.install(rules)
    rules.start(region=REGION, account="123456789012")
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    queue_url = sqs.create_queue(QueueName="seen")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    events.put_rule(
        Name="drift",
        EventPattern=json.dumps({"source": ["serverless-mlops"], "detail-type": ["DriftDetected"]}),
    )
    events.put_targets(
        Rule="drift",
        Targets=[
            {"Id": "fn", "Arn": FUNCTION_ARN},
            {"Id": "sfn", "Arn": MACHINE_ARN, "InputPath": "$.detail"},
            {"Id": "queue", "Arn": queue_arn},
        ],
    )
    try:
        answer = events.put_events(
            Entries=[
                {
                    "Source": "serverless-mlops",
                    "DetailType": "DriftDetected",
                    "Detail": json.dumps({"model_name": "m"}),
                },
                {"Source": "serverless-mlops", "DetailType": "Other", "Detail": "{}"},
            ]
        )
        assert answer["FailedEntryCount"] == 0
        assert waited_for(rules, 2)
    finally:
        rules.stop()
    ((logical_id, event),) = recorder.invoked
    assert logical_id == "DriftFunction" and event["detail"] == {"model_name": "m"}
    # As EventBridge sends it: ISO 8601 to the second (moto's own is Unix seconds, a float).
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", event["time"]), event["time"]
    assert recorder.started == [(MACHINE_ARN, {"model_name": "m"})]
    messages = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", [])
    assert len(messages) == 1 and json.loads(messages[0]["Body"])["detail-type"] == "DriftDetected"


def test_a_scheduled_rule_matches_no_event_put_on_its_bus(aws: None) -> None:
    """moto would match every event against a schedule rule's empty pattern (and fail on its
    Lambda target inside PutEvents); EventBridge never does."""
    event_rules.patch_moto()
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="every-5-minutes", ScheduleExpression="rate(5 minutes)")
    events.put_targets(Rule="every-5-minutes", Targets=[{"Id": "fn", "Arn": FUNCTION_ARN}])
    answer = events.put_events(Entries=[{"Source": "serverless-mlops", "DetailType": "X", "Detail": "{}"}])
    assert answer["FailedEntryCount"] == 0
