"""The rollout workflow's steps, one Lambda each (``functions/rollout``):

    StartStep -> Bake (Wait) -> CheckGuardrails -> next: StartStep | hold: Bake
                                                 | promote: Promote | rollback: RollBack

Each takes and returns the small state the workflow passes along (model, rollout id, the
step's index, holds so far, how long to bake) and is safe to retry: a step already
recorded is answered from the record, a routing change or alias move already made by an
attempt that failed before recording it is recognised, not repeated.
"""

from __future__ import annotations

import json
from typing import Any

from mlops_core.clock import now_iso
from mlops_core.errors import Invalid
from mlops_core.registry.entities import PRODUCTION
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.rollout import guardrails
from mlops_core.routing.rollout.entities import ENDED, Check, Outcome, Rollout, RolloutNotRunning, StepRecord
from mlops_core.routing.rollout.events import RolloutCompleted
from mlops_core.routing.rollout.records import ERROR_NAMES, RolloutRecords
from mlops_core.routing.state import VariantTotals, minus
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher


class RolloutSteps(RolloutRecords):
    def __init__(
        self,
        table: MetadataTable,
        *,
        registry: ModelRegistry,
        publisher: EventPublisher | None = None,
        max_wait_seconds: int | None = None,
    ) -> None:
        super().__init__(table, registry=registry, publisher=publisher)
        #: Bakes never wait longer than this (the local stack shortens them); None: the bake.
        self.max_wait_seconds = max_wait_seconds

    def start_step(self, name: str, rollout_id: str, index: int) -> dict[str, Any]:
        """Route the step's share to the candidate, snapshot its totals, say how long to bake."""
        rollout = self._running(name, rollout_id)
        if index < len(rollout.progress):  # a retried invocation
            return _state(rollout, index)
        if index != len(rollout.progress) or index >= len(rollout.steps):
            raise Invalid(f"rollout {rollout_id} is at step {len(rollout.progress) + 1}, not {index + 1}")
        percent, candidate = rollout.steps[index], rollout.candidate_version
        reason = f"rollout {rollout_id} step {index + 1}: {percent}% to v{candidate}"
        current = self.routing.repository.routing(name, consistent=True)
        if (
            current is not None
            and current.revision == rollout.routing_revision + 1
            and current.reason == reason
        ):
            revision = current.revision  # set by an attempt that failed before recording it
        else:
            weights = [
                {"version": rollout.production_version, "weight": (100 - percent) / 100},
                {"version": candidate, "weight": percent / 100},
            ]
            revision = self.routing.set_policy(
                name,
                {"type": "split", "weights": weights},
                actor=rollout.actor,
                reason=reason,
                expected_revision=rollout.routing_revision,
            ).revision
        wait = rollout.bake_seconds
        if self.max_wait_seconds is not None:
            wait = min(wait, self.max_wait_seconds)
        step = StepRecord(
            index=index,
            percent=percent,
            started_at=now_iso(),
            wait_seconds=wait,
            routing_revision=revision,
            **_before(
                self._totals(name, rollout.production_version, candidate),
                rollout.production_version,
                candidate,
            ),
        )
        saved = self._save(rollout, progress=(*rollout.progress, step), routing_revision=revision)
        return _state(saved, index)

    def check(self, name: str, rollout_id: str, index: int, holds: int = 0) -> dict[str, Any]:
        """Judge the step; ``verdict`` is ``next``, ``hold``, ``promote`` or ``rollback``."""
        rollout = self._running(name, rollout_id)
        if index >= len(rollout.progress):
            raise Invalid(f"rollout {rollout_id} has not started step {index + 1}")
        step = rollout.progress[index]
        production, candidate = rollout.production_version, rollout.candidate_version
        now = self._totals(name, production, candidate)
        rules = rollout.guardrails
        # Production over the step's own window when it served enough of it: both sides then
        # share the same conditions (load, traffic mix), which a baseline since the rollout
        # began does not (seen: a load spike during one step tripped the latency ratio of a
        # candidate identical to production). At 100 % production serves only while warm
        # containers still hold the previous split (the routing cache's TTL, the step's first
        # seconds: not the same window at all): then its calls since the rollout began are
        # the baseline.
        baseline = minus(now[production], rollout.production_before)
        if step.production_before is not None and step.percent < 100:
            same_window = minus(now[production], step.production_before)
            if same_window.calls >= max(rules.min_calls, 1):
                baseline = same_window
        verdict = guardrails.judge(minus(now[candidate], step.candidate_before), baseline, rules)
        if verdict.decision == "hold" and holds >= rules.max_holds:
            verdict = guardrails.insufficient_after_holds(verdict, holds)
        check = Check(
            at=now_iso(),
            attempt=holds,
            decision=verdict.decision,
            candidate=verdict.candidate,
            production=verdict.production,
            tripped=verdict.tripped,
            message=verdict.message,
        )
        judged = step.model_copy(update={"checks": (*step.checks[:holds], check)})
        saved = self._save(rollout, progress=(*rollout.progress[:index], judged))
        if verdict.decision == "hold":
            return _state(saved, index, holds=holds + 1) | {"verdict": "hold"}
        if verdict.decision == "rollback":
            return _state(saved, index, holds=holds) | {"verdict": "rollback"}
        if index == len(rollout.steps) - 1:
            return _state(saved, index) | {"verdict": "promote"}
        return {
            "model_name": name,
            "rollout_id": rollout_id,
            "step": index + 1,
            "holds": 0,
            "verdict": "next",
        }

    def promote(self, name: str, rollout_id: str) -> dict[str, Any]:
        """Production to the candidate (conditioned on the alias being as the start found it),
        all traffic to production, the rollout ended."""
        rollout = self.get(name, rollout_id)
        if rollout.status == "succeeded":
            return _ended(rollout)
        if rollout.status == "running":
            rollout = self._save(rollout, status="promoting")
        elif rollout.status != "promoting":
            raise RolloutNotRunning(f"rollout {rollout_id} is {rollout.status}")
        candidate = rollout.candidate_version
        if rollout.promoted_alias_revision is None:
            alias = self.registry.get_alias(name, PRODUCTION, consistent=True)
            if alias.version == candidate and alias.revision == rollout.production_alias_revision + 1:
                revision = alias.revision  # moved by an attempt that failed before recording it
            else:
                shares = ", ".join(f"{p}%" for p in rollout.steps)
                revision = self.registry.move_alias(
                    name,
                    PRODUCTION,
                    candidate,
                    expected_revision=rollout.production_alias_revision,
                    actor=rollout.actor,
                    reason=f"rollout {rollout_id}: v{candidate} passed every step ({shares})",
                ).revision
            rollout = self._save(rollout, promoted_alias_revision=revision)
        self._route_to_production(rollout, f"rollout {rollout_id}: v{candidate} promoted")
        outcome = Outcome(
            cause="promoted", at=now_iso(), message=f"v{candidate} is production", step=len(rollout.steps)
        )
        ended = self._finish(rollout, "succeeded", outcome)
        if ended.status == "succeeded":
            self._announce(
                RolloutCompleted(
                    model_name=name,
                    rollout_id=rollout_id,
                    candidate_version=candidate,
                    from_version=rollout.production_version,
                    steps=list(rollout.steps),
                    actor=rollout.actor,
                )
            )
        return _ended(ended)

    def roll_back(self, name: str, rollout_id: str, *, error: dict[str, Any] | None = None) -> dict[str, Any]:
        """Everything back on production: the alias if Promote had moved it, then the traffic.
        ``error`` is the failed step's (from the workflow's Catch); without it a guardrail tripped."""
        rollout = self.get(name, rollout_id)
        if rollout.status in ENDED:
            return _ended(rollout)
        step = rollout.current_step
        reason = f"rollout {rollout_id} rolled back" + (
            f" at step {step.index + 1} ({step.percent}%)" if step else ""
        )
        if rollout.promoted_alias_revision is not None:
            alias = self.registry.get_alias(name, PRODUCTION, consistent=True)
            if (
                alias.version == rollout.candidate_version
                and alias.revision == rollout.promoted_alias_revision
            ):
                self.registry.rollback(
                    name, PRODUCTION, expected_revision=alias.revision, actor=rollout.actor, reason=reason
                )
        self._route_to_production(rollout, reason)
        number = step.index + 1 if step else None
        if error is not None:
            failure = f"{error.get('Error', 'error')}: {_cause(error.get('Cause'))}".rstrip(": ")
            outcome = Outcome(
                cause="error", at=now_iso(), message=f"a step failed: {failure}", step=number, error=error
            )
        else:
            last = step.checks[-1] if step and step.checks else None
            outcome = Outcome(
                cause="guardrail",
                at=now_iso(),
                message=last.message if last else "rolled back",
                step=number,
                tripped=last.tripped if last else (),
            )
        ended = self._finish(rollout, "failed" if error is not None else "rolled_back", outcome)
        if ended.status in ("failed", "rolled_back"):
            self._rolled_back(ended, actor=rollout.actor)
        return _ended(ended)


def _state(rollout: Rollout, index: int, *, holds: int = 0) -> dict[str, Any]:
    """What the workflow passes between states: small, and all the next state needs."""
    return {
        "model_name": rollout.model_name,
        "rollout_id": rollout.rollout_id,
        "step": index,
        "holds": holds,
        "wait_seconds": rollout.progress[index].wait_seconds,
    }


def _ended(rollout: Rollout) -> dict[str, Any]:
    """The end state; ``error`` and ``cause`` feed the workflow's Fail state."""
    return {
        "model_name": rollout.model_name,
        "rollout_id": rollout.rollout_id,
        "status": rollout.status,
        "error": ERROR_NAMES.get(rollout.status),
        "cause": rollout.outcome.message if rollout.outcome else "",
    }


def _cause(cause: Any) -> str:
    """A Catch's Cause: a Lambda's error payload (JSON) as its message, anything else as text."""
    text = str(cause or "")
    try:
        payload = json.loads(text)
    except ValueError:
        return text[:500]
    message = payload.get("errorMessage") if isinstance(payload, dict) else None
    return str(message if message is not None else text)[:500]


def _before(totals: dict[int, VariantTotals], production: int, candidate: int) -> dict[str, VariantTotals]:
    return {"candidate_before": totals[candidate], "production_before": totals[production]}
