"""The routing history against moto: the capture and rewards functions write it inside their
exactly-once transactions (a redelivery adds nothing), the registry API and the console read
it back as traffic share and posterior per variant over time."""

from __future__ import annotations

import copy
import json
from types import ModuleType
from typing import Any

import pytest

from mlops_core.feedback.reward_stream import count_stream_batch
from mlops_core.feedback.rewards import RewardUpdater
from mlops_core.feedback.traffic import TrafficCounter
from mlops_core.routing import history
from mlops_core.routing.repository import RoutingRepository
from mlops_core.serving.capture import CapturedPrediction
from mlops_core.storage.dynamo import MetadataTable
from tests.integration.conftest import call
from tests.integration.rewards_support import arms, feedback, record_feedback, stream_records
from tests.integration.test_routing import _captured_event, set_routing, split
from tests.support import (
    PREDICTIONS_TABLE,
    ROW0,
    TABLE,
    FakeLambdaContext,
    body,
    load_event,
)

MODEL = "breast-cancer"


def _row(prediction_id: str, version: int, at_ms: int, *, model: str = "m", shadow: int | None = None) -> Any:
    return CapturedPrediction(
        prediction_id=prediction_id,
        model_name=model,
        model_version=version,
        alias=None,
        at_ms=at_ms,
        features=[],
        inputs=[],
        prediction=0,
        probabilities=None,
        request_id=prediction_id,
        shadow_version=shadow,
    )


def _history(model: str = "m") -> list[dict[str, Any]]:
    return list(reversed(RoutingRepository(MetadataTable(TABLE)).history(model)))


def _updater(**options: Any) -> RewardUpdater:
    return RewardUpdater(
        MetadataTable(TABLE), MetadataTable(PREDICTIONS_TABLE, what="prediction log"), **options
    )


def _history_route(registry_api: ModuleType, name: str = MODEL, **query: str) -> dict[str, Any]:
    event = load_event(
        "registry/get_routing_history.json", path_params={"name": name}, query=query or {"limit": "288"}
    )
    return call(registry_api, event)


def test_a_delivery_counts_in_the_bucket_of_each_predictions_time_once(aws: None) -> None:
    base = 1_800_000_000_000  # a bucket's start (ms)
    rows = [
        _row("a", 1, base + 1_000),
        _row("b", 2, base + 2_000, shadow=3),
        _row("c", 1, base + 299_000),
        _row("d", 1, base + 300_000),  # the next bucket
    ]
    counter = TrafficCounter(MetadataTable(PREDICTIONS_TABLE, what="prediction log"), MetadataTable(TABLE))

    assert counter.count(rows, batch_id="delivery-1", now_s=base // 1000) is True
    assert counter.count(rows, batch_id="delivery-1", now_s=base // 1000) is False  # redelivered

    first, second = _history()
    assert (first["bucket_start"], second["bucket_start"]) == ("2027-01-15T08:00:00Z", "2027-01-15T08:05:00Z")
    assert (first["v000001_requests"], first["v000002_requests"], first["v000003_shadow_requests"]) == (
        2,
        1,
        1,
    )
    assert (first["v000001_calls"], second["v000001_requests"]) == (2, 1)
    assert first["expires_at"] == history.expires_at(base // 1000, 300)


def test_the_same_feedback_twice_is_in_the_history_once_with_the_posterior_it_left(aws: None) -> None:
    at = "2027-01-15T08:03:00.000Z"
    given = [feedback(f"p-{i}", version=1 + i % 2, reward=float(i % 3 != 0)) for i in range(6)]
    for record in given:
        assert record_feedback(record)
    records = stream_records()
    updater = _updater(now=lambda: at)

    assert count_stream_batch(updater, records).counted == 6
    assert count_stream_batch(updater, records).counted == 0  # the same records delivered again
    duplicated = copy.deepcopy(records[:2])
    assert count_stream_batch(updater, records + duplicated).counted == 0  # and twice in one batch

    (bucket,) = _history()
    assert bucket["bucket_start"] == "2027-01-15T08:00:00Z"
    assert (bucket["v000001_feedback"], bucket["v000002_feedback"]) == (3, 3)
    assert bucket["v000001_reward_sum"] + bucket["v000002_reward_sum"] == 4
    state = {a.version: a for a in arms().arms}
    for version, (successes, failures, mean, lower, upper) in json.loads(bucket["posterior"]).items():
        arm = state[int(version)]
        assert (successes, failures) == (arm.successes, arm.failures)
        assert mean == pytest.approx((1 + arm.successes) / (2 + arm.successes + arm.failures))
        assert lower < mean < upper
    assert bucket["posterior_at"] == at


def test_later_feedback_moves_the_posterior_of_a_later_bucket_and_leaves_the_earlier_one(aws: None) -> None:
    clock = ["2027-01-15T08:03:00.000Z"]
    updater = _updater(now=lambda: clock[0])
    record_feedback(feedback("p-1", version=1, reward=1.0))
    count_stream_batch(updater, stream_records())
    clock[0] = "2027-01-15T08:12:00.000Z"
    record_feedback(feedback("p-2", version=1, reward=0.0))
    count_stream_batch(updater, stream_records())  # p-1 again (counted already), then p-2

    series = history.series("m", _history())

    assert [b.start for b in series.buckets] == ["2027-01-15T08:00:00Z", "2027-01-15T08:10:00Z"]
    early, late = (b.variants[0].posterior for b in series.buckets)
    assert early is not None and late is not None
    assert (early.successes, early.failures) == (1.0, 0.0)
    assert (late.successes, late.failures) == (1.0, 1.0)


def test_predictions_and_feedback_through_the_functions_come_back_by_the_api(
    inference: ModuleType, registry_api: ModuleType, versions: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.capture import handler as capture
    from functions.rewards import handler as rewards

    assert set_routing(registry_api, split((1, 0.5), (2, 0.5)))["statusCode"] == 200
    capsys.readouterr()
    served = []
    for i in range(20):
        request = {"instances": [ROW0], "request_key": f"user-{i}"}
        response = body(call(inference, load_event("inference/predict.json", body=request)))
        served.append((response["prediction_ids"][0], response["model_version"]))
    delivery = _captured_event(capsys)
    assert capture.lambda_handler(delivery, FakeLambdaContext())["counted"] is True
    assert capture.lambda_handler(delivery, FakeLambdaContext())["counted"] is False
    for prediction_id, version in served:
        record_feedback(feedback(prediction_id, version=version, reward=float(version == 2), model=MODEL))
    records = [r for r in stream_records() if r["dynamodb"]["Keys"]["sk"]["S"] == "FEEDBACK"]
    for _ in range(2):  # delivered twice
        rewards.lambda_handler({"Records": records}, FakeLambdaContext())

    response = _history_route(registry_api)

    assert response["statusCode"] == 200, response["body"]
    timeline = body(response)
    requests = {v: 0 for v in (1, 2)}
    feedback_counted = 0
    for bucket in timeline["buckets"]:
        shares = [p["share"] for p in bucket["variants"] if p["share"] is not None]
        assert not shares or sum(shares) == pytest.approx(1.0)
        for point in bucket["variants"]:
            requests[point["version"]] += point["requests"]
            feedback_counted += point["feedback"]
    assert requests == {v: sum(1 for _, w in served if w == v) for v in (1, 2)}
    assert feedback_counted == 20
    last = {p["version"]: p["posterior"] for p in timeline["buckets"][-1]["variants"]}
    assert last[2]["mean"] > last[1]["mean"]  # v2 earned every reward
    assert timeline["posterior_level"] == 0.9


@pytest.mark.parametrize(
    ("query", "status", "says"),
    [
        ({"since": "yesterday"}, 422, "ISO 8601"),
        ({"limit": "0"}, 422, "limit"),
        ({"limit": "100000"}, 422, "limit"),
    ],
)
def test_a_bad_history_query_is_422_with_what_is_wrong(
    registry_api: ModuleType, production_model: int, query: dict[str, str], status: int, says: str
) -> None:
    response = _history_route(registry_api, **query)
    assert response["statusCode"] == status
    assert says in response["body"]


def test_the_history_of_an_unknown_model_is_404_and_of_a_quiet_one_empty(
    registry_api: ModuleType, production_model: int
) -> None:
    assert _history_route(registry_api, "nope")["statusCode"] == 404
    quiet = _history_route(registry_api)
    assert quiet["statusCode"] == 200
    assert body(quiet)["buckets"] == []
