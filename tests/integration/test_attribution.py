"""Attribution: the reward lands on the version that served the prediction, whatever the
routing policy says by the time the feedback arrives. Every hop is the real handler:
inference -> capture -> feedback -> the prediction log's stream -> rewards."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import pytest

from mlops_core.serving.capture import CAPTURE_MARKER
from tests.integration.conftest import call
from tests.integration.rewards_support import arms, feedback_inserts, stream_records, variants
from tests.support import ROW0, FakeLambdaContext, body, load_event, subscription_event

MODEL = "breast-cancer"


def _policy(registry_api: ModuleType, version: int) -> None:
    policy = {"type": "split", "weights": [{"version": version, "weight": 1.0}]}
    response = call(registry_api, load_event("registry/set_routing.json", body={"policy": policy}))
    assert response["statusCode"] == 200, response["body"]


def _captured(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    return subscription_event([x for x in capsys.readouterr().out.splitlines() if f'"{CAPTURE_MARKER}"' in x])


def test_a_reward_is_credited_to_the_variant_that_served_after_the_policy_changed(
    inference: ModuleType, registry_api: ModuleType, versions: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.capture import handler as capture
    from functions.feedback import handler as feedback
    from functions.rewards import handler as rewards

    _policy(registry_api, 1)
    capsys.readouterr()
    served = body(call(inference, load_event("inference/predict.json", body={"instances": [ROW0]})))
    assert (served["model_version"], served["routed_by"]) == (1, "split")
    capture.lambda_handler(_captured(capsys), FakeLambdaContext())

    # The policy moves all traffic to v2 before the feedback arrives.
    _policy(registry_api, 2)
    inference.predictor.clear()
    assert (
        body(call(inference, load_event("inference/predict.json", body={"instances": [ROW0]})))[
            "model_version"
        ]
        == 2
    )
    capture.lambda_handler(_captured(capsys), FakeLambdaContext())

    (prediction_id,) = served["prediction_ids"]
    answer = call(
        feedback, load_event("feedback/reward.json", body={"prediction_id": prediction_id, "reward": 1})
    )
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["model_version"] == 1

    records = feedback_inserts(stream_records())
    assert len(records) == 1
    response = rewards.lambda_handler({"Records": records + records}, FakeLambdaContext())
    assert response == {"batchItemFailures": []}

    counted = {arm.version: arm for arm in arms(MODEL).arms}
    assert set(counted) == {1} and (counted[1].successes, counted[1].failures) == (1.0, 0.0)
    totals = variants(MODEL)
    assert (totals[1].feedback, totals[1].reward_sum, totals[1].requests) == (1, 1.0, 1)
    assert (totals[2].feedback, totals[2].requests) == (0, 1)
