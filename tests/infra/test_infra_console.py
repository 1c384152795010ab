"""Seeing it, in the template: the console function can read and nothing more; the dashboards'
widgets reference metrics the code emits and functions of this stack; every alarm notifies
the one encrypted operations topic."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from mlops_core.monitoring.concept_window import CONCEPT_DRIFT_METRIC
from mlops_core.storage import keys
from tests.support import ROOT

pytestmark = pytest.mark.infra
NAMESPACE = "ServerlessMLOps"


def _emitted_metric_names() -> set[str]:
    """Every metric name the code passes to Powertools' add_metric (or Powertools emits itself)."""
    names = {"ColdStart", CONCEPT_DRIFT_METRIC}
    sources = [*(ROOT / "functions").rglob("*.py"), *(ROOT / "layers" / "core" / "mlops_core").rglob("*.py")]
    for source in sources:
        for call in re.findall(r"add_metric\(\s*name=([^\n]+)", source.read_text()):
            names.update(re.findall(r'"([A-Za-z]+)"', call))
    return names


def _function_services(synthesized: SynthesizedApp) -> dict[str, str]:
    """logical id -> POWERTOOLS_SERVICE_NAME of every function of the template."""
    return {
        logical_id: resource["Properties"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"]
        for logical_id, resource in synthesized.resources_of_type("AWS::Lambda::Function").items()
        if "POWERTOOLS_SERVICE_NAME" in resource["Properties"].get("Environment", {}).get("Variables", {})
    }


def _body(synthesized: SynthesizedApp, dashboard: Any) -> dict[str, Any]:
    """A dashboard's body with references written as ``REF:<id>`` and ``ATT:<id>.<attr>``."""
    body = synthesized.resources[synthesized.logical_id(dashboard)]["Properties"]["DashboardBody"]

    def text(part: Any) -> str:
        if isinstance(part, str):
            return part
        if "Ref" in part:
            return f"REF:{part['Ref']}"
        if "Fn::GetAtt" in part:
            return f"ATT:{'.'.join(part['Fn::GetAtt'])}"
        raise AssertionError(f"unexpected token {part}")

    joined = body if isinstance(body, str) else "".join(text(p) for p in body["Fn::Join"][1])
    return dict(json.loads(joined))


def _metrics(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Each metric of the body's metric widgets, as namespace, name and dimensions."""
    found = []
    for widget in body["widgets"]:
        for row in widget.get("properties", {}).get("metrics", []):
            values = [v for v in row if not isinstance(v, dict)]
            if values and values[0] == ".":
                raise AssertionError("'.' shorthand is not expected")
            if len(values) >= 2 and not str(values[0]).startswith(("expression", "FILL")):
                namespace, name, *pairs = values
                found.append(
                    {
                        "namespace": namespace,
                        "name": name,
                        "dimensions": dict(zip(pairs[::2], pairs[1::2], strict=True)),
                    }
                )
    return found


def test_the_console_role_can_read_and_nothing_more(synthesized: SynthesizedApp) -> None:
    console = synthesized.stack.console.console
    table = synthesized.logical_id(synthesized.stack.storage.metadata_table)
    bucket = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    grants = []
    for statement in synthesized.role_policy_statements(console.role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        grants.extend(
            (a, json.dumps(statement["Resource"], sort_keys=True), statement.get("Condition"))
            for a in actions
        )
    granted = {(a, r) for a, r, _ in grants if not a.startswith(("logs:", "xray:"))}

    table_arn = json.dumps({"Fn::GetAtt": [table, "Arn"]}, sort_keys=True)
    index_arn = json.dumps(
        {"Fn::Join": ["", [{"Fn::GetAtt": [table, "Arn"]}, f"/index/{keys.LIST_INDEX}"]]}, sort_keys=True
    )
    reports = json.dumps(
        {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{keys.DRIFT_REPORTS_PREFIX}*"]]},
        sort_keys=True,
    )
    bucket_arn = json.dumps({"Fn::GetAtt": [bucket, "Arn"]}, sort_keys=True)
    assert granted == {
        ("dynamodb:GetItem", table_arn),
        ("dynamodb:Query", table_arn),
        ("dynamodb:Query", index_arn),
        ("s3:GetObject", reports),
        ("s3:ListBucket", bucket_arn),
    }
    conditions = {(a, r): c for a, r, c in grants}
    assert conditions[("dynamodb:GetItem", table_arn)] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.model_pk("*"), keys.run_pk("*")]}
    }
    assert conditions[("dynamodb:Query", index_arn)] == {
        "ForAllValues:StringLike": {
            "dynamodb:LeadingKeys": [keys.ALL_MODELS, keys.model_runs("*"), keys.ALL_BATCH_JOBS]
        }
    }
    assert conditions[("s3:ListBucket", bucket_arn)] == {
        "StringLike": {"s3:prefix": [f"{keys.DRIFT_REPORTS_PREFIX}*"]}
    }
    # Logs: only its own group, as every function.
    logs = {r for a, r, _ in grants if a.startswith("logs:")}
    assert logs == {
        json.dumps({"Fn::GetAtt": [synthesized.logical_id(console.log_group), "Arn"]}, sort_keys=True)
    }


def test_the_console_function_runs_on_the_core_layer_from_its_folder(synthesized: SynthesizedApp) -> None:
    properties = synthesized.resources[synthesized.logical_id(synthesized.stack.console.console.function)][
        "Properties"
    ]

    assert properties["Handler"] == "handler.lambda_handler"
    assert properties["Layers"] == [{"Ref": synthesized.logical_id(synthesized.stack.layers.core)}]
    assert {t["Key"]: t["Value"] for t in properties["Tags"]}["mlops:source"] == "functions/console"
    assert set(properties["Environment"]["Variables"]) >= {"ARTIFACTS_BUCKET", "METADATA_TABLE"}
    assert "EVENT_BUS_NAME" not in properties["Environment"]["Variables"]  # it publishes nothing


def test_the_operations_dashboard_references_only_emitted_metrics_and_this_stacks_resources(
    synthesized: SynthesizedApp,
) -> None:
    body = _body(synthesized, synthesized.stack.console.operations)
    services = _function_services(synthesized)
    emitted = _emitted_metric_names()
    api_name = synthesized.resources[synthesized.logical_id(synthesized.stack.api.rest_api)]["Properties"][
        "Name"
    ]
    state_machine = synthesized.logical_id(synthesized.stack.training.state_machine)
    metrics = _metrics(body)
    namespaces = {m["namespace"] for m in metrics}

    assert namespaces == {NAMESPACE, "AWS/ApiGateway", "AWS/Lambda", "AWS/States"}
    for metric in metrics:
        dimensions = metric["dimensions"]
        if metric["namespace"] == NAMESPACE:
            assert metric["name"] in emitted, metric
            assert dimensions["service"] in services.values(), metric
            if "function_name" in dimensions:
                assert dimensions["function_name"].removeprefix("REF:") in services, metric
        elif metric["namespace"] == "AWS/Lambda":
            assert dimensions["FunctionName"].removeprefix("REF:") in services, metric
        elif metric["namespace"] == "AWS/States":
            assert dimensions == {"StateMachineArn": f"REF:{state_machine}"}, metric
        else:
            assert dimensions == {"ApiName": api_name}, metric
    names = {(m["namespace"], m["name"]) for m in metrics}
    # What the issue asks the dashboard to show.
    assert {
        ("AWS/ApiGateway", "Count"),
        ("AWS/ApiGateway", "Latency"),
        ("AWS/ApiGateway", "4XXError"),
        ("AWS/ApiGateway", "5XXError"),
        (NAMESPACE, "ClientErrors"),
        (NAMESPACE, "ServerErrors"),
        ("AWS/Lambda", "Errors"),
        ("AWS/Lambda", "Throttles"),
        (NAMESPACE, "ColdStart"),
        (NAMESPACE, "ArtifactIntegrityFailures"),
        ("AWS/States", "ExecutionsStarted"),
        ("AWS/States", "ExecutionsSucceeded"),
        (NAMESPACE, "TrainingRunsRejected"),
        (NAMESPACE, "TrainingRunsFailed"),
        (NAMESPACE, "DriftRuns"),
        (NAMESPACE, "DriftDetected"),
    } <= names
    # Every function of the stack is on the errors and throttles graphs.
    graphed = {
        m["dimensions"]["FunctionName"].removeprefix("REF:") for m in metrics if m["name"] == "Throttles"
    }
    assert graphed == set(services)


def test_the_models_dashboard_holds_the_console_widgets_with_a_model_variable(
    synthesized: SynthesizedApp,
) -> None:
    body = _body(synthesized, synthesized.stack.console.models)
    console = synthesized.logical_id(synthesized.stack.console.console.function)
    widgets = [w for w in body["widgets"] if w["type"] == "custom"]

    assert {w["properties"]["endpoint"] for w in widgets} == {f"ATT:{console}.Arn"}
    pages = {w["properties"]["params"]["page"] for w in widgets}
    assert pages == {"models", "model", "runs", "routing", "drift"}
    (variable,) = body["variables"]
    assert variable["type"] == "pattern"
    assert variable["inputType"] == "input"
    model = variable["pattern"]
    assert all(w["properties"]["params"].get("model", model) == model for w in widgets)


def test_every_alarm_notifies_the_encrypted_operations_topic_when_it_fires_and_when_it_clears(
    synthesized: SynthesizedApp,
) -> None:
    topic = synthesized.logical_id(synthesized.stack.monitoring.alarm_topic)
    alarms = synthesized.resources_of_type("AWS::CloudWatch::Alarm")

    assert len(alarms) >= 10
    for logical_id, alarm in alarms.items():
        properties = alarm["Properties"]
        assert properties["AlarmActions"] == [{"Ref": topic}], logical_id
        assert properties["OKActions"] == [{"Ref": topic}], logical_id
        assert "docs/operations.md#" in properties["AlarmDescription"], logical_id
    assert "KmsMasterKeyId" in synthesized.resources[topic]["Properties"]


def test_the_operational_alarms_cover_what_an_operator_must_act_on(synthesized: SynthesizedApp) -> None:
    console = synthesized.stack.console
    functions = _function_services(synthesized)

    assert {
        "Api5xxRate",
        "ApiLatencyP99",
        "LambdaThrottles",
        "ArtifactIntegrityFailures",
        "TrainingFailures",
    } <= set(console.alarms)
    errors = [
        name for name in console.alarms if name.endswith("Errors") and name != "ArtifactIntegrityFailures"
    ]
    assert len(errors) == len(functions)  # one per function of the stack


def test_the_runbook_has_a_section_for_every_alarm(synthesized: SynthesizedApp) -> None:
    runbook = (ROOT / "docs" / "operations.md").read_text()
    anchors = {re.sub(r"[^a-z0-9]", "", h.lower()) for h in re.findall(r"^#+ (.+)$", runbook, flags=re.M)}
    for alarm in synthesized.resources_of_type("AWS::CloudWatch::Alarm").values():
        (anchor,) = re.findall(r"docs/operations\.md#([a-z0-9-]+)", alarm["Properties"]["AlarmDescription"])
        assert anchor in anchors, anchor
