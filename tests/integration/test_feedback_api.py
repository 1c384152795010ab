"""POST /feedback: the feedback handler fed the sample events, against moto, on predictions
made by the inference function and captured by the capture function."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import pytest

from mlops_core.serving.capture import CAPTURE_MARKER, prediction_ids
from tests.integration.conftest import call
from tests.support import (
    PREDICTIONS_TABLE,
    REGION,
    TABLE,
    FakeLambdaContext,
    aws_fault,
    body,
    header,
    load_event,
    subscription_event,
)


@pytest.fixture
def feedback(aws: None) -> ModuleType:
    from functions.feedback import handler

    handler.service._signatures.clear()
    return handler


@pytest.fixture
def predicted(
    inference: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> tuple[list[str], list[Any]]:
    """Two predictions (ids, labels) made and captured into the prediction log."""
    from functions.capture import handler as capture

    response = body(call(inference, load_event("inference/predict.json")))
    lines = [line for line in capsys.readouterr().out.splitlines() if f'"{CAPTURE_MARKER}"' in line]
    capture.lambda_handler(subscription_event(lines), FakeLambdaContext())
    return response["prediction_ids"], response["predictions"]


def send(handler: ModuleType, payload: Any, event: str = "feedback/reward.json") -> dict[str, Any]:
    return call(handler, load_event(event, body=payload))


def feedback_items() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=PREDICTIONS_TABLE)["Items"]
    return [item for item in items if item["sk"]["S"] == "FEEDBACK"]


def test_the_sample_events_are_answered(feedback: ModuleType) -> None:
    for name in ("reward", "label", "batch"):
        response = call(feedback, load_event(f"feedback/{name}.json"))
        # The sample ids are ours, issued long ago, and not in this empty log.
        expected = 200 if name == "batch" else 404
        assert response["statusCode"] == expected, response["body"]


def test_a_reward_is_recorded_once_and_a_retry_gets_the_original(
    feedback: ModuleType, predicted: tuple[list[str], list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    ids, predictions = predicted

    first = send(feedback, {"prediction_id": ids[0], "reward": 1})
    again = send(feedback, {"prediction_id": ids[0], "reward": 0})

    assert first["statusCode"] == 200, first["body"]
    recorded = body(first)
    assert recorded["duplicate"] is False and recorded["matches_original"] is True
    assert (recorded["model_name"], recorded["model_version"]) == ("breast-cancer", 1)
    assert (recorded["reward"], recorded["prediction"]) == (1, predictions[0])
    assert again["statusCode"] == 200
    duplicate = body(again)
    assert duplicate["duplicate"] is True and duplicate["matches_original"] is False
    assert {k: v for k, v in duplicate.items() if k not in ("duplicate", "matches_original")} == {
        k: v for k, v in recorded.items() if k not in ("duplicate", "matches_original")
    }
    assert len(feedback_items()) == 1
    out = capsys.readouterr().out
    assert '"FeedbackRecorded"' in out and '"FeedbackDuplicates"' in out


def test_a_label_is_turned_into_a_reward(
    feedback: ModuleType, predicted: tuple[list[str], list[Any]]
) -> None:
    ids, predictions = predicted
    assert predictions == [0, 1]

    right = body(send(feedback, {"prediction_id": ids[0], "label": 0}, "feedback/label.json"))
    wrong = body(send(feedback, {"prediction_id": ids[1], "label": False}, "feedback/label.json"))

    assert (right["label"], right["reward"]) == (0, 1)
    assert (wrong["label"], wrong["reward"]) == (0, 0)


def test_an_unknown_id_is_404_and_a_recent_one_409_with_retry_after(feedback: ModuleType) -> None:
    unknown = send(feedback, {"prediction_id": "0190a0b1-0000-7000-8000-000000000000", "reward": 1})
    (recent,) = prediction_ids(1)
    waiting = send(feedback, {"prediction_id": recent, "reward": 1})

    assert unknown["statusCode"] == 404
    assert body(unknown) == {
        "message": "unknown or expired prediction '0190a0b1-0000-7000-8000-000000000000'",
        "code": "not_found",
    }
    assert waiting["statusCode"] == 409
    assert body(waiting)["code"] == "conflict"
    assert header(waiting, "Retry-After") == "5"


@pytest.mark.parametrize(
    ("payload", "loc"),
    [
        ({"reward": 0.5}, ["body", "reward"]),
        ({"reward": 2}, ["body", "reward"]),
        ({"reward": "1"}, ["body", "reward"]),
        ({"reward": 1, "label": 1}, ["body"]),
        ({}, ["body"]),
        ({"label": {"class": 1}}, ["body", "label"]),
    ],
)
def test_a_malformed_feedback_is_422_at_its_location(
    feedback: ModuleType, predicted: tuple[list[str], list[Any]], payload: dict[str, Any], loc: list[Any]
) -> None:
    ids, _ = predicted
    response = send(feedback, {"prediction_id": ids[0], **payload})

    assert response["statusCode"] == 422, response["body"]
    assert [d["loc"] for d in body(response)["detail"]] == [loc]
    assert feedback_items() == []


def test_a_reward_written_as_nan_is_422(feedback: ModuleType, predicted: tuple[list[str], list[Any]]) -> None:
    ids, _ = predicted
    response = send(feedback, f'{{"prediction_id": "{ids[0]}", "reward": NaN}}')
    assert response["statusCode"] == 422
    assert body(response)["detail"][0]["loc"] == ["body", "reward"]


def test_a_label_outside_the_models_classes_is_422(
    feedback: ModuleType, predicted: tuple[list[str], list[Any]]
) -> None:
    ids, _ = predicted
    response = send(feedback, {"prediction_id": ids[0], "label": "benign"}, "feedback/label.json")

    assert response["statusCode"] == 422
    (problem,) = body(response)["detail"]
    assert problem == {
        "loc": ["body", "label"],
        "msg": "one of the model's classes: 0, 1",
        "type": "unknown_class",
    }
    assert feedback_items() == []


def test_a_batch_answers_200_with_a_status_per_item(
    feedback: ModuleType, predicted: tuple[list[str], list[Any]]
) -> None:
    ids, _ = predicted
    send(feedback, {"prediction_id": ids[1], "reward": 1})
    (recent,) = prediction_ids(1)
    items = [
        {"prediction_id": ids[0], "label": 0},
        {"prediction_id": ids[1], "reward": 1},
        {"prediction_id": "0190a0b1-0000-7000-8000-000000000000", "reward": 1},
        {"prediction_id": recent, "reward": 0},
        {"prediction_id": ids[0], "label": 9},
    ]

    response = send(feedback, {"feedback": items}, "feedback/batch.json")

    assert response["statusCode"] == 200, response["body"]
    answer = body(response)
    assert [r["status"] for r in answer["results"]] == [200, 200, 404, 409, 200]
    assert [r["prediction_id"] for r in answer["results"]] == [i["prediction_id"] for i in items]
    assert [r["duplicate"] for r in answer["results"]] == [False, True, None, None, True]
    assert answer["results"][3]["retry_after_seconds"] == 5
    assert answer["results"][2]["code"] == "not_found"
    assert answer["results"][4]["matches_original"] is False  # the first item recorded label 0
    assert (answer["recorded"], answer["duplicates"], answer["failed"]) == (1, 2, 2)


def test_a_batch_item_with_a_label_outside_the_classes_fails_alone(
    feedback: ModuleType, predicted: tuple[list[str], list[Any]]
) -> None:
    ids, _ = predicted
    items = [{"prediction_id": ids[0], "label": 3}, {"prediction_id": ids[1], "label": 1}]

    answer = body(send(feedback, {"feedback": items}, "feedback/batch.json"))

    assert [r["status"] for r in answer["results"]] == [422, 200]
    assert answer["results"][0]["detail"][0]["loc"] == ["body", "feedback", 0, "label"]
    assert len(feedback_items()) == 1


def test_a_malformed_batch_is_refused_whole(
    feedback: ModuleType, predicted: tuple[list[str], list[Any]]
) -> None:
    ids, _ = predicted
    items = [{"prediction_id": ids[0], "reward": 1}, {"prediction_id": ids[1], "reward": 0.5}]
    too_many = [{"prediction_id": ids[0], "reward": 1}] * 101

    malformed = send(feedback, {"feedback": items}, "feedback/batch.json")
    oversized = send(feedback, {"feedback": too_many}, "feedback/batch.json")
    mixed = send(feedback, {"feedback": items[:1], "reward": 1}, "feedback/batch.json")

    assert malformed["statusCode"] == 422
    assert body(malformed)["detail"][0]["loc"] == ["body", "feedback", 1, "reward"]
    assert oversized["statusCode"] == 422
    assert body(oversized)["detail"][0]["loc"] == ["body", "feedback"]
    assert mixed["statusCode"] == 422
    assert feedback_items() == []


def test_a_throttled_log_is_503_and_names_no_table(
    feedback: ModuleType, predicted: tuple[list[str], list[Any]]
) -> None:
    ids, _ = predicted
    with aws_fault("dynamodb", "Query", "ProvisionedThroughputExceededException"):
        single = send(feedback, {"prediction_id": ids[0], "reward": 1})
        batch = send(feedback, {"feedback": [{"prediction_id": ids[0], "reward": 1}]}, "feedback/batch.json")

    assert single["statusCode"] == 503
    assert header(single, "Retry-After") == "1"
    assert body(batch)["results"][0]["status"] == 503
    assert body(batch)["results"][0]["retry_after_seconds"] == 1
    for response in (single, batch):
        assert PREDICTIONS_TABLE not in response["body"] and TABLE not in response["body"]
    assert feedback_items() == []


def test_the_response_documents_a_status_for_every_outcome(feedback: ModuleType) -> None:
    schema = json.loads(
        feedback.app.get_openapi_schema(title="t", version="1").model_dump_json(by_alias=True)
    )
    operation = schema["paths"]["/feedback"]["post"]
    assert {"200", "404", "409", "422", "503"} <= set(operation["responses"])
    assert "Retry-After" in operation["responses"]["409"]["headers"]
