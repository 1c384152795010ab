"""A domain error as a batch item's outcome (``http.item_error``) says what the same error
says as a whole response: its status, its ErrorBody and its Retry-After."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_lambda_powertools import Logger

from mlops_core.errors import Conflict, IntegrityError, Invalid, MlopsError, NotFound, Unavailable, detail
from mlops_core.http import item_error, resolve, rest_app
from tests.support import FakeLambdaContext

ERRORS = [
    Invalid("bad label", details=[detail(["body", "label"], "one of 0, 1", "unknown_class")]),
    NotFound("unknown or expired prediction 'x'"),
    Conflict("not captured yet", retry_after_seconds=5),
    Conflict("stale revision", current={"revision": 3}),
    Unavailable("prediction log is throttled", retry_after_seconds=2),
    IntegrityError("checksum mismatch", retry_after_seconds=30),
    MlopsError("unmapped"),
]


def _answer(error: MlopsError) -> dict[str, Any]:
    app = rest_app(Logger(service="tests"))

    @app.get("/fail")
    def fail() -> None:
        raise error

    event = {
        "resource": "/fail",
        "path": "/fail",
        "httpMethod": "GET",
        "headers": {},
        "multiValueHeaders": {},
        "requestContext": {"requestId": "r", "resourcePath": "/fail", "httpMethod": "GET", "stage": "prod"},
        "body": None,
        "isBase64Encoded": False,
    }
    return resolve(app, event, FakeLambdaContext())


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: f"{type(e).__name__}:{e.message}")
def test_an_item_error_is_what_the_whole_response_would_be(error: MlopsError) -> None:
    response = _answer(error)
    item = item_error(error)

    retry_after = (response.get("multiValueHeaders") or {}).get("Retry-After")
    assert item.pop("status") == response["statusCode"]
    assert item.pop("retry_after_seconds", None) == (int(retry_after[0]) if retry_after else None)
    whole = json.loads(response["body"])
    whole.pop("request_id", None)  # a 500 names the request; an item is part of one
    assert item == whole


def test_a_conflict_without_retry_after_has_no_header() -> None:
    response = _answer(Conflict("exists"))
    assert "Retry-After" not in (response.get("multiValueHeaders") or {})
    assert response["statusCode"] == 409
