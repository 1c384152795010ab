"""POST /feedback on the local stack, over HTTP: `mlops up` in a subprocess serves the template's
feedback function and route; a prediction is captured by the template's log subscription, then
its feedback is recorded once, answered as a duplicate after, and refused when it should be."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.stack_process import MLOPS, cli_env, running_stack, stack_state_dir
from tests.support import ROOT, ROW0, local_stack_client, trained_model

pytestmark = pytest.mark.e2e
MODEL = "feedback-demo"
_env = cli_env


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """`mlops up` with a logistic regression registered and promoted through the API."""
    with running_stack(stack_state_dir(tmp_path_factory, "feedback-stack")) as running:
        description, api = running["description"], running["api"]
        _, data, signature = trained_model("logistic_regression")
        s3 = local_stack_client("s3", description)
        s3.put_object(Bucket=description["artifacts_bucket"], Key=f"uploads/{MODEL}/model.onnx", Body=data)
        s3.put_object(
            Bucket=description["artifacts_bucket"],
            Key=f"uploads/{MODEL}/signature.json",
            Body=signature.model_dump_json(),
        )
        registered = requests.post(
            f"{api}/models/{MODEL}/versions", json={"artifact_key": f"uploads/{MODEL}/model.onnx"}, timeout=60
        )
        assert registered.status_code == 201, registered.text
        promoted = requests.put(f"{api}/models/{MODEL}/aliases/production", json={"version": 1}, timeout=30)
        assert promoted.status_code == 200, promoted.text
        yield running


def _predict(stack: dict[str, Any], rows: int = 1) -> tuple[list[str], list[Any]]:
    response = requests.post(
        f"{stack['api']}/models/{MODEL}/predict",
        json={"instances": [ROW0] * rows},
        headers={"x-api-key": stack["key"]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return response.json()["prediction_ids"], response.json()["predictions"]


def _feedback(stack: dict[str, Any], body: Any, *, key: bool = True) -> requests.Response:
    headers = {"x-api-key": stack["key"]} if key else {}
    return requests.post(f"{stack['api']}/feedback", json=body, headers=headers, timeout=30)


def _once_captured(stack: dict[str, Any], body: Any) -> requests.Response:
    """Send until the prediction is in the log (409 before: the subscription delivers within a second)."""
    until = time.monotonic() + 30
    while True:
        response = _feedback(stack, body)
        if response.status_code != 409 or time.monotonic() > until:
            return response
        assert response.headers["Retry-After"] == "5"
        time.sleep(0.5)


def test_feedback_is_recorded_once_and_a_retry_is_a_duplicate(stack: dict[str, Any]) -> None:
    (prediction_id,), (predicted,) = _predict(stack)

    first = _once_captured(stack, {"prediction_id": prediction_id, "label": predicted})
    again = _feedback(stack, {"prediction_id": prediction_id, "label": predicted})
    changed = _feedback(stack, {"prediction_id": prediction_id, "reward": 0})

    assert first.status_code == 200, first.text
    recorded = first.json()
    assert (recorded["duplicate"], recorded["reward"], recorded["label"]) == (False, 1, predicted)
    assert (recorded["model_name"], recorded["model_version"]) == (MODEL, 1)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert again.json()["recorded_at_ms"] == recorded["recorded_at_ms"]
    assert changed.status_code == 200
    assert (changed.json()["matches_original"], changed.json()["reward"]) == (False, 1)
    dynamodb = local_stack_client("dynamodb", stack["description"])
    (table,) = [t for t in dynamodb.list_tables()["TableNames"] if "Predictions" in t]
    item = dynamodb.get_item(
        TableName=table, Key={"pk": {"S": f"PREDICTION#{prediction_id}"}, "sk": {"S": "FEEDBACK"}}
    )["Item"]
    assert item["reward"]["N"] in ("1", "1.0") and item["model_version"]["N"] == "1"


def test_feedback_is_refused_as_the_contract_says(stack: dict[str, Any]) -> None:
    (prediction_id,), _ = _predict(stack)

    bad_label = _once_captured(stack, {"prediction_id": prediction_id, "label": 7})  # known once captured
    unknown = _feedback(stack, {"prediction_id": "0190a0b1-0000-7000-8000-000000000000", "reward": 1})
    bad_reward = _feedback(stack, {"prediction_id": prediction_id, "reward": 0.5})
    no_key = _feedback(stack, {"prediction_id": prediction_id, "reward": 1}, key=False)

    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    assert bad_reward.status_code == 422
    assert bad_reward.json()["detail"][0]["loc"] == ["body", "reward"]
    assert bad_label.status_code == 422
    assert bad_label.json()["detail"] == [
        {"loc": ["body", "label"], "msg": "one of the model's classes: 0, 1", "type": "unknown_class"}
    ]
    assert no_key.status_code == 403
    assert "Predictions" not in json.dumps([r.json() for r in (unknown, bad_reward, bad_label)])


def test_a_batch_and_the_cli_over_the_local_stack(stack: dict[str, Any], tmp_path: Path) -> None:
    ids, predictions = _predict(stack, rows=3)
    assert _once_captured(stack, {"prediction_id": ids[0], "reward": 1}).status_code == 200

    batch = _feedback(
        stack,
        {
            "feedback": [
                {"prediction_id": ids[0], "reward": 1},
                {"prediction_id": ids[1], "label": predictions[1]},
                {"prediction_id": ids[2], "label": "benign"},
            ]
        },
    )
    lines = tmp_path / "feedback.jsonl"
    lines.write_text(json.dumps({"prediction_id": ids[2], "reward": 0}) + "\n")
    cli = subprocess.run(
        [*MLOPS, "--json", "feedback", "send", "--file", str(lines)],
        cwd=ROOT,
        env=_env(stack["state_dir"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    again = subprocess.run(
        [*MLOPS, "feedback", "send", "--prediction-id", ids[2], "--reward", "1"],
        cwd=ROOT,
        env=_env(stack["state_dir"]),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert batch.status_code == 200, batch.text
    assert [r["status"] for r in batch.json()["results"]] == [200, 200, 422]
    assert [r["duplicate"] for r in batch.json()["results"][:2]] == [True, False]
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["recorded"] == 1
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["duplicate"] is True and json.loads(again.stdout)["reward"] == 0
