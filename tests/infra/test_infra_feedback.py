"""The feedback function in the template: `POST /feedback` behind the predict API key, and a
role with exactly the actions the function's code uses, on exactly its two tables."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

pytestmark = pytest.mark.infra


def _grants(synthesized: SynthesizedApp) -> set[tuple[tuple[str, ...], str]]:
    grants = set()
    for statement in synthesized.role_policy_statements(synthesized.stack.feedback.function.role):
        assert statement["Effect"] == "Allow" and "Condition" not in statement, statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        grants |= {(tuple(sorted(actions)), json.dumps(r, sort_keys=True)) for r in resources}
    return grants


def _arn(logical_id: str) -> str:
    return json.dumps({"Fn::GetAtt": [logical_id, "Arn"]}, sort_keys=True)


def _properties(synthesized: SynthesizedApp) -> dict[str, Any]:
    function = synthesized.stack.feedback.function.function
    properties: dict[str, Any] = synthesized.resources[synthesized.logical_id(function)]["Properties"]
    return properties


def test_post_feedback_requires_the_predict_api_key(synthesized: SynthesizedApp) -> None:
    method = synthesized.resources[synthesized.logical_id(synthesized.stack.feedback.method)]["Properties"]
    resource = synthesized.resources[method["ResourceId"]["Ref"]]["Properties"]

    assert (method["HttpMethod"], resource["PathPart"]) == ("POST", "feedback")
    assert resource["ParentId"] == {
        "Fn::GetAtt": [synthesized.logical_id(synthesized.stack.api.rest_api), "RootResourceId"]
    }
    assert (method["AuthorizationType"], method["ApiKeyRequired"]) == ("NONE", True)
    function = synthesized.logical_id(synthesized.stack.feedback.function.function)
    assert json.dumps({"Fn::GetAtt": [function, "Arn"]}) in json.dumps(method["Integration"]["Uri"])
    # The stage's usage plan (throttle and quota per key) is the one predict clients have.
    (plan,) = synthesized.resources_of_type("AWS::ApiGateway::UsagePlan").values()
    assert [s["Stage"] for s in plan["Properties"]["ApiStages"]] == [
        {"Ref": synthesized.logical_id(synthesized.stack.api.rest_api.deployment_stage)}
    ]


def test_the_feedback_role_may_read_and_put_the_log_and_get_registry_items_only(
    synthesized: SynthesizedApp,
) -> None:
    stack = synthesized.stack
    service = stack.feedback.function

    assert _grants(synthesized) == {
        (("logs:CreateLogStream", "logs:PutLogEvents"), _arn(synthesized.logical_id(service.log_group))),
        (("xray:PutTelemetryRecords", "xray:PutTraceSegments"), json.dumps("*")),
        # PredictionLog.get_with_feedback (Query), .feedback (GetItem), .record_feedback (PutItem)
        (
            ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"),
            _arn(synthesized.logical_id(stack.capture.predictions_table)),
        ),
        # RegistryLookup.get_version (GetItem of the version, then of the model if it is missing)
        (("dynamodb:GetItem",), _arn(synthesized.logical_id(stack.storage.metadata_table))),
    }


def test_the_feedback_function_is_configured_by_its_settings(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stack
    properties = _properties(synthesized)

    assert properties["Handler"] == "handler.lambda_handler"
    assert (properties["Runtime"], properties["MemorySize"], properties["Timeout"]) == ("python3.12", 512, 29)
    assert properties["Layers"] == [{"Ref": synthesized.logical_id(stack.layers.core)}]
    variables = properties["Environment"]["Variables"]
    assert variables["METADATA_TABLE"] == {"Ref": synthesized.logical_id(stack.storage.metadata_table)}
    assert variables["PREDICTIONS_TABLE"] == {"Ref": synthesized.logical_id(stack.capture.predictions_table)}
    assert variables["FEEDBACK_CAPTURE_DELAY_SECONDS"] == "300"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "feedback"
    assert {"Key": "mlops:source", "Value": "functions/feedback"} in properties["Tags"]


def test_the_feedback_settings_read_what_the_template_sets(synthesized: SynthesizedApp) -> None:
    from mlops_core.config.settings import FeedbackSettings

    variables = _properties(synthesized)["Environment"]["Variables"]
    fields = FeedbackSettings.model_fields.values()
    required = {f.validation_alias for f in fields if f.is_required()}
    assert required == {"METADATA_TABLE", "PREDICTIONS_TABLE"} and required <= set(variables)
    # Every knob the template sets is one the function reads.
    assert {n for n in variables if n.startswith("FEEDBACK_")} <= {f.validation_alias for f in fields}


def test_the_feedback_code_asset_is_its_folder(synthesized: SynthesizedApp) -> None:
    staged = synthesized.asset_dir(_properties(synthesized)["Code"])
    source = Path(__file__).resolve().parents[2] / "functions" / "feedback"
    assert sorted(p.name for p in staged.iterdir()) == sorted(
        p.name for p in source.iterdir() if p.name != "__pycache__"
    )
