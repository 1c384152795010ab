"""The local gateway: the template's routes, API Gateway's answers, proxy events."""

from __future__ import annotations

import gzip
import json
import zlib
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from infra.local.gateway import (
    MAX_PAYLOAD_BYTES,
    LocalGateway,
    Route,
    Undecodable,
    decode_body,
    routes_from_template,
    to_http,
)

TEMPLATE: dict[str, Any] = {
    "Resources": {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {}},
        "Models": {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {"ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]}, "PathPart": "models"},
        },
        "Model": {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {"ParentId": {"Ref": "Models"}, "PathPart": "{name}"},
        },
        "Predict": {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {"ParentId": {"Ref": "Model"}, "PathPart": "predict"},
        },
        "PredictPost": {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "HttpMethod": "POST",
                "ResourceId": {"Ref": "Predict"},
                "AuthorizationType": "NONE",
                "ApiKeyRequired": True,
                "Integration": {
                    "Type": "AWS_PROXY",
                    "Uri": {
                        "Fn::Join": ["", ["arn:", {"Fn::GetAtt": ["InferenceFn", "Arn"]}, "/invocations"]]
                    },
                },
            },
        },
        "ModelsGet": {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "HttpMethod": "GET",
                "ResourceId": {"Ref": "Models"},
                "AuthorizationType": "AWS_IAM",
                "Integration": {"Type": "AWS_PROXY", "Uri": {"Fn::GetAtt": ["RegistryFn", "Arn"]}},
            },
        },
    }
}


def test_routes_are_rebuilt_from_the_template() -> None:
    assert routes_from_template(TEMPLATE) == [
        Route("GET", "/models", "RegistryFn", "AWS_IAM", False),
        Route("POST", "/models/{name}/predict", "InferenceFn", "NONE", True),
    ]


class Recorder:
    def __init__(self, result: Any = None, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.result = (
            result if result is not None else {"statusCode": 200, "headers": {"X-A": "1"}, "body": "{}"}
        )
        self.error = error

    def __call__(self, function: str, event: dict[str, Any]) -> Any:
        self.calls.append((function, event))
        if self.error:
            raise self.error
        return self.result


def _handle(gateway: LocalGateway, method: str, path: str, **headers: str) -> Any:
    return gateway.handle(
        method=method,
        path=path,
        query={"limit": ["5"]},
        headers=headers,
        body=b'{"a": 1}',
        source_ip="127.0.0.9",
    )


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def gateway(recorder: Recorder) -> LocalGateway:
    return LocalGateway(routes_from_template(TEMPLATE), recorder, {"good-key"})


def test_a_request_becomes_a_rest_proxy_event(gateway: LocalGateway, recorder: Recorder) -> None:
    response = _handle(gateway, "POST", "/models/iris/predict", **{"x-api-key": "good-key"})

    assert response.status == 200
    assert ("X-A", "1") in response.headers
    function, raw = recorder.calls[0]
    assert function == "InferenceFn"
    event = APIGatewayProxyEvent(raw)
    assert event.resource == "/models/{name}/predict"
    assert event.path_parameters == {"name": "iris"}
    assert event.json_body == {"a": 1}
    assert event.query_string_parameters == {"limit": "5"}
    assert event.request_context.identity.api_key == "good-key"
    assert event.request_context.stage == "prod"


def test_iam_routes_carry_the_local_principal(gateway: LocalGateway, recorder: Recorder) -> None:
    _handle(gateway, "GET", "/models")
    identity = APIGatewayProxyEvent(recorder.calls[0][1]).request_context.identity
    assert identity.user_arn and identity.user_arn.endswith(":assumed-role/LocalDeveloper/local")


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nope"), ("DELETE", "/models"), ("GET", "/models/x/predict")]
)
def test_a_route_not_in_the_template_is_api_gateways_missing_token_answer(
    gateway: LocalGateway, recorder: Recorder, method: str, path: str
) -> None:
    """Without gateway responses in the template, API Gateway's own 403 (the stack's
    template turns it into a 404 ErrorBody: tests/unit/test_gateway_responses.py)."""
    response = _handle(gateway, method, path)
    assert response.status == 403
    assert json.loads(response.body) == {"message": "Missing Authentication Token"}
    assert recorder.calls == []


@pytest.mark.parametrize("key", [None, "bad-key"])
def test_a_missing_or_wrong_api_key_is_403(
    gateway: LocalGateway, recorder: Recorder, key: str | None
) -> None:
    headers = {"x-api-key": key} if key else {}
    assert _handle(gateway, "POST", "/models/iris/predict", **headers).status == 403
    assert recorder.calls == []


def test_a_handler_that_raises_is_502() -> None:
    gateway = LocalGateway(routes_from_template(TEMPLATE), Recorder(error=RuntimeError("boom")), set())
    response = _handle(gateway, "GET", "/models")
    assert response.status == 502
    assert json.loads(response.body) == {"message": "Internal server error"}


@pytest.mark.parametrize("result", [{"body": "no status"}, "not a dict"])
def test_a_malformed_proxy_result_is_502(result: Any) -> None:
    gateway = LocalGateway(routes_from_template(TEMPLATE), Recorder(result=result), set())
    response = _handle(gateway, "GET", "/models")
    assert response.status == 502
    assert json.loads(response.body) == {"message": "Internal server error"}


def test_multi_value_headers_and_base64_bodies_are_honoured() -> None:
    response = to_http(
        {
            "statusCode": 201,
            "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
            "body": "aGk=",
            "isBase64Encoded": True,
        }
    )
    assert response.status == 201
    assert response.headers == [("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
    assert response.body == b"hi"


def _http_client(gateway: LocalGateway) -> Any:
    from werkzeug.test import Client

    from infra.local.http import gateway_app

    return Client(gateway_app(gateway, "http://127.0.0.1:3000"))


def test_the_http_server_adds_no_content_type(gateway: LocalGateway, recorder: Recorder) -> None:
    """The function decides what a body without Content-Type gets (415)."""
    _http_client(gateway).post("/models/iris/predict", data=b'{"a": 1}', headers={"x-api-key": "good-key"})

    event = APIGatewayProxyEvent(recorder.calls[0][1])
    assert "content-type" not in event.headers
    assert event.body == '{"a": 1}'


PLAIN = b'{"instances": [[1.5, 2]]}'
ENCODED = {
    "gzip": gzip.compress(PLAIN),
    "GZIP": gzip.compress(PLAIN),
    "deflate": zlib.compress(PLAIN),
    "identity": PLAIN,
    "gzip, identity": gzip.compress(PLAIN),
    "deflate, gzip": gzip.compress(zlib.compress(PLAIN)),
}


@pytest.mark.parametrize("coding", ENCODED)
def test_compressed_bodies_reach_the_function_decoded_with_their_header(
    gateway: LocalGateway, recorder: Recorder, coding: str
) -> None:
    headers = {"x-api-key": "good-key", "Content-Type": "application/json", "Content-Encoding": coding}
    response = _http_client(gateway).post("/models/iris/predict", data=ENCODED[coding], headers=headers)

    assert response.status_code == 200
    event = APIGatewayProxyEvent(recorder.calls[0][1])
    assert event.body == PLAIN.decode() and not event.is_base64_encoded
    assert event.headers["content-encoding"] == coding


def test_raw_deflate_is_decoded_too() -> None:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = compressor.compress(PLAIN) + compressor.flush()
    assert decode_body(raw, "deflate") == PLAIN


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("br", PLAIN),
        ("compress", PLAIN),
        ("gzip", PLAIN),
        ("gzip", gzip.compress(PLAIN)[:-4]),
        ("deflate", b"xx"),
    ],
    ids=["br", "compress", "gzip but plain", "truncated gzip", "deflate but not"],
)
def test_a_body_api_gateway_could_not_decode_is_415_before_routing(
    gateway: LocalGateway, recorder: Recorder, coding: str, body: bytes
) -> None:
    response = gateway.handle(
        method="POST",
        path="/no/such/route",
        query={},
        headers={"Content-Encoding": coding},
        body=body,
        source_ip="127.0.0.1",
    )
    assert response.status == 415
    assert json.loads(response.body) == {"message": "Unsupported Media Type"}
    assert recorder.calls == []


@pytest.mark.parametrize(
    ("coding", "body"),
    [(None, b"x" * (MAX_PAYLOAD_BYTES + 1)), ("gzip", gzip.compress(b"0" * (MAX_PAYLOAD_BYTES + 1)))],
    ids=["plain", "decompression bomb"],
)
def test_a_body_past_the_payload_limit_is_413(recorder: Recorder, coding: str | None, body: bytes) -> None:
    with pytest.raises(Undecodable) as refused:
        decode_body(body, coding)
    assert (refused.value.response_type, refused.value.status) == ("REQUEST_TOO_LARGE", 413)


def test_a_local_page_that_does_not_exist_is_an_error_body() -> None:
    response = _http_client(LocalGateway([], Recorder(), set())).get("/_local/nope")
    assert response.status_code == 404
    assert response.json == {"message": "no local page /_local/nope", "code": "not_found"}
