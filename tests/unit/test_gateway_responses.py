"""The local gateway renders API Gateway's own answers from the template's gateway responses.

Gateway response templates only substitute variables; the renderer does exactly that,
and refuses at start-up a template it could not render as API Gateway would.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.local.gateway import LocalGateway, gateway_answer, gateway_responses_from_template
from tests.unit.test_gateway import TEMPLATE, Recorder, _handle

ERROR_BODY = '{"message":$context.error.messageString,"code":"%s"}'


def _gateway_response(response_type: str, template: str, **properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::ApiGateway::GatewayResponse",
        "Properties": {
            "ResponseType": response_type,
            "RestApiId": {"Ref": "Api"},
            "ResponseTemplates": {"application/json": template},
            **properties,
        },
    }


def _template(**responses: dict[str, Any]) -> dict[str, Any]:
    return {"Resources": {**TEMPLATE["Resources"], **responses}}


SHAPED = _template(
    NoRoute=_gateway_response(
        "MISSING_AUTHENTICATION_TOKEN", '{"message":"no such route","code":"not_found"}', StatusCode="404"
    ),
    BadKey=_gateway_response("INVALID_API_KEY", ERROR_BODY % "forbidden"),
    Default4xx=_gateway_response("DEFAULT_4XX", ERROR_BODY % "client_error"),
    Default5xx=_gateway_response("DEFAULT_5XX", ERROR_BODY % "gateway_error"),
    Throttled=_gateway_response(
        "THROTTLED",
        ERROR_BODY % "throttled",
        ResponseParameters={"gatewayresponse.header.Retry-After": "'1'"},
    ),
)


def _gateway(template: dict[str, Any], recorder: Recorder | None = None) -> LocalGateway:
    return LocalGateway.from_template(template, recorder or Recorder(), {"good-key"})


def test_an_unknown_route_gets_the_templates_missing_token_answer() -> None:
    response = _handle(_gateway(SHAPED), "DELETE", "/models")
    assert response.status == 404
    assert json.loads(response.body) == {"message": "no such route", "code": "not_found"}
    assert ("Content-Type", "application/json") in response.headers


@pytest.mark.parametrize("key", [None, "bad-key"])
def test_a_missing_or_wrong_api_key_gets_the_templates_invalid_key_answer(key: str | None) -> None:
    response = _handle(
        _gateway(SHAPED), "POST", "/models/iris/predict", **({"x-api-key": key} if key else {})
    )
    assert response.status == 403
    assert json.loads(response.body) == {"message": "Forbidden", "code": "forbidden"}


@pytest.mark.parametrize("recorder", [Recorder(error=RuntimeError("boom")), Recorder(result="not a result")])
def test_a_failing_function_gets_the_default_5xx_answer_with_api_gateways_502(recorder: Recorder) -> None:
    response = _handle(_gateway(SHAPED, recorder), "GET", "/models")
    assert response.status == 502
    assert json.loads(response.body) == {"message": "Internal server error", "code": "gateway_error"}


def test_a_type_without_its_own_response_falls_back_to_its_class_default() -> None:
    responses = gateway_responses_from_template(SHAPED)
    answer = gateway_answer(responses, "QUOTA_EXCEEDED", 429, "Limit Exceeded")
    assert answer.status == 429
    assert json.loads(answer.body) == {"message": "Limit Exceeded", "code": "client_error"}


def test_a_status_on_the_default_applies_to_its_whole_class() -> None:
    responses = gateway_responses_from_template(
        _template(Default4xx=_gateway_response("DEFAULT_4XX", ERROR_BODY % "client_error", StatusCode="400"))
    )
    assert gateway_answer(responses, "INVALID_API_KEY", 403, "Forbidden").status == 400


def test_static_headers_are_sent() -> None:
    answer = gateway_answer(gateway_responses_from_template(SHAPED), "THROTTLED", 429, "Too Many Requests")
    assert ("Retry-After", "1") in answer.headers


@pytest.mark.parametrize("message", ['say "hi"', "back\\slash", "line\nbreak", "\u00e9\u20ac", "</script>"])
def test_message_string_is_a_json_string_whatever_the_message(message: str) -> None:
    answer = gateway_answer(gateway_responses_from_template(SHAPED), "INVALID_API_KEY", 403, message)
    assert json.loads(answer.body) == {"message": message, "code": "forbidden"}


def test_without_gateway_responses_answers_are_api_gateways_own() -> None:
    answer = gateway_answer({}, "INVALID_API_KEY", 403, "Forbidden")
    assert (answer.status, json.loads(answer.body)) == (403, {"message": "Forbidden"})


def test_the_other_substituted_variables_are_rendered() -> None:
    responses = gateway_responses_from_template(
        _template(
            Default4xx=_gateway_response(
                "DEFAULT_4XX",
                '{"message":"$context.error.message","type":"$context.error.responseType",'
                '"id":"$context.requestId"}',
            )
        )
    )
    rendered = json.loads(gateway_answer(responses, "WAF_FILTERED", 403, "Forbidden", "r-1").body)
    assert rendered == {"message": "Forbidden", "type": "WAF_FILTERED", "id": "r-1"}


@pytest.mark.parametrize(
    "properties",
    [
        {"ResponseTemplates": {"application/json": '{"message":$context.authorizer.reason}'}},
        {"ResponseTemplates": {"application/json": '{"stage":"$stageVariables.name"}'}},
        {"ResponseParameters": {"gatewayresponse.header.X-Id": "method.request.header.X-Id"}},
    ],
)
def test_a_response_the_local_gateway_could_not_render_exactly_is_refused(properties: dict[str, Any]) -> None:
    resource = _gateway_response("DEFAULT_4XX", ERROR_BODY % "client_error")
    resource["Properties"].update(properties)
    with pytest.raises(ValueError, match="the local gateway cannot"):
        gateway_responses_from_template(_template(Default4xx=resource))
