"""A rollout step's verdict from two versions' totals, and what a rollout request accepts."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from pydantic import ValidationError

from mlops_core.routing.rollout.entities import Guardrails, Measurement, Rollout, RolloutRequest
from mlops_core.routing.rollout.guardrails import insufficient_after_holds, judge
from mlops_core.routing.state import VariantTotals, latency_bucket


def totals(version: int, calls: int, errors: int = 0, latency_ms: float = 3.0, **rest: Any) -> VariantTotals:
    return VariantTotals(
        version=version, calls=calls, errors=errors, latency_ms={latency_bucket(latency_ms): calls}, **rest
    )


def test_an_error_rate_more_than_two_points_above_production_trips() -> None:
    verdict = judge(totals(2, 100, errors=6), totals(1, 1000, errors=30), Guardrails())
    assert verdict.decision == "rollback"
    (trip,) = verdict.tripped
    assert (trip.guardrail, trip.observed, trip.limit) == ("error_rate", 0.06, pytest.approx(0.05))


def test_exactly_two_points_above_production_passes() -> None:
    verdict = judge(totals(2, 100, errors=5), totals(1, 100, errors=3), Guardrails())
    assert verdict.decision == "proceed" and verdict.tripped == ()
    assert verdict.message.startswith("passed: v2: 100 calls, error rate 5.00% (production 3.00%)")


def test_production_without_calls_counts_as_error_free() -> None:
    assert judge(totals(2, 100, errors=3), totals(1, 0), Guardrails()).decision == "rollback"
    assert judge(totals(2, 100, errors=2), totals(1, 0), Guardrails()).decision == "proceed"


@pytest.mark.parametrize(
    ("policy", "decision"), [("hold", "hold"), ("rollback", "rollback"), ("proceed", "proceed")]
)
def test_too_few_calls_are_not_judged_and_follow_the_insufficient_traffic_rule(
    policy: str, decision: str
) -> None:
    rules = Guardrails(min_calls=100, on_insufficient_traffic=policy)  # type: ignore[arg-type]
    verdict = judge(totals(2, 99, errors=99), totals(1, 1000), rules)
    assert verdict.decision == decision
    assert "answered 99 call(s), fewer than the 100 needed" in verdict.message


def test_a_held_step_that_may_be_held_no_more_is_rolled_back_for_insufficient_traffic() -> None:
    held = judge(totals(2, 3), totals(1, 100), Guardrails())
    final = insufficient_after_holds(held, 3)
    assert final.decision == "rollback" and final.tripped[0].guardrail == "insufficient_traffic"
    assert final.message.endswith("fewer than the 100 needed after 3 extra bake(s)")


def test_p99_latency_trips_above_the_ratio_but_never_at_or_below_the_floor() -> None:
    fast_production = totals(1, 1000, latency_ms=0.5)
    # 10 ms is 10x production's 1 ms bucket, but at the floor: buckets that coarse decide nothing.
    assert judge(totals(2, 100, latency_ms=8), fast_production, Guardrails()).decision == "proceed"
    slow = judge(totals(2, 100, latency_ms=15), totals(1, 1000, latency_ms=4), Guardrails())
    assert [t.guardrail for t in slow.tripped] == ["p99_ratio"]
    assert slow.tripped[0].message == "p99 latency <= 15 ms vs production's <= 4 ms: more than 2x"


def test_one_bucket_of_difference_never_trips_the_ratio_of_2() -> None:
    """Neighbouring buckets are at most 1.5x apart above 2 ms: a p99 one bucket above
    production's is noise for a ratio guardrail of 2, at any latency."""
    from mlops_core.routing.state import LATENCY_BUCKETS_MS

    finite = [b for b in LATENCY_BUCKETS_MS if b != float("inf")]
    for low, high in itertools.pairwise(finite):
        if low >= 2:
            assert high / low <= 1.5, (low, high)
    production, candidate = totals(1, 1000, latency_ms=18), totals(2, 100, latency_ms=22)  # le_20, le_25
    assert judge(candidate, production, Guardrails()).decision == "proceed"


def test_the_p99_of_a_handful_of_calls_is_not_judged() -> None:
    """99 calls' p99 is their slowest call: one GC pause under load would roll back a good
    candidate (seen on a loaded machine), so latency is judged from 100 calls on."""
    rules = Guardrails(min_calls=10, max_p99_ms=50)
    assert judge(totals(2, 99, latency_ms=150), totals(1, 1000, latency_ms=4), rules).decision == "proceed"
    assert judge(totals(2, 100, latency_ms=150), totals(1, 1000, latency_ms=4), rules).decision == "rollback"


def test_an_absolute_p99_limit_trips_on_the_unbounded_bucket_too() -> None:
    verdict = judge(
        totals(2, 100, latency_ms=12_000), totals(1, 100, latency_ms=12_000), Guardrails(max_p99_ms=1000)
    )
    assert [t.guardrail for t in verdict.tripped] == ["p99_ms"]  # same bucket as production: no ratio trip
    assert verdict.candidate.p99_ms is None and verdict.candidate.p99_bucket == "le_inf"
    assert verdict.tripped[0].message == "p99 latency > 10000 ms above the limit 1000 ms"


def test_the_reward_guardrail_waits_for_enough_rewards_then_compares_rates() -> None:
    rules = Guardrails(max_reward_drop=0.05, min_rewards=100)
    few = judge(
        totals(2, 200, rewarded=50, reward_sum=10), totals(1, 2000, rewarded=1000, reward_sum=300), rules
    )
    assert (
        few.decision == "hold" and "rewards: v2 has 50, production 1000; 100 each are needed" in few.message
    )
    worse = judge(
        totals(2, 200, rewarded=200, reward_sum=40), totals(1, 2000, rewarded=1000, reward_sum=300), rules
    )
    assert worse.decision == "rollback" and worse.tripped[0].guardrail == "reward"
    assert worse.tripped[0].limit == pytest.approx(0.25)
    close = judge(
        totals(2, 200, rewarded=200, reward_sum=52), totals(1, 2000, rewarded=1000, reward_sum=300), rules
    )
    assert close.decision == "proceed"


def test_errors_trip_even_while_rewards_are_still_too_few() -> None:
    rules = Guardrails(max_reward_drop=0.05)
    verdict = judge(totals(2, 200, errors=50), totals(1, 2000), rules)
    assert verdict.decision == "rollback" and [t.guardrail for t in verdict.tripped] == ["error_rate"]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([], "give at least one step"),
        ([50, 10, 100], "steps must increase: 10 follows 50"),
        ([10, 50], "the last step must be 100"),
        ([0, 100], "greater than or equal to 1"),
        ([10, 100, 100], "steps must increase: 100 follows 100"),
        ([*range(1, 12), 100], "at most 10 items"),
    ],
)
def test_a_request_names_increasing_steps_ending_at_100(steps: list[int], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RolloutRequest(candidate_version=2, steps=steps)  # type: ignore[arg-type]


def test_a_request_bounds_its_bake_and_guardrails_and_has_sane_defaults() -> None:
    for bad in (
        {"bake_seconds": 0},
        {"bake_seconds": 86_401},
        {"guardrails": {"max_holds": 6}},
        {"extra": 1},
    ):
        with pytest.raises(ValidationError):
            RolloutRequest.model_validate({"candidate_version": 2} | bad)
    request = RolloutRequest(candidate_version=2)
    assert (request.steps, request.bake_seconds) == ((10, 50, 100), 600)
    rules = request.guardrails
    assert (rules.max_error_rate_increase, rules.max_p99_ratio, rules.min_calls) == (0.02, 2.0, 100)
    assert (rules.on_insufficient_traffic, rules.max_holds, rules.max_reward_drop) == ("hold", 3, None)


def test_measurements_are_plain_json_even_for_the_unbounded_latency_bucket() -> None:
    measured = Measurement.of(totals(2, 10, latency_ms=12_000))
    text = measured.model_dump_json()
    assert "Infinity" not in text and json.loads(text)["p99_bucket"] == "le_inf"
    assert Measurement.model_validate_json(text).p99_upper_ms == float("inf")


def test_a_rollout_record_round_trips_through_json() -> None:
    record = Rollout(
        rollout_id="rollout-20261127T120000Z-1a2b3c4d",
        model_name="m",
        candidate_version=2,
        production_version=1,
        production_alias_revision=3,
        steps=(10, 100),
        bake_seconds=60,
        guardrails=Guardrails(),
        created_at="2026-11-27T12:00:00.000Z",
        updated_at="2026-11-27T12:00:00.000Z",
        routing_revision=0,
        previous_routing={"type": "single", "alias": "production"},
        production_before=totals(1, 5),
    )
    assert Rollout.model_validate(json.loads(record.model_dump_json())) == record
