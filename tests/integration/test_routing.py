"""Routing policies through the registry API, and the inference function serving them:
split (by request key), bandit, shadow, fallback; validation with nothing saved."""

from __future__ import annotations

import json
from collections import Counter
from types import ModuleType
from typing import Any

import pytest

from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.bandit import Arm
from mlops_core.routing.repository import RoutingRepository
from mlops_core.routing.state import ArmsState
from mlops_core.serving.capture import CAPTURE_MARKER
from tests.integration.conftest import call
from tests.support import (
    ROW0,
    FakeClock,
    FakeLambdaContext,
    body,
    corrupt_recorded_checksum,
    load_event,
    subscription_event,
)

MODEL = "breast-cancer"


def set_routing(registry_api: ModuleType, policy: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return call(registry_api, load_event("registry/set_routing.json", body={"policy": policy, **extra}))


def split(*pairs: tuple[int, float]) -> dict[str, Any]:
    return {"type": "split", "weights": [{"version": v, "weight": w} for v, w in pairs]}


def predict(inference: ModuleType, key: str | None = None, **query: str) -> dict[str, Any]:
    request: dict[str, Any] = {"instances": [ROW0]}
    if key is not None:
        request["request_key"] = key
    event = load_event("inference/predict.json", body=request, query=query or None)
    response = call(inference, event)
    assert response["statusCode"] == 200, response["body"]
    return body(response)


def test_a_split_is_set_audited_and_shown(registry_api: ModuleType, versions: list[int]) -> None:
    response = set_routing(registry_api, split((1, 0.9), (2, 0.1)), reason="canary v2")
    assert response["statusCode"] == 200, response["body"]
    stored = body(response)
    assert stored["revision"] == 1 and stored["policy"]["type"] == "split" and stored["reason"] == "canary v2"

    summary = body(call(registry_api, load_event("registry/get_routing.json")))
    assert summary["routing"]["revision"] == 1
    by_version = {v["version"]: v for v in summary["variants"]}
    assert by_version[1]["role"] == "served" and by_version[1]["weight"] == 0.9
    assert by_version[2]["weight"] == 0.1
    assert [h["action"] for h in summary["history"]] == ["set_routing"]
    assert summary["history"][0]["routing"]["weights"][1] == {"version": 2, "weight": 0.1}

    audit = body(call(registry_api, load_event("registry/get_audit.json")))["audit"]
    assert audit[0]["action"] == "set_routing" and audit[0]["revision"] == 1


@pytest.mark.parametrize(
    ("policy", "location", "fragment"),
    [
        (split((1, 0.9), (2, 0.2)), ["weights"], "sum to 1.1"),
        (split((1, 0.5), (1, 0.5)), ["weights"], "listed twice"),
        (split((1, 0.5), (9, 0.5)), ["weights", 1, "version"], "has no version 9"),
        ({"type": "bandit", "versions": [1, 9]}, ["versions", 1], "has no version 9"),
        ({"type": "single", "alias": "production", "shadow": 9}, ["shadow"], "has no version 9"),
        ({"type": "single", "alias": "canary"}, ["alias"], "has no alias 'canary'"),
    ],
)
def test_a_policy_that_cannot_serve_is_422_and_nothing_is_saved(
    registry_api: ModuleType, versions: list[int], policy: dict[str, Any], location: list[Any], fragment: str
) -> None:
    response = set_routing(registry_api, policy)
    assert response["statusCode"] == 422, response["body"]
    answer = body(response)
    assert fragment in json.dumps(answer)
    assert any(d["loc"][-len(location) :] == location for d in answer["detail"]), answer["details"]
    summary = body(call(registry_api, load_event("registry/get_routing.json")))
    assert summary["routing"]["revision"] == 0 and summary["history"] == []


def test_an_archived_version_cannot_be_routed_to(
    registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    registry.repository.transact([registry.repository.stage_op(MODEL, 2, "Archived")])
    response = set_routing(registry_api, split((1, 0.5), (2, 0.5)))
    assert response["statusCode"] == 422
    assert "archived" in body(response)["message"]


def test_a_stale_expected_revision_is_409(registry_api: ModuleType, versions: list[int]) -> None:
    assert set_routing(registry_api, split((1, 1.0)))["statusCode"] == 200
    response = set_routing(registry_api, split((2, 1.0)), expected_revision=0)
    assert response["statusCode"] == 409
    summary = body(call(registry_api, load_event("registry/get_routing.json")))
    assert summary["routing"]["policy"]["weights"] == split((1, 1.0))["weights"]


def test_an_unknown_model_is_404(registry_api: ModuleType, versions: list[int]) -> None:
    event = load_event("registry/set_routing.json", path_params={"name": "nope"})
    assert call(registry_api, event)["statusCode"] == 404


def test_a_split_of_10000_requests_lands_within_2_points_and_keys_are_sticky(
    inference: ModuleType, registry_api: ModuleType, versions: list[int]
) -> None:
    assert set_routing(registry_api, split((1, 0.9), (2, 0.1)))["statusCode"] == 200
    served = Counter(inference.predictor.predict(MODEL, [ROW0]).model_version for _ in range(10_000))
    assert set(served) == {1, 2}
    assert abs(served[2] / 10_000 - 0.1) <= 0.02, served

    first = {key: predict(inference, key)["model_version"] for key in (f"user-{i}" for i in range(200))}
    assert 0 < sum(v == 2 for v in first.values()) < 200
    for key, version in list(first.items())[:50]:
        again = predict(inference, key)
        assert again["model_version"] == version and again["routed_by"] == "split"


def test_an_alias_or_version_in_the_query_bypasses_the_policy(
    inference: ModuleType, registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    registry.set_alias(MODEL, "production", 3)
    assert set_routing(registry_api, split((1, 1.0)))["statusCode"] == 200
    assert predict(inference)["model_version"] == 1
    pinned = predict(inference, version="2")
    assert (pinned["model_version"], pinned["routed_by"], pinned["policy_revision"]) == (2, "version", None)
    by_alias = predict(inference, alias="production")
    assert (by_alias["model_version"], by_alias["routed_by"]) == (3, "alias")


def test_the_bandit_routes_to_the_arm_whose_posterior_is_best(
    inference: ModuleType, registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    assert set_routing(registry_api, {"type": "bandit", "versions": [1, 2]})["statusCode"] == 200
    repository = RoutingRepository(registry.repository.table)
    state = ArmsState(model_name=MODEL, arms=(Arm(1, 5.0, 995.0), Arm(2, 500.0, 500.0)), revision=1)
    registry.repository.transact([repository.arms_op(state, expected_revision=0)])
    served = Counter(inference.predictor.predict(MODEL, [ROW0]).model_version for _ in range(300))
    assert served[2] == 300
    assert predict(inference)["routed_by"] == "bandit"


def test_a_shadow_is_named_in_the_capture_line_and_never_answers(
    inference: ModuleType, registry_api: ModuleType, versions: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert set_routing(registry_api, {"type": "single", "version": 1, "shadow": 4})["statusCode"] == 200
    capsys.readouterr()
    answer = predict(inference, key="user-1")
    assert answer["model_version"] == 1 and answer["routed_by"] == "single" and answer["policy_revision"] == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if f'"{CAPTURE_MARKER}"' in x]
    assert len(lines) == 1
    assert (lines[0]["shadow_version"], lines[0]["request_key"], lines[0]["routed_by"]) == (
        4,
        "user-1",
        "single",
    )


def test_a_routed_version_that_fails_its_check_falls_back_to_production(
    inference: ModuleType, registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    registry.set_alias(MODEL, "production", 1)
    assert set_routing(registry_api, split((2, 1.0)))["statusCode"] == 200
    corrupt_recorded_checksum(MODEL, 2)
    answer = predict(inference)
    assert (answer["model_version"], answer["routed_by"], answer["alias"]) == (1, "fallback", "production")


def test_a_policy_change_reaches_a_warm_container_within_the_cache_ttl(
    inference: ModuleType, registry_api: ModuleType, versions: list[int]
) -> None:
    clock = FakeClock()
    inference.predictor.clock = clock
    inference.predictor.routing.set_clock(clock)
    assert set_routing(registry_api, split((1, 1.0)))["statusCode"] == 200
    assert predict(inference)["model_version"] == 1
    assert set_routing(registry_api, split((2, 1.0)))["statusCode"] == 200
    assert predict(inference)["model_version"] == 1  # cached
    clock.advance(inference.settings.alias_cache_ttl_seconds + 0.1)
    assert predict(inference)["model_version"] == 2


def _captured_event(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    lines = [x for x in capsys.readouterr().out.splitlines() if f'"{CAPTURE_MARKER}"' in x]
    return subscription_event(lines)


def test_the_capture_function_scores_the_shadow_and_counts_each_variant_once(
    inference: ModuleType,
    registry_api: ModuleType,
    registry: ModelRegistry,
    versions: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from functions.capture import handler as capture

    assert set_routing(registry_api, {"type": "single", "version": 1, "shadow": 4})["statusCode"] == 200
    capsys.readouterr()
    ids = [predict(inference)["prediction_ids"][0] for _ in range(3)]
    event = _captured_event(capsys)
    assert capture.lambda_handler(event, FakeLambdaContext())["counted"] is True
    assert capture.lambda_handler(event, FakeLambdaContext())["counted"] is False  # redelivered

    logged = capture.prediction_log.get(ids[0])
    assert logged is not None and logged.shadow_version == 4 and logged.shadow_error is None
    served = inference.predictor.predict(MODEL, [ROW0], version=4)
    assert logged.shadow_prediction == served.predictions[0]
    assert logged.shadow_probabilities == pytest.approx(served.probabilities[0])

    totals = {t.version: t for t in RoutingRepository(registry.repository.table).variants(MODEL)}
    assert (totals[1].requests, totals[1].shadow_requests) == (3, 0)
    assert (totals[4].requests, totals[4].shadow_requests) == (0, 3)
    summary = body(call(registry_api, load_event("registry/get_routing.json")))
    roles = {v["version"]: (v["role"], v["totals"]["requests"]) for v in summary["variants"]}
    assert roles[1] == ("served", 3) and roles[4] == ("shadow", 0)


def test_a_shadow_that_cannot_load_is_recorded_not_fatal(
    inference: ModuleType,
    registry_api: ModuleType,
    registry: ModelRegistry,
    versions: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from functions.capture import handler as capture

    capture.shadows.predictor.clear()
    assert set_routing(registry_api, {"type": "single", "version": 1, "shadow": 2})["statusCode"] == 200
    corrupt_recorded_checksum(MODEL, 2)
    capsys.readouterr()
    (prediction_id,) = predict(inference)["prediction_ids"]
    assert capture.lambda_handler(_captured_event(capsys), FakeLambdaContext())["captured"] == 1
    logged = capture.prediction_log.get(prediction_id)
    assert logged is not None and logged.shadow_prediction is None
    assert logged.shadow_error is not None and "integrity" in logged.shadow_error


def test_failed_calls_and_latency_are_counted_against_the_chosen_version(
    inference: ModuleType,
    registry_api: ModuleType,
    registry: ModelRegistry,
    versions: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    from functions.capture import handler as capture

    assert set_routing(registry_api, split((3, 1.0)))["statusCode"] == 200
    capsys.readouterr()
    for i in range(2):  # each call is its own invocation (request id)
        event = load_event("inference/predict.json")
        assert (
            inference.lambda_handler(event, FakeLambdaContext(aws_request_id=f"call-{i}"))["statusCode"]
            == 200
        )
    bad = call(inference, load_event("inference/predict.json", body={"instances": [[1.0, 2.0]]}))
    assert bad["statusCode"] == 422
    assert capture.lambda_handler(_captured_event(capsys), FakeLambdaContext())["counted"] is True

    (totals,) = [t for t in RoutingRepository(registry.repository.table).variants(MODEL) if t.version == 3]
    assert (totals.calls, totals.errors, totals.requests) == (3, 1, 4)  # predict.json has 2 rows
    assert sum(totals.latency_ms.values()) == 3


def test_a_call_that_loads_its_version_counts_the_load_apart_from_its_latency(
    inference: ModuleType,
    registry_api: ModuleType,
    registry: ModelRegistry,
    versions: list[int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A container's first call to a version fetches and opens it: that part of its latency
    is reported as ``model_load_ms`` and left out of the histogram a rollout's p99 reads."""
    from functions.capture import handler as capture

    assert set_routing(registry_api, split((3, 1.0)))["statusCode"] == 200
    inference.predictor.clear()  # as a new container
    capsys.readouterr()
    for i in range(2):
        event = load_event("inference/predict.json")
        assert (
            inference.lambda_handler(event, FakeLambdaContext(aws_request_id=f"c-{i}"))["statusCode"] == 200
        )
    captured = [x for x in capsys.readouterr().out.splitlines() if f'"{CAPTURE_MARKER}"' in x]
    event = subscription_event(captured)
    lines = [json.loads(x) for x in captured]
    loads = [line["model_load_ms"] for line in lines]
    assert loads[0] is not None and loads[0] > 0 and loads[0] <= lines[0]["latency_ms"]
    assert loads[1] is None
    assert capture.lambda_handler(event, FakeLambdaContext())["counted"] is True
    (totals,) = [t for t in RoutingRepository(registry.repository.table).variants(MODEL) if t.version == 3]
    assert (totals.calls, totals.model_loads, sum(totals.latency_ms.values())) == (2, 1, 2)


def test_the_latency_histogram_holds_serving_time_without_the_load() -> None:
    from mlops_core.feedback.traffic import serving_ms
    from mlops_core.routing.state import latency_bucket

    assert serving_ms(812.0, 805.5) == pytest.approx(6.5)
    assert latency_bucket(serving_ms(812.0, 805.5)) == latency_bucket(6.5) != latency_bucket(812.0)
    assert serving_ms(40.0, None) == 40.0
    assert serving_ms(3.0, 3.2) == 0.0  # two clocks' rounding never makes it negative
