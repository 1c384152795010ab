"""The feature store in the template: its table (TTL), the lookup routes behind the predict API
key, the IAM routes of the materialize function, the schedule and on-demand rules, the
freshness alarm, and two roles with exactly what each function's code uses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from infra.cdk.constructs.features import ADMIN_ROUTES, LOOKUP_ROUTES
from infra.local.gateway import routes_from_template

pytestmark = pytest.mark.infra


def _statements(synthesized: SynthesizedApp, role: Any) -> list[dict[str, Any]]:
    statements = synthesized.role_policy_statements(role)
    for statement in statements:
        assert statement["Effect"] == "Allow" and "NotAction" not in statement, statement
    return statements


def _actions_on(statements: list[dict[str, Any]], resource: Any) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if resource in resources:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            found |= set(actions)
    return found


def test_the_features_table_is_keyed_by_view_and_entity_with_a_ttl(synthesized: SynthesizedApp) -> None:
    table = synthesized.resources[synthesized.logical_id(synthesized.stack.features.table)]["Properties"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_lookups_need_the_api_key_and_view_routes_iam(synthesized: SynthesizedApp) -> None:
    routes = {(r.method, r.resource): r for r in routes_from_template(synthesized.template_json)}
    lookup = synthesized.logical_id(synthesized.stack.features.lookup.function)
    materialize = synthesized.logical_id(synthesized.stack.features.materialize.function)
    for path, method in LOOKUP_ROUTES:
        route = routes[(method, path)]
        assert (route.function, route.authorization, route.api_key_required) == (lookup, "NONE", True)
    for path, method in ADMIN_ROUTES:
        route = routes[(method, path)]
        assert (route.function, route.authorization, route.api_key_required) == (
            materialize,
            "AWS_IAM",
            False,
        )


def test_the_lookup_role_reads_features_and_view_items_only(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stack
    statements = _statements(synthesized, stack.features.lookup.role)
    features = {"Fn::GetAtt": [synthesized.logical_id(stack.features.table), "Arn"]}
    metadata = {"Fn::GetAtt": [synthesized.logical_id(stack.storage.metadata_table), "Arn"]}
    assert _actions_on(statements, features) == {"dynamodb:GetItem", "dynamodb:BatchGetItem"}
    assert _actions_on(statements, metadata) == {"dynamodb:GetItem"}
    (on_metadata,) = [s for s in statements if s["Resource"] == metadata]
    assert on_metadata["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["FEATURE_VIEW#*"]}
    }
    assert not any("s3:" in json.dumps(s["Action"]) for s in statements)


def test_the_materialize_role_never_deletes_and_reads_only_feature_sources(
    synthesized: SynthesizedApp,
) -> None:
    stack = synthesized.stack
    statements = _statements(synthesized, stack.features.materialize.role)
    actions = {
        a for s in statements for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert not any("Delete" in a for a in actions)
    features = {"Fn::GetAtt": [synthesized.logical_id(stack.features.table), "Arn"]}
    assert _actions_on(statements, features) == {
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "dynamodb:BatchWriteItem",
    }
    s3 = [
        s
        for s in statements
        if any("s3:" in a for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))
    ]
    assert s3 and all("feature-sources/" in json.dumps(s) for s in s3)
    metadata = {"Fn::GetAtt": [synthesized.logical_id(stack.storage.metadata_table), "Arn"]}
    on_views, on_models = [s for s in statements if s["Resource"] == metadata]
    assert on_views["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["FEATURE_VIEW#*"]}}
    # apply reads (never writes) the models using a view: their aliases, routing and versions
    assert on_models["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["MODEL#*"]}}
    assert set(on_models["Action"]) == {"dynamodb:GetItem", "dynamodb:Query"}


def test_the_inference_role_only_batch_reads_the_features_table(synthesized: SynthesizedApp) -> None:
    """Predictions by entity id: one BatchGetItem per request, nothing else of the store."""
    stack = synthesized.stack
    statements = _statements(synthesized, stack.api.inference.role)
    features = {"Fn::GetAtt": [synthesized.logical_id(stack.features.table), "Arn"]}
    assert _actions_on(statements, features) == {"dynamodb:BatchGetItem"}
    environment = synthesized.resources[synthesized.logical_id(stack.api.inference.function)]["Properties"][
        "Environment"
    ]["Variables"]
    assert environment["FEATURES_TABLE"] == {"Ref": synthesized.logical_id(stack.features.table)}


def test_one_schedule_and_the_on_demand_rule_invoke_the_materializer(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stack
    function = synthesized.logical_id(stack.features.materialize.function)
    schedule = synthesized.resources[synthesized.logical_id(stack.features.schedule)]["Properties"]
    assert schedule["ScheduleExpression"] == "rate(5 minutes)"
    on_demand = synthesized.resources[synthesized.logical_id(stack.features.on_demand)]["Properties"]
    assert on_demand["EventPattern"] == {
        "source": ["serverless-mlops"],
        "detail-type": ["FeatureMaterializationRequested"],
    }
    for rule in (schedule, on_demand):
        (target,) = rule["Targets"]
        assert target["Arn"] == {"Fn::GetAtt": [function, "Arn"]}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    properties = synthesized.resources[function]["Properties"]
    assert properties["Timeout"] == 900 and properties["MemorySize"] == 2048


def test_the_freshness_alarm_watches_stale_views_and_a_silent_schedule(synthesized: SynthesizedApp) -> None:
    alarm = synthesized.resources[synthesized.logical_id(synthesized.stack.features.freshness_alarm)][
        "Properties"
    ]
    assert (alarm["MetricName"], alarm["Namespace"]) == ("StaleFeatureViews", "ServerlessMLOps")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": "materialize"}]
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold" and alarm["Threshold"] == 1
    assert alarm["TreatMissingData"] == "breaching"
