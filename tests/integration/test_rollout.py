"""Guarded rollouts against moto, step by step as the workflow calls them (no waits): a
candidate that errors is rolled back at its first step, a good one reaches 100 % and
becomes production, one rollout at a time (409), what cannot be rolled out is refused,
too little traffic is held then rolled back, latency is compared with production's."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from mlops_core.errors import Conflict, Invalid, NotFound
from mlops_core.registry.entities import PromotionPolicy
from mlops_core.routing.rollout.entities import Guardrails, RolloutRequest
from tests.integration.rollout_world import (
    CANDIDATE,
    MODEL,
    PRODUCTION,
    SINGLE_PRODUCTION,
    World,
)


@pytest.fixture
def world(versions: list[int]) -> World:
    return World(versions)


def test_a_candidate_that_errors_is_rolled_back_at_the_first_step(world: World) -> None:
    rollout_id = world.start(guardrails={"min_calls": 20})
    state = world.steps.start_step(MODEL, rollout_id, 0)
    assert state == {"model_name": MODEL, "rollout_id": rollout_id, "step": 0, "holds": 0, "wait_seconds": 30}
    assert world.policy()["weights"] == [{"version": 1, "weight": 0.9}, {"version": 2, "weight": 0.1}]

    world.traffic(PRODUCTION, 180)
    world.traffic(CANDIDATE, 20, errors=20)  # every call routed to it failed (422 to the caller)
    verdict = world.steps.check(MODEL, rollout_id, 0)
    assert verdict["verdict"] == "rollback"
    ended = world.steps.roll_back(MODEL, rollout_id)

    assert ended["status"] == "rolled_back" and ended["error"] == "RolloutRolledBack"
    assert world.policy() == SINGLE_PRODUCTION
    assert world.production() == PRODUCTION  # the alias never moved
    rollout = world.service.get(MODEL, rollout_id)
    check = rollout.progress[0].checks[0]
    assert (check.candidate.calls, check.candidate.errors, check.candidate.error_rate) == (20, 20, 1.0)
    assert check.production.calls == 180 and check.production.error_rate == 0.0
    assert [t.guardrail for t in rollout.outcome.tripped] == ["error_rate"]  # type: ignore[union-attr]
    assert "error rate 100.00% (20 of 20 calls) vs production's 0.00%" in ended["cause"]
    rolled_back = [e for e in world.publisher.events if e.detail_type() == "RolloutRolledBack"]
    assert len(rolled_back) == 1 and rolled_back[0].cause == "guardrail"  # type: ignore[attr-defined]
    reasons = [r.reason for r in world.registry.list_audit(MODEL) if r.action == "set_routing"]
    assert reasons == [
        f"rollout {rollout_id} rolled back at step 1 (10%)",
        f"rollout {rollout_id} step 1: 10% to v2",
    ]
    world.start()  # the marker was released: the next rollout may start


def test_a_good_candidate_reaches_100_percent_and_becomes_production(world: World) -> None:
    rollout_id = world.start(guardrails={"min_calls": 20})
    state: dict[str, Any] = {"step": 0}
    for percent in (10, 50, 100):
        state = world.steps.start_step(MODEL, rollout_id, state["step"])
        world.traffic(PRODUCTION, 2 * (100 - percent), errors=2 if percent == 10 else 0)
        world.traffic(CANDIDATE, 2 * percent, errors=2 if percent == 100 else 0)  # 1 %: within +2 points
        state = world.steps.check(MODEL, rollout_id, state["step"])
        assert state["verdict"] in ("next", "promote"), state
    assert state["verdict"] == "promote"
    ended = world.steps.promote(MODEL, rollout_id)

    assert ended["status"] == "succeeded" and ended["error"] is None
    assert world.production() == CANDIDATE
    assert world.policy() == SINGLE_PRODUCTION
    assert world.registry.get_version(MODEL, CANDIDATE).stage == "Production"
    trail = world.registry.list_audit(MODEL)
    routing_reasons = [r.reason for r in reversed(trail) if r.action == "set_routing"]
    assert routing_reasons == [
        f"rollout {rollout_id} step 1: 10% to v2",
        f"rollout {rollout_id} step 2: 50% to v2",
        f"rollout {rollout_id} step 3: 100% to v2",
        f"rollout {rollout_id}: v2 promoted",
    ]
    promotion = next(r for r in trail if r.action == "promote" and r.to_version == CANDIDATE)
    assert promotion.actor == "alice" and rollout_id in promotion.reason
    assert world.publisher.names().count("RolloutCompleted") == 1
    rollout = world.service.get(MODEL, rollout_id)
    assert [s.percent for s in rollout.progress] == [10, 50, 100]
    assert all(s.checks[-1].decision == "proceed" for s in rollout.progress)
    assert rollout.progress[2].checks[0].production.calls == 180 + 100  # since the start


def test_a_second_rollout_while_one_runs_is_a_conflict_and_only_one_of_concurrent_starts_wins(
    world: World,
) -> None:
    running = world.start()
    with pytest.raises(Conflict) as refused:
        world.start(candidate_version=3)
    assert refused.value.current == {"rollout_id": running}
    world.service.abort(MODEL, running)

    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def start() -> None:
        barrier.wait()
        try:
            outcomes.append(world.start())
        except Conflict:
            outcomes.append("409")

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("409") == 7
    assert world.service.repository.active(MODEL) == next(o for o in outcomes if o != "409")


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"candidate_version": 9}, Invalid, "model 'breast-cancer' has no version 9"),
        ({"candidate_version": PRODUCTION}, Invalid, "version 1 is production already"),
    ],
)
def test_a_candidate_that_cannot_be_rolled_out_is_refused_and_nothing_is_written(
    world: World, changes: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        world.start(**changes)
    assert world.service.recent(MODEL) == [] and world.service.repository.active(MODEL) is None


def test_an_unknown_model_is_not_found_and_an_archived_candidate_or_the_policy_refuse(world: World) -> None:
    with pytest.raises(NotFound):
        world.service.start("no-such-model", RolloutRequest(candidate_version=2))
    world.registry.set_alias(MODEL, "production", 3)  # v1 leaves production: Archived
    with pytest.raises(Invalid, match="version 1 is archived"):
        world.start(candidate_version=1)
    world.registry.set_policy(MODEL, PromotionPolicy(require_staging=True))
    with pytest.raises(Conflict, match="must be in Staging first"):
        world.start(candidate_version=4)
    assert world.service.recent(MODEL) == []


def test_a_step_without_enough_traffic_is_held_then_rolled_back(world: World) -> None:
    rollout_id = world.start(guardrails={"min_calls": 50, "max_holds": 2})
    world.steps.start_step(MODEL, rollout_id, 0)
    world.traffic(CANDIDATE, 10)
    held = [world.steps.check(MODEL, rollout_id, 0, holds) for holds in (0, 1)]
    final = world.steps.check(MODEL, rollout_id, 0, 2)

    assert [h["verdict"] for h in held] == ["hold", "hold"] and [h["holds"] for h in held] == [1, 2]
    assert final["verdict"] == "rollback"
    checks = world.service.get(MODEL, rollout_id).progress[0].checks
    assert [c.decision for c in checks] == ["hold", "hold", "rollback"]
    assert checks[-1].tripped[0].guardrail == "insufficient_traffic"
    assert "fewer than the 50 needed after 2 extra bake(s)" in checks[-1].message


def test_the_latency_guardrail_compares_p99_with_production(world: World) -> None:
    rollout_id = world.start(guardrails=Guardrails(min_calls=10, max_p99_ratio=2.0).model_dump())
    world.steps.start_step(MODEL, rollout_id, 0)
    world.traffic(PRODUCTION, 100, latency_ms=15)
    world.traffic(CANDIDATE, 100, latency_ms=150)  # P99_MIN_CALLS: a p99 needs 100 calls
    assert world.steps.check(MODEL, rollout_id, 0)["verdict"] == "rollback"
    check = world.service.get(MODEL, rollout_id).progress[0].checks[0]
    assert (check.candidate.p99_ms, check.production.p99_ms) == (150, 15)
    assert check.tripped[0].guardrail == "p99_ratio" and check.tripped[0].limit == 30


def test_at_100_percent_production_is_judged_since_the_rollout_began_not_by_its_cache_lag(
    world: World,
) -> None:
    """At 100 % production answers only while warm containers hold the previous split (the
    step's first seconds, another load): those calls are not the step's baseline."""
    rollout_id = world.start(
        steps=[50, 100], guardrails=Guardrails(min_calls=10, max_p99_ratio=2.0).model_dump()
    )
    world.steps.start_step(MODEL, rollout_id, 0)
    world.traffic(PRODUCTION, 100, latency_ms=15)
    world.traffic(CANDIDATE, 100, latency_ms=15)
    assert world.steps.check(MODEL, rollout_id, 0)["verdict"] == "next"
    world.steps.start_step(MODEL, rollout_id, 1)
    world.traffic(PRODUCTION, 50, latency_ms=1.5)  # the cache's lag, on an idle moment
    world.traffic(CANDIDATE, 100, latency_ms=15)
    assert world.steps.check(MODEL, rollout_id, 1)["verdict"] == "promote"
    check = world.service.get(MODEL, rollout_id).progress[1].checks[0]
    assert check.production.calls == 150 and check.production.p99_ms == 15
