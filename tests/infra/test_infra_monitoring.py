"""Drift monitoring in the template: the drift function on its schedule, the drift API behind
IAM routes, roles that allow only what each uses, alarms into an encrypted topic, and the
drift events routed to the notifications queue."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from infra.cdk.constructs.monitoring import DRIFT_ROUTES
from infra.local.event_rules import scheduled_rules
from infra.local.gateway import routes_from_template
from mlops_core.monitoring.config import DISPATCH_MINUTES

pytestmark = pytest.mark.infra


def _properties(synthesized: SynthesizedApp, construct: Any) -> dict[str, Any]:
    return dict(synthesized.resources[synthesized.logical_id(construct)]["Properties"])


def _grants(synthesized: SynthesizedApp, role: Any) -> dict[str, list[tuple[str, Any]]]:
    """action -> [(resource as JSON, condition)], without the log group's and X-Ray's."""
    granted: dict[str, list[tuple[str, Any]]] = {}
    for statement in synthesized.role_policy_statements(role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            if action.startswith(("logs:", "xray:")):
                continue
            for resource in resources:
                granted.setdefault(action, []).append(
                    (json.dumps(resource, sort_keys=True), statement.get("Condition"))
                )
    return granted


def _bucket_objects(synthesized: SynthesizedApp, pattern: str) -> str:
    bucket = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    return json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{pattern}"]]}, sort_keys=True)


def test_the_drift_function_runs_on_the_core_layer_alone(synthesized: SynthesizedApp) -> None:
    monitoring = synthesized.stack.monitoring
    drift = _properties(synthesized, monitoring.drift.function)
    api = _properties(synthesized, monitoring.api.function)

    assert drift["Layers"] == [{"Ref": synthesized.logical_id(synthesized.stack.layers.core)}]
    assert api["Layers"] == drift["Layers"]
    assert (drift["Handler"], drift["Timeout"], drift["MemorySize"]) == ("handler.lambda_handler", 900, 3008)
    assert (api["Handler"], api["Timeout"]) == ("api.lambda_handler", 29)
    assert api["Environment"]["Variables"]["DRIFT_FUNCTION_NAME"] == {
        "Ref": synthesized.logical_id(monitoring.drift.function)
    }
    assert drift["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "drift"


def test_the_schedule_invokes_the_drift_function_every_dispatch_period(synthesized: SynthesizedApp) -> None:
    rule = _properties(synthesized, synthesized.stack.monitoring.schedule)
    (target,) = rule["Targets"]

    assert rule["ScheduleExpression"] == f"rate({DISPATCH_MINUTES} minutes)"
    assert target["Arn"] == {
        "Fn::GetAtt": [synthesized.logical_id(synthesized.stack.monitoring.drift.function), "Arn"]
    }
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] == DISPATCH_MINUTES * 60
    # The local stack fires it at the declared period.
    schedule = next(r for r in scheduled_rules(synthesized.template_json) if r.targets == (target,))
    assert schedule.period_seconds == DISPATCH_MINUTES * 60


def test_the_drift_role_reads_and_writes_only_what_runs_use(synthesized: SynthesizedApp) -> None:
    monitoring = synthesized.stack.monitoring
    table = synthesized.logical_id(synthesized.stack.storage.metadata_table)
    granted = _grants(synthesized, monitoring.drift.role)
    models_only = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["MODEL#*"]}}
    table_arn = json.dumps({"Fn::GetAtt": [table, "Arn"]}, sort_keys=True)

    for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        assert granted.pop(action) == [(table_arn, models_only)]
    # Query on the index's MONITORED partition only (the dispatcher): a run reads items by key.
    ((index, condition),) = granted.pop("dynamodb:Query")
    assert index != table_arn and "index" in index
    assert condition == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["MONITORED"]}}
    assert sorted(r for r, _ in granted.pop("s3:GetObject")) == sorted(
        [
            _bucket_objects(synthesized, "capture/*"),
            _bucket_objects(synthesized, "feedback/*"),  # concept drift: the counted feedback
            _bucket_objects(synthesized, "runs/*/reference_profile.json*"),
        ]
    )
    # It never reads an object by version id: no s3:GetObjectVersion.
    assert "s3:GetObjectVersion" not in granted
    assert [r for r, _ in granted.pop("s3:PutObject")] == [_bucket_objects(synthesized, "drift-reports/*")]
    listed = sorted(json.dumps(c, sort_keys=True) for _, c in granted.pop("s3:ListBucket"))
    prefixes = ("capture/*", "feedback/*", "runs/*")
    assert listed == sorted(json.dumps({"StringLike": {"s3:prefix": [p]}}, sort_keys=True) for p in prefixes)
    bus = synthesized.logical_id(synthesized.stack.events.bus)
    assert granted.pop("events:PutEvents") == [
        (json.dumps({"Fn::GetAtt": [bus, "Arn"]}, sort_keys=True), None)
    ]
    assert granted == {}, "nothing else: no deletes, no other prefixes, no other function"


def test_the_drift_api_may_invoke_the_drift_function_and_nothing_else(synthesized: SynthesizedApp) -> None:
    monitoring = synthesized.stack.monitoring
    granted = _grants(synthesized, monitoring.api.role)
    drift = synthesized.logical_id(monitoring.drift.function)

    table_arn = json.dumps(
        {"Fn::GetAtt": [synthesized.logical_id(synthesized.stack.storage.metadata_table), "Arn"]},
        sort_keys=True,
    )
    models_only = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["MODEL#*"]}}
    runs_only = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["RUN#*"]}}

    assert granted.pop("lambda:InvokeFunction") == [(json.dumps({"Fn::GetAtt": [drift, "Arn"]}), None)]
    # Reports: read as they are (no version id) and listed (a missing one is a 404), never written.
    assert [r for r, _ in granted.pop("s3:GetObject")] == [_bucket_objects(synthesized, "drift-reports/*")]
    assert [c for _, c in granted.pop("s3:ListBucket")] == [
        {"StringLike": {"s3:prefix": ["drift-reports/*"]}}
    ]
    # Models' items: configuration, runs, decisions; a retraining decision's training run by key only.
    assert sorted(granted.pop("dynamodb:GetItem"), key=str) == sorted(
        [(table_arn, models_only), (table_arn, runs_only)], key=str
    )
    for action in ("dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"):
        assert granted.pop(action) == [(table_arn, models_only)], action
    assert granted == {}, "nothing else: no object versions, no writes to S3, no deletes"


def test_the_drift_routes_are_iam_routes_of_the_drift_api(synthesized: SynthesizedApp) -> None:
    api = synthesized.logical_id(synthesized.stack.monitoring.api.function)
    routes = {(r.resource, r.method): r for r in routes_from_template(synthesized.template_json)}

    for path, method in DRIFT_ROUTES:
        route = routes[(path, method)]
        assert (route.function, route.authorization, route.api_key_required) == (api, "AWS_IAM", False)


def _alarm(synthesized: SynthesizedApp, name: str) -> dict[str, Any]:
    return _properties(synthesized, synthesized.stack.monitoring.alarms[name])


def test_dataset_drift_and_failed_runs_alarm_into_the_topic(synthesized: SynthesizedApp) -> None:
    topic = {"Ref": synthesized.logical_id(synthesized.stack.monitoring.alarm_topic)}
    drift = _alarm(synthesized, "DatasetDrift")
    failures = _alarm(synthesized, "DriftRunFailures")

    assert (drift["MetricName"], drift["Namespace"], drift["Statistic"]) == (
        "DriftDetected",
        "ServerlessMLOps",
        "Sum",
    )
    assert drift["Dimensions"] == [{"Name": "service", "Value": "drift"}]
    (expression,) = [m for m in failures["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "FILL(failures, 0) + FILL(errors, 0)"
    names = {m["MetricStat"]["Metric"]["MetricName"] for m in failures["Metrics"] if "MetricStat" in m}
    assert names == {"DriftRunFailures", "Errors"}
    for alarm in (drift, failures):
        assert alarm["Threshold"] == 1 and alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        assert alarm["AlarmActions"] == [topic] and alarm["OKActions"] == [topic]


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use(synthesized: SynthesizedApp) -> None:
    monitoring = synthesized.stack.monitoring
    topic = _properties(synthesized, monitoring.alarm_topic)
    key = _properties(synthesized, monitoring.alarm_key)

    assert topic["KmsMasterKeyId"] == {"Fn::GetAtt": [synthesized.logical_id(monitoring.alarm_key), "Arn"]}
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert sorted(cloudwatch["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    (policy,) = synthesized.resources_of_type("AWS::SNS::TopicPolicy").values()
    (deny,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_drift_events_reach_the_notifications_queue(synthesized: SynthesizedApp) -> None:
    events = synthesized.stack.events
    rule = _properties(synthesized, events.drift_findings_rule)

    assert rule["EventPattern"] == {
        "source": ["serverless-mlops"],
        "detail-type": ["DriftDetected", "DriftRunFailed"],
    }
    (target,) = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [synthesized.logical_id(events.notifications), "Arn"]}
