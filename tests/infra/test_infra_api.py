"""The REST API: its exact routes and their authorisation, the prod stage, the usage plan."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from synthesized_app import SynthesizedApp

pytestmark = pytest.mark.infra

#: (method, path) -> (function, authorization type, API key required)
EXPECTED_ROUTES = {
    ("GET", "/health"): ("inference", "NONE", False),
    ("POST", "/models/{name}/predict"): ("inference", "NONE", True),
    ("GET", "/models"): ("registry", "AWS_IAM", False),
    ("POST", "/models"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}/versions"): ("registry", "AWS_IAM", False),
    ("POST", "/models/{name}/versions"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}/versions/{version}"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}/aliases/{alias}"): ("registry", "AWS_IAM", False),
    ("PUT", "/models/{name}/aliases/{alias}"): ("registry", "AWS_IAM", False),
    ("PATCH", "/models/{name}"): ("registry", "AWS_IAM", False),
    ("PATCH", "/models/{name}/versions/{version}"): ("registry", "AWS_IAM", False),
    ("POST", "/models/{name}/versions/{version}/promote"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}/versions/{version}/card"): ("registry", "AWS_IAM", False),
    ("POST", "/models/{name}/rollback"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}/audit"): ("registry", "AWS_IAM", False),
    ("PUT", "/models/{name}/policy"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}/routing"): ("registry", "AWS_IAM", False),
    ("PUT", "/models/{name}/routing"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}/routing/history"): ("registry", "AWS_IAM", False),
    ("GET", "/models/{name}/feature-policy"): ("registry", "AWS_IAM", False),
    ("PUT", "/models/{name}/feature-policy"): ("registry", "AWS_IAM", False),
    ("POST", "/training"): ("training-api", "AWS_IAM", False),
    ("GET", "/runs/{run_id}"): ("training-api", "AWS_IAM", False),
    ("GET", "/models/{name}/runs"): ("training-api", "AWS_IAM", False),
    ("POST", "/feedback"): ("feedback", "NONE", True),
    ("POST", "/models/{name}/rollouts"): ("rollout-api", "AWS_IAM", False),
    ("GET", "/models/{name}/rollouts"): ("rollout-api", "AWS_IAM", False),
    ("GET", "/models/{name}/rollouts/{rollout_id}"): ("rollout-api", "AWS_IAM", False),
    ("POST", "/models/{name}/rollouts/{rollout_id}/abort"): ("rollout-api", "AWS_IAM", False),
    ("PUT", "/models/{name}/monitoring"): ("drift-api", "AWS_IAM", False),
    ("GET", "/models/{name}/monitoring"): ("drift-api", "AWS_IAM", False),
    ("POST", "/models/{name}/drift-runs"): ("drift-api", "AWS_IAM", False),
    ("GET", "/models/{name}/drift-runs"): ("drift-api", "AWS_IAM", False),
    ("GET", "/models/{name}/drift-runs/{run_id}"): ("drift-api", "AWS_IAM", False),
    ("GET", "/models/{name}/drift-runs/{run_id}/report"): ("drift-api", "AWS_IAM", False),
    ("GET", "/models/{name}/drift"): ("drift-api", "AWS_IAM", False),
    ("GET", "/models/{name}/retraining"): ("drift-api", "AWS_IAM", False),
    ("GET", "/models/{name}/retraining/{decision_id}"): ("drift-api", "AWS_IAM", False),
    ("GET", "/features/{view}/{entity_id}"): ("features", "NONE", True),
    ("POST", "/features/{view}"): ("features", "NONE", True),
    ("GET", "/feature-views"): ("materialize", "AWS_IAM", False),
    ("PUT", "/feature-views/{view}"): ("materialize", "AWS_IAM", False),
    ("GET", "/feature-views/{view}"): ("materialize", "AWS_IAM", False),
    ("POST", "/feature-views/{view}/materializations"): ("materialize", "AWS_IAM", False),
    ("GET", "/feature-views/{view}/materializations"): ("materialize", "AWS_IAM", False),
    ("GET", "/feature-views/{view}/materializations/{run_id}"): ("materialize", "AWS_IAM", False),
    ("GET", "/feature-views/{view}/freshness"): ("materialize", "AWS_IAM", False),
    ("POST", "/batch-predictions"): ("batch-api", "AWS_IAM", False),
    ("GET", "/batch-predictions"): ("batch-api", "AWS_IAM", False),
    ("GET", "/batch-predictions/{job_id}"): ("batch-api", "AWS_IAM", False),
}


def _resource_path(resources: dict[str, dict[str, Any]], resource_ref: dict[str, Any]) -> str:
    """Rebuild a method's path from the chain of AWS::ApiGateway::Resource parents."""
    if "Fn::GetAtt" in resource_ref:  # the API's root resource
        return ""
    properties = resources[resource_ref["Ref"]]["Properties"]
    return _resource_path(resources, properties["ParentId"]) + "/" + properties["PathPart"]


def _routes(synthesized: SynthesizedApp) -> dict[tuple[str, str], dict[str, Any]]:
    resources = synthesized.resources
    return {
        (
            method["Properties"]["HttpMethod"],
            _resource_path(resources, method["Properties"]["ResourceId"]),
        ): method["Properties"]
        for method in synthesized.resources_of_type("AWS::ApiGateway::Method").values()
    }


def _function_names_by_arn(synthesized: SynthesizedApp) -> dict[str, str]:
    stack = synthesized.stack
    services = (
        ("inference", stack.api.inference),
        ("registry", stack.api.registry),
        ("training-api", stack.training.api),
        ("feedback", stack.feedback.function),
        ("rollout-api", stack.rollout.api),
        ("drift-api", stack.monitoring.api),
        ("features", stack.features.lookup),
        ("materialize", stack.features.materialize),
        ("batch-api", stack.batch.api),
    )
    return {
        json.dumps({"Fn::GetAtt": [synthesized.logical_id(service.function), "Arn"]}): name
        for name, service in services
    }


def test_api_serves_exactly_the_designed_routes_with_their_auth(synthesized: SynthesizedApp) -> None:
    functions = _function_names_by_arn(synthesized)
    actual = {}
    for route, properties in _routes(synthesized).items():
        uri_parts = properties["Integration"]["Uri"]["Fn::Join"][1]
        target = next(functions[json.dumps(part)] for part in uri_parts if json.dumps(part) in functions)
        actual[route] = (target, properties["AuthorizationType"], properties.get("ApiKeyRequired", False))

    assert actual == EXPECTED_ROUTES


def test_every_route_is_a_lambda_proxy_integration_with_validated_path_parameters(
    synthesized: SynthesizedApp,
) -> None:
    validator_id = synthesized.logical_id(synthesized.stack.api.request_validator)
    for (http_method, path), properties in _routes(synthesized).items():
        expected_parameters = {
            f"method.request.path.{part[1:-1]}": True for part in path.split("/") if part.startswith("{")
        }
        assert properties["Integration"]["Type"] == "AWS_PROXY", (http_method, path)
        assert properties["Integration"]["IntegrationHttpMethod"] == "POST", (http_method, path)
        assert properties["RequestValidatorId"] == {"Ref": validator_id}, (http_method, path)
        assert properties.get("RequestParameters", {}) == expected_parameters, (http_method, path)


def test_api_has_no_greedy_proxy_resources(synthesized: SynthesizedApp) -> None:
    path_parts = [
        resource["Properties"]["PathPart"]
        for resource in synthesized.resources_of_type("AWS::ApiGateway::Resource").values()
    ]

    assert not [part for part in path_parts if part.endswith("+}")]
    assert not [route for route in _routes(synthesized) if route[0] == "ANY"]


def test_request_validator_checks_parameters_and_bodies(template: Template) -> None:
    template.resource_count_is("AWS::ApiGateway::RequestValidator", 1)
    template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )


def test_prod_stage_is_throttled_traced_and_logged(synthesized: SynthesizedApp) -> None:
    access_log_group_id = synthesized.logical_id(synthesized.stack.api.access_log_group)
    stages = synthesized.resources_of_type("AWS::ApiGateway::Stage")

    assert len(stages) == 1
    (stage,) = stages.values()
    properties = stage["Properties"]
    assert properties["StageName"] == "prod"
    assert properties["TracingEnabled"] is True
    assert properties["MethodSettings"] == [
        {
            "HttpMethod": "*",
            "ResourcePath": "/*",
            "ThrottlingRateLimit": 100,
            "ThrottlingBurstLimit": 200,
            "MetricsEnabled": True,
            "LoggingLevel": "ERROR",
            "DataTraceEnabled": False,
        }
    ]
    destination = json.dumps(properties["AccessLogSetting"]["DestinationArn"])
    assert json.dumps({"Ref": access_log_group_id}) in destination
    assert synthesized.resources[access_log_group_id]["Properties"]["RetentionInDays"] == 90


def test_access_log_lines_are_json_with_request_and_caller_fields(synthesized: SynthesizedApp) -> None:
    (stage,) = synthesized.resources_of_type("AWS::ApiGateway::Stage").values()

    access_log_format = json.loads(stage["Properties"]["AccessLogSetting"]["Format"])

    assert access_log_format["requestId"] == "$context.requestId"
    assert access_log_format["status"] == "$context.status"
    assert access_log_format["resourcePath"] == "$context.resourcePath"
    assert access_log_format["userArn"] == "$context.identity.userArn"
    assert access_log_format["apiKeyId"] == "$context.identity.apiKeyId"


def test_api_gateway_can_write_execution_logs(template: Template) -> None:
    template.has_resource_properties(
        "AWS::ApiGateway::Account", {"CloudWatchRoleArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]}}
    )


def test_predict_usage_plan_throttles_and_caps_each_key_on_the_prod_stage(
    synthesized: SynthesizedApp,
) -> None:
    api = synthesized.stack.api
    plan_id = synthesized.logical_id(api.predict_usage_plan)
    plan = synthesized.resources[plan_id]["Properties"]

    assert plan["Throttle"] == {"RateLimit": 50, "BurstLimit": 100}
    assert plan["Quota"] == {"Limit": 100_000, "Period": "DAY"}
    assert [(stage["ApiId"], stage["Stage"]) for stage in plan["ApiStages"]] == [
        (
            {"Ref": synthesized.logical_id(api.rest_api)},
            {"Ref": synthesized.logical_id(api.rest_api.deployment_stage)},
        )
    ]
    synthesized.template.has_resource_properties(
        "AWS::ApiGateway::UsagePlanKey",
        {
            "KeyId": {"Ref": synthesized.logical_id(api.predict_api_key)},
            "KeyType": "API_KEY",
            "UsagePlanId": {"Ref": plan_id},
        },
    )


def test_lambda_permissions_are_scoped_to_one_route_each(synthesized: SynthesizedApp) -> None:
    permissions = {
        logical_id: permission
        for logical_id, permission in synthesized.resources_of_type("AWS::Lambda::Permission").items()
        if permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    }

    # One permission per route, none for console test invocations (they would double the
    # functions' resource policies, which are limited to 20 KB).
    assert len(permissions) == len(EXPECTED_ROUTES)
    for permission in permissions.values():
        source_arn = json.dumps(permission["Properties"]["SourceArn"])
        assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
        # The method and path after the stage: never a wildcard method (a path parameter is a `*`).
        tail = permission["Properties"]["SourceArn"]["Fn::Join"][1][-1]
        assert not tail.startswith("/*/") and '"/test-invoke-stage/' not in source_arn, source_arn


def test_stack_outputs_name_what_clients_and_operators_need(synthesized: SynthesizedApp) -> None:
    stack = synthesized.stack
    outputs = synthesized.template_json["Outputs"]

    assert set(outputs) == {
        "ApiUrl",
        "ArtifactsBucketName",
        "MetadataTableName",
        "PredictionsTableName",
        "PredictApiKeyId",
        "InferenceFunctionName",
        "RegistryFunctionName",
        "TrainingStateMachineArn",
        "RolloutStateMachineArn",
        "EventBusName",
        "NotificationsQueueUrl",
        "RewardsFailedRecordsQueueUrl",
        "DriftFunctionName",
        "AlarmTopicArn",
        "FailedFeedbackBatchesQueueUrl",
        "FailedRetrainEventsQueueUrl",
        "ConsoleFunctionName",
        "OperationsDashboardName",
        "ModelsDashboardName",
        "FeaturesTableName",
        "StreamInputName",
        "StreamOutputName",
        "StreamFailedRecordsQueueUrl",
        "BatchStateMachineArn",
    }
    assert outputs["ArtifactsBucketName"]["Value"] == {
        "Ref": synthesized.logical_id(stack.storage.artifacts_bucket)
    }
    assert outputs["MetadataTableName"]["Value"] == {
        "Ref": synthesized.logical_id(stack.storage.metadata_table)
    }
    assert outputs["PredictApiKeyId"]["Value"] == {"Ref": synthesized.logical_id(stack.api.predict_api_key)}
    assert outputs["InferenceFunctionName"]["Value"] == {
        "Ref": synthesized.logical_id(stack.api.inference.function)
    }
    assert outputs["RegistryFunctionName"]["Value"] == {
        "Ref": synthesized.logical_id(stack.api.registry.function)
    }
    assert outputs["TrainingStateMachineArn"]["Value"] == {
        "Ref": synthesized.logical_id(stack.training.state_machine)
    }
    assert outputs["EventBusName"]["Value"] == {"Ref": synthesized.logical_id(stack.events.bus)}
    assert json.dumps({"Ref": synthesized.logical_id(stack.api.rest_api)}) in json.dumps(
        outputs["ApiUrl"]["Value"]
    )
