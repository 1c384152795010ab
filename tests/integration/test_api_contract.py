"""Every status the handlers answer is documented for that operation in docs/openapi.json,
and every error body has the documented shape (ErrorBody)."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from mlops_core.http import ErrorBody
from mlops_core.serving.capture import prediction_ids
from tests.integration.conftest import call
from tests.support import ROOT, load_event

OPENAPI = json.loads((ROOT / "docs" / "openapi.json").read_text())


def with_content_type(event: dict[str, Any], content_type: str) -> dict[str, Any]:
    event["headers"]["Content-Type"] = content_type
    return event


CASES: list[tuple[str, str, Callable[[], dict[str, Any]], int]] = [
    ("inference", "predict ok", lambda: load_event("inference/predict.json"), 200),
    ("inference", "malformed JSON", lambda: load_event("inference/predict.json", body="{"), 400),
    (
        "inference",
        "unknown model",
        lambda: load_event("inference/predict.json", path_params={"name": "nope"}),
        404,
    ),
    (
        "inference",
        "not JSON",
        lambda: with_content_type(load_event("inference/predict.json", body="x"), "text/plain"),
        415,
    ),
    (
        "inference",
        "bad instances",
        lambda: load_event("inference/predict.json", body={"instances": [[1]]}),
        422,
    ),
    ("registry", "create", lambda: load_event("registry/create_model.json", body={"name": "other"}), 201),
    ("registry", "create again", lambda: load_event("registry/create_model.json"), 409),
    (
        "registry",
        "unknown model",
        lambda: load_event("registry/get_model.json", path_params={"name": "nope"}),
        404,
    ),
    (
        "registry",
        "bad version",
        lambda: load_event("registry/get_version.json", path_params={"version": "0"}),
        422,
    ),
    ("registry", "card", lambda: load_event("registry/get_model_card.json"), 200),
    ("registry", "policy", lambda: load_event("registry/set_policy.json"), 200),
    (
        "registry",
        "not JSON",
        lambda: with_content_type(load_event("registry/update_model.json", body="x"), "text/plain"),
        415,
    ),
    (
        "registry",
        "no such alias",
        lambda: load_event("registry/get_alias.json", path_params={"alias": "canary"}),
        404,
    ),
    ("feedback", "unknown prediction", lambda: load_event("feedback/reward.json"), 404),
    ("feedback", "batch", lambda: load_event("feedback/batch.json"), 200),
    (
        "feedback",
        "not captured yet",
        lambda: load_event("feedback/reward.json", body={"prediction_id": prediction_ids(1)[0], "reward": 1}),
        409,
    ),
    (
        "feedback",
        "bad reward",
        lambda: load_event("feedback/reward.json", body={"prediction_id": "x", "reward": 2}),
        422,
    ),
    ("feedback", "malformed JSON", lambda: load_event("feedback/label.json", body="{"), 400),
    (
        "feedback",
        "not JSON",
        lambda: with_content_type(load_event("feedback/reward.json", body="x"), "text/plain"),
        415,
    ),
]


@pytest.mark.parametrize(("function", "case", "make_event", "status"), CASES, ids=[c[1] for c in CASES])
def test_answers_are_documented(
    inference: ModuleType,
    registry_api: ModuleType,
    production_model: int,
    function: str,
    case: str,
    make_event: Callable[[], dict[str, Any]],
    status: int,
) -> None:
    from functions.feedback import handler as feedback

    handler = {"inference": inference, "registry": registry_api, "feedback": feedback}[function]
    call(registry_api, load_event("registry/create_model.json"))  # the model exists (409 case)
    event = make_event()
    response = call(handler, event)
    assert response["statusCode"] == status, response["body"]
    operation = OPENAPI["paths"][event["resource"]][event["httpMethod"].lower()]
    assert str(status) in operation["responses"], (
        f"{event['httpMethod']} {event['resource']} answers {status}"
    )
    if status >= 400:
        ErrorBody.model_validate_json(response["body"])
