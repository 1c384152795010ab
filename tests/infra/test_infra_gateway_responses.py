"""API Gateway's own answers have the functions' ErrorBody shape, deployed and locally.

The template carries one gateway response per type in ``GATEWAY_ERRORS`` (templates that
are valid JSON whatever API Gateway's message); the local gateway, built from the same
template, answers the situations it models with exactly those bodies and statuses.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from infra.cdk.constructs.api import GATEWAY_ERRORS
from infra.local.gateway import MAX_PAYLOAD_BYTES, LocalGateway
from mlops_core.http import ErrorBody

pytestmark = pytest.mark.infra

HOSTILE_MESSAGES = ["Forbidden", 'a "quoted" \\ message\n', "\u00e9\u20ac\u0000", "</script><b>"]


def _gateway_responses(synthesized: SynthesizedApp) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for resource in synthesized.resources_of_type("AWS::ApiGateway::GatewayResponse").values():
        properties = resource["Properties"]
        assert properties["ResponseType"] not in found, f"two responses for {properties['ResponseType']}"
        found[properties["ResponseType"]] = properties
    return found


def _rendered(template: str, message: str) -> Any:
    """What API Gateway sends: the template with ``$context.error.messageString`` substituted."""
    return json.loads(template.replace("$context.error.messageString", json.dumps(message)))


def test_every_gateway_answer_is_shaped_as_an_error_body(synthesized: SynthesizedApp) -> None:
    responses = _gateway_responses(synthesized)
    api = synthesized.logical_id(synthesized.stack.api.rest_api)

    assert set(responses) == {error.response_type for error in GATEWAY_ERRORS}
    assert {
        "DEFAULT_4XX",
        "DEFAULT_5XX",
        "INVALID_API_KEY",
        "ACCESS_DENIED",
        "MISSING_AUTHENTICATION_TOKEN",
    } <= (set(responses))
    assert {"THROTTLED", "QUOTA_EXCEEDED", "UNSUPPORTED_MEDIA_TYPE", "REQUEST_TOO_LARGE"} <= set(responses)
    for error in GATEWAY_ERRORS:
        properties = responses[error.response_type]
        assert properties["RestApiId"] == {"Ref": api}
        assert properties.get("StatusCode") == (str(error.status) if error.status else None)
        template = properties["ResponseTemplates"]["application/json"]
        for message in HOSTILE_MESSAGES:
            body = _rendered(template, message)
            ErrorBody.model_validate(body)
            assert body == {"message": error.message or message, "code": error.code}


def test_each_code_is_stable_and_snake_case() -> None:
    for error in GATEWAY_ERRORS:
        assert error.code.replace("_", "").isalpha() and error.code.islower(), error
        assert "$" not in (error.message or ""), "a static message must not look like a variable"


def test_throttling_says_when_to_retry(synthesized: SynthesizedApp) -> None:
    throttled = _gateway_responses(synthesized)["THROTTLED"]
    assert throttled["ResponseParameters"] == {"gatewayresponse.header.Retry-After": "'1'"}


def test_the_deployment_waits_for_the_gateway_responses(synthesized: SynthesizedApp) -> None:
    """Gateway responses take effect with a deployment: the stage's must include them."""
    responses = {
        logical_id
        for logical_id, _ in synthesized.resources_of_type("AWS::ApiGateway::GatewayResponse").items()
    }
    (deployment,) = synthesized.resources_of_type("AWS::ApiGateway::Deployment").values()
    assert responses <= set(deployment.get("DependsOn", []))


class _Crash:
    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        raise RuntimeError("boom")


BIG = b"0" * (MAX_PAYLOAD_BYTES + 1)


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "response_type", "aws_status"),
    [
        ("GET", "/no/such/route", {}, b"", "MISSING_AUTHENTICATION_TOKEN", 403),
        ("DELETE", "/models", {}, b"", "MISSING_AUTHENTICATION_TOKEN", 403),
        ("POST", "/models/m/predict", {}, b"", "INVALID_API_KEY", 403),
        ("POST", "/models/m/predict", {"x-api-key": "x"}, b"", "INVALID_API_KEY", 403),
        ("POST", "/models", {"Content-Encoding": "br"}, b"{}", "UNSUPPORTED_MEDIA_TYPE", 415),
        ("POST", "/models", {"Content-Encoding": "gzip"}, b"{}", "UNSUPPORTED_MEDIA_TYPE", 415),
        ("POST", "/models", {}, BIG, "REQUEST_TOO_LARGE", 413),
        ("GET", "/models", {}, b"", "DEFAULT_5XX", 502),
    ],
    ids=[
        "unknown path",
        "unknown method",
        "no API key",
        "wrong API key",
        "unsupported encoding",
        "not encoded as it says",
        "too large",
        "function fails",
    ],
)
def test_the_local_gateway_answers_exactly_what_the_template_renders(
    synthesized: SynthesizedApp,
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes,
    response_type: str,
    aws_status: int,
) -> None:
    gateway = LocalGateway.from_template(synthesized.template_json, _Crash(), {"good-key"})
    properties = _gateway_responses(synthesized)[response_type]

    response = gateway.handle(
        method=method, path=path, query={}, headers=headers, body=body, source_ip="127.0.0.1"
    )

    assert response.status == int(properties.get("StatusCode") or aws_status)
    # API Gateway's own message, where the template keeps it: the local gateway's is its.
    expected = _rendered(
        properties["ResponseTemplates"]["application/json"], AWS_MESSAGES.get(response_type, "")
    )
    assert json.loads(response.body) == expected
    static = {
        k.removeprefix("gatewayresponse.header."): v.strip("'")
        for k, v in properties.get("ResponseParameters", {}).items()
    }
    assert set(static.items()) | {("Content-Type", "application/json")} == set(response.headers)


#: The messages API Gateway gives the situations above, where our templates keep them.
AWS_MESSAGES = {"INVALID_API_KEY": "Forbidden", "DEFAULT_5XX": "Internal server error"}
