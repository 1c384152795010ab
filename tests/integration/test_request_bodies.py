"""How every route with a JSON body reads it: any body is a 2xx or a 4xx, never a 500.

The rules (``mlops_core.http``): the body must be ``application/json`` (case-insensitive,
UTF-8) and JSON the parser can hold; each refusal is precise. Compressed bodies are
decoded by the gateway in front (tests/unit/test_gateway.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from mlops_core.http import ErrorBody, json_body
from tests.integration.conftest import call
from tests.support import ROW0, body, load_event

#: Every sample event of a route that takes a JSON body, and the function behind it.
BODY_ROUTES = [
    ("inference", "inference/predict.json"),
    ("registry", "registry/create_model.json"),
    ("registry", "registry/update_model.json"),
    ("registry", "registry/register_version.json"),
    ("registry", "registry/update_version.json"),
    ("registry", "registry/set_alias.json"),
    ("registry", "registry/promote_version.json"),
    ("registry", "registry/rollback.json"),
    ("registry", "registry/set_policy.json"),
    ("training", "training/start_training.json"),
]
DIGITS = 5000  # past Python's int-from-string limit (4,300 digits)


@pytest.fixture
def handlers(inference: ModuleType, registry_api: ModuleType) -> Callable[[str], ModuleType]:
    from functions.training import api as training_api

    return {"inference": inference, "registry": registry_api, "training": training_api}.__getitem__


def _with_body(name: str, raw: str) -> dict[str, Any]:
    return load_event(name, body=raw)


def _error(response: dict[str, Any], status: int) -> dict[str, Any]:
    assert response["statusCode"] == status, response["body"]
    error = body(response)
    ErrorBody.model_validate(error)
    return error


@pytest.mark.parametrize("function", ["inference", "registry", "training"])
def test_every_rest_handler_parses_bodies_with_json_body(
    handlers: Callable[[str], ModuleType], function: str
) -> None:
    """Each handler's resolver comes from ``rest_app`` (the one body parser)."""
    assert handlers(function).app._json_body_deserializer is json_body


@pytest.mark.parametrize(("function", "event_name"), BODY_ROUTES, ids=[e for _, e in BODY_ROUTES])
def test_an_integer_literal_past_the_int_limit_is_422_naming_it(
    handlers: Callable[[str], ModuleType], function: str, event_name: str
) -> None:
    raw = '{"instances": [[1, ' + "7" * DIGITS + "]], " + '"n": -' + "9" * DIGITS + "}"
    error = _error(call(handlers(function), _with_body(event_name, raw)), 422)

    assert "more than 4300 digits" in error["message"]
    assert error["detail"] == [
        {
            "loc": ["body", "instances", 0, 1],
            "msg": f"integer literal of {DIGITS} digits: at most 4300 are accepted",
            "type": "int_parsing_size",
        },
        {
            "loc": ["body", "n"],
            "msg": f"integer literal of {DIGITS} digits: at most 4300 are accepted",
            "type": "int_parsing_size",
        },
    ]


HOSTILE_BODIES = {
    "huge float": '{"x": 1e400}',
    "long float literal": '{"x": ' + "9" * DIGITS + ".5}",
    "NaN literal": '{"x": NaN}',
    "minus Infinity": '{"x": -Infinity}',
    "nested deeply": "[" * 5000 + "]" * 5000,
    "nested just under the parser's limit": '{"x": ' + "[" * 900 + "]" * 900 + "}",
    "long string": json.dumps({"x": "é" * 500_000}),
    "lone surrogate": '{"x": "\\ud800"}',
    "scalar": "1",
    "null": "null",
    "duplicate keys": '{"x": 1, "x": 2}',
}


@pytest.mark.parametrize(("function", "event_name"), BODY_ROUTES, ids=[e for _, e in BODY_ROUTES])
@pytest.mark.parametrize("raw", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_any_body_is_a_2xx_or_a_4xx(
    handlers: Callable[[str], ModuleType], production_model: int, function: str, event_name: str, raw: str
) -> None:
    response = call(handlers(function), _with_body(event_name, raw))
    assert response["statusCode"] < 500, response["body"]
    if response["statusCode"] >= 400:
        ErrorBody.model_validate_json(response["body"])


# ---- Content-Type and Content-Encoding -------------------------------------------------


def _predict(headers: dict[str, str], raw: str | None = None) -> dict[str, Any]:
    event = load_event("inference/predict.json", body=raw or json.dumps({"instances": [ROW0]}))
    for field in ("headers", "multiValueHeaders"):
        event[field] = {k: v for k, v in event[field].items() if k.lower() != "content-type"}
    event["headers"].update(headers)
    event["multiValueHeaders"].update({k: [v] for k, v in headers.items()})
    return event


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/JSON",
        "Application/Json; charset=UTF-8",
        'application/json;charset="utf-8"',
    ],
)
def test_media_types_are_case_insensitive(
    inference: ModuleType, production_model: int, content_type: str
) -> None:
    response = call(inference, _predict({"content-type": content_type}))
    assert response["statusCode"] == 200, response["body"]


def test_a_body_without_content_type_is_415(inference: ModuleType, production_model: int) -> None:
    error = _error(call(inference, _predict({})), 415)
    assert error == {
        "message": "the body has no Content-Type: send application/json",
        "code": "unsupported_media_type",
    }


def test_a_charset_other_than_utf8_is_415(inference: ModuleType, production_model: int) -> None:
    error = _error(call(inference, _predict({"Content-Type": "application/json; charset=latin-1"})), 415)
    assert error["message"] == "unsupported charset 'latin-1': JSON bodies are UTF-8"


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity", "gzip, identity"])
def test_a_body_the_gateway_decompressed_is_read_although_the_header_stays(
    inference: ModuleType, production_model: int, coding: str
) -> None:
    """API Gateway decompresses gzip and deflate bodies before the integration and keeps
    ``Content-Encoding`` in the event (the local gateway does the same): the function
    reads the decoded body and does not try to decode it again."""
    response = call(inference, _predict({"Content-Type": "application/json", "Content-Encoding": coding}))
    assert response["statusCode"] == 200, response["body"]


def test_a_request_without_a_body_needs_no_content_type(inference: ModuleType) -> None:
    event = load_event("inference/health.json")
    event["headers"] = {k: v for k, v in (event["headers"] or {}).items() if k.lower() != "content-type"}
    assert call(inference, event)["statusCode"] == 200


# ---- found by schemathesis, outside mlops_core.http: for their owners ------------------


@pytest.mark.parametrize("value", [1.09e126, 1e-131])
def test_a_number_dynamodb_cannot_hold_is_422_not_503(registry_api: ModuleType, value: float) -> None:
    call(registry_api, load_event("registry/create_model.json"))
    event = load_event("registry/set_policy.json", body={"thresholds": {"accuracy": {"min": value}}})
    assert call(registry_api, event)["statusCode"] == 422
