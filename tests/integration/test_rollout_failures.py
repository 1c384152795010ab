"""Guarded rollouts when things go wrong, against moto: every failure ends with all traffic
(and the alias) on production, anyone else's routing change fails the rollout's next step,
every step is safe to retry, an abort stops everything, a workflow that does not start
leaves nothing running."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_core.errors import Conflict, Unavailable
from mlops_core.routing.rollout.entities import RolloutNotRunning
from tests.integration.rollout_world import (
    CANDIDATE,
    MODEL,
    PRODUCTION,
    SINGLE_PRODUCTION,
    FakeWorkflow,
    World,
)


@pytest.fixture
def world(versions: list[int]) -> World:
    return World(versions)


def test_a_failure_after_the_alias_moved_rolls_the_alias_and_the_traffic_back(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the workflow's Catch does: Promote failed half-way; RollBack undoes all of it."""
    rollout_id = world.start(steps=[100], guardrails={"min_calls": 0})
    world.steps.start_step(MODEL, rollout_id, 0)
    assert world.steps.check(MODEL, rollout_id, 0)["verdict"] == "promote"
    set_policy = world.steps.routing.set_policy

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise Unavailable("metadata table is throttled")

    monkeypatch.setattr(world.steps.routing, "set_policy", unavailable)
    with pytest.raises(Unavailable):
        world.steps.promote(MODEL, rollout_id)
    assert world.production() == CANDIDATE  # moved before the failure
    monkeypatch.setattr(world.steps.routing, "set_policy", set_policy)

    error = {"Error": "Unavailable", "Cause": '{"errorMessage": "metadata table is throttled"}'}
    ended = world.steps.roll_back(MODEL, rollout_id, error=error)

    assert ended["status"] == "failed" and ended["error"] == "RolloutFailed"
    assert world.production() == PRODUCTION
    assert world.policy() == SINGLE_PRODUCTION
    rollback = next(r for r in world.registry.list_audit(MODEL) if r.action == "rollback")
    assert (rollback.from_version, rollback.to_version) == (CANDIDATE, PRODUCTION)
    assert world.service.get(MODEL, rollout_id).outcome.error == error  # type: ignore[union-attr]


def test_a_routing_change_by_someone_else_fails_the_next_step(world: World) -> None:
    rollout_id = world.start(guardrails={"min_calls": 0})
    world.steps.start_step(MODEL, rollout_id, 0)
    world.steps.routing.set_policy(MODEL, {"type": "single", "version": 3}, reason="someone else")
    world.steps.check(MODEL, rollout_id, 0)
    with pytest.raises(Conflict, match="is at revision 2, not 1"):
        world.steps.start_step(MODEL, rollout_id, 1)  # the workflow's Catch then rolls back
    world.steps.roll_back(MODEL, rollout_id, error={"Error": "Conflict", "Cause": "changed concurrently"})
    assert world.policy() == SINGLE_PRODUCTION


def test_every_step_is_safe_to_retry(world: World) -> None:
    rollout_id = world.start(steps=[50, 100], guardrails={"min_calls": 0})
    first = world.steps.start_step(MODEL, rollout_id, 0)
    assert world.steps.start_step(MODEL, rollout_id, 0) == first
    assert world.steps.check(MODEL, rollout_id, 0)["verdict"] == "next"
    assert world.steps.check(MODEL, rollout_id, 0)["verdict"] == "next"  # replaces its own check
    world.steps.start_step(MODEL, rollout_id, 1)
    world.steps.check(MODEL, rollout_id, 1)
    assert world.steps.promote(MODEL, rollout_id) == world.steps.promote(MODEL, rollout_id)
    # A Catch that fires after the end (a late duplicate) changes nothing either.
    assert world.steps.roll_back(MODEL, rollout_id, error={"Error": "x"})["status"] == "succeeded"

    rollout = world.service.get(MODEL, rollout_id)
    assert [len(s.checks) for s in rollout.progress] == [1, 1]
    trail = world.registry.list_audit(MODEL)
    assert sum(1 for r in trail if r.action == "set_routing") == 3  # two steps, one back to production
    assert sum(1 for r in trail if r.action == "promote" and r.to_version == CANDIDATE) == 1
    assert world.production() == CANDIDATE


def test_abort_routes_everything_back_and_ends_the_workflow_at_its_next_step(world: World) -> None:
    rollout_id = world.start()
    world.steps.start_step(MODEL, rollout_id, 0)

    aborted = world.service.abort(MODEL, rollout_id, actor="bob", reason="support tickets")

    assert aborted.status == "aborted" and world.workflow.stopped == [rollout_id]
    assert world.policy() == SINGLE_PRODUCTION and world.production() == PRODUCTION
    assert aborted.outcome is not None and aborted.outcome.message.endswith("aborted: support tickets")
    with pytest.raises(RolloutNotRunning):
        world.steps.check(MODEL, rollout_id, 0)
    assert world.steps.roll_back(MODEL, rollout_id, error={"Error": "RolloutNotRunning"})["error"] == (
        "RolloutAborted"
    )
    with pytest.raises(Conflict, match="is aborted"):
        world.service.abort(MODEL, rollout_id)
    event = next(e for e in world.publisher.events if e.detail_type() == "RolloutRolledBack")
    assert event.cause == "aborted" and event.actor == "bob"  # type: ignore[attr-defined]


def test_a_workflow_that_does_not_start_leaves_nothing_running(world: World) -> None:
    world.service.workflow = FakeWorkflow(fail=True)
    with pytest.raises(Unavailable, match="did not start"):
        world.start()
    (failed,) = world.service.recent(MODEL)
    assert failed.status == "failed" and world.service.repository.active(MODEL) is None
    assert world.routing.routing(MODEL) is None  # the routing was never touched
