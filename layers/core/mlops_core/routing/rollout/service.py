"""The rollout use cases of the API: start one, list and read them, abort one.

A start checks everything it can before anything is written (404 unknown model; 422 a
candidate that is unknown, archived or production already, or no production to compare
with; 409 the promotion policy refuses the candidate, or a rollout is running), then
writes the record and the one-rollout-at-a-time marker in one conditional transaction
(409 if another start won), then starts the workflow; if that fails, the rollout is
ended as failed and nothing else was changed.
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any, Protocol

from mlops_core.clock import now_iso
from mlops_core.errors import Conflict, Invalid, MlopsError, NotFound, Unavailable, detail
from mlops_core.registry import policy as promotion_policy
from mlops_core.registry.entities import PRODUCTION, ModelVersion
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.rollout.entities import Outcome, Rollout, RolloutRequest
from mlops_core.routing.rollout.events import RolloutStarted
from mlops_core.routing.rollout.records import RolloutRecords
from mlops_core.routing.state import StoredRouting
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher

LOGGER = logging.getLogger(__name__)


class Workflow(Protocol):
    """The rollout workflow's executions (``mlops_core.storage.stepfunctions.RolloutWorkflow``)."""

    def execution_arn(self, rollout_id: str) -> str: ...
    def start(self, rollout_id: str, execution_input: dict[str, Any]) -> str: ...
    def stop(self, rollout_id: str, *, cause: str) -> None: ...


def new_rollout_id(now: float | None = None) -> str:
    """``rollout-20261201T120000Z-1a2b3c4d``: sorts by start time, unique per model and second."""
    return f"rollout-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{secrets.token_hex(4)}"


class RolloutService(RolloutRecords):
    def __init__(
        self,
        table: MetadataTable,
        *,
        registry: ModelRegistry,
        publisher: EventPublisher | None = None,
        workflow: Workflow | None = None,
    ) -> None:
        super().__init__(table, registry=registry, publisher=publisher)
        self.workflow = workflow

    def recent(self, name: str, *, limit: int = 50) -> list[Rollout]:
        """The model's rollouts, newest first."""
        self.registry.get_model(name)
        return self.repository.recent(name, limit=limit)

    def start(self, name: str, request: RolloutRequest, *, actor: str | None = None) -> Rollout:
        model = self.registry.get_model(name)
        try:
            production = self.registry.get_alias(name, PRODUCTION, consistent=True)
        except NotFound:
            raise Invalid(
                f"model '{name}' has no production version to roll out against; promote one first",
                details=[detail(["path", "name"], "the model has no production alias", "no_production")],
            ) from None
        candidate = self._candidate(name, request.candidate_version, production.version)
        promotion_policy.enforce(name, model.policy, candidate)  # a 409 now, not at the last step
        running = self.repository.active(name)
        if running is not None:
            raise Conflict(
                f"rollout {running} of model '{name}' is running; wait for it or abort it",
                current={"rollout_id": running},
            )
        routing = self.routing.repository.routing(name, consistent=True) or StoredRouting(model_name=name)
        rollout_id, at = new_rollout_id(), now_iso()
        rollout = Rollout(
            rollout_id=rollout_id,
            model_name=name,
            candidate_version=candidate.version,
            production_version=production.version,
            production_alias_revision=production.revision,
            steps=request.steps,
            bake_seconds=request.bake_seconds,
            guardrails=request.guardrails,
            reason=request.reason,
            actor=actor,
            created_at=at,
            updated_at=at,
            routing_revision=routing.revision,
            previous_routing=routing.policy.model_dump(mode="json"),
            production_before=self._totals(name, production.version)[production.version],
            execution_arn=self.workflow.execution_arn(rollout_id) if self.workflow else None,
        )
        try:
            self.repository.transact(self.repository.start_ops(rollout))
        except Conflict as error:
            running = self.repository.active(name)
            raise Conflict(
                f"rollout {running} of model '{name}' started at the same time; wait for it or abort it",
                current={"rollout_id": running},
            ) from error
        if self.workflow is not None:
            try:
                self.workflow.start(rollout_id, {"model_name": name, "rollout_id": rollout_id, "step": 0})
            except MlopsError as error:
                outcome = Outcome(cause="error", at=now_iso(), message=f"not started: {error.message}")
                self._finish(rollout, "failed", outcome)
                raise Unavailable("the rollout workflow did not start; nothing was changed, retry") from error
        self._announce(
            RolloutStarted(
                model_name=name,
                rollout_id=rollout_id,
                candidate_version=candidate.version,
                production_version=production.version,
                steps=list(request.steps),
                bake_seconds=request.bake_seconds,
                actor=actor,
                reason=request.reason,
            )
        )
        return rollout

    def abort(self, name: str, rollout_id: str, *, actor: str | None = None, reason: str = "") -> Rollout:
        """Stop a running rollout: its execution, then all traffic back on production."""
        rollout = self.get(name, rollout_id)
        if rollout.status != "running":
            raise Conflict(
                f"rollout {rollout_id} is {rollout.status}: only a running rollout can be aborted",
                current={"status": rollout.status},
            )
        why = f"rollout {rollout_id} aborted" + (f": {reason}" if reason else "")
        if self.workflow is not None:
            try:
                self.workflow.stop(rollout_id, cause=why)
            except (NotFound, Unavailable) as error:  # its steps check the record anyway
                LOGGER.warning("execution of %s not stopped: %s", rollout_id, error.message)
        self._route_to_production(rollout, why, actor=actor)
        step = rollout.current_step
        outcome = Outcome(cause="aborted", at=now_iso(), message=why, step=step.index + 1 if step else None)
        ended = self._finish(rollout, "aborted", outcome)
        if ended.status != "aborted":
            raise Conflict(
                f"rollout {rollout_id} ended ({ended.status}) while it was being aborted",
                current={"status": ended.status},
            )
        self._rolled_back(ended, actor=actor)
        return ended

    def _candidate(self, name: str, version: int, production: int) -> ModelVersion:
        where: list[str | int] = ["body", "candidate_version"]
        try:
            candidate = self.registry.get_version(name, version)
        except NotFound:
            message = f"model '{name}' has no version {version}"
            raise Invalid(message, details=[detail(where, message, "unknown_version")]) from None
        if candidate.stage == "Archived":
            message = f"version {version} is archived and cannot serve"
            raise Invalid(message, details=[detail(where, message, "archived_version")])
        if version == production:
            message = f"version {version} is production already"
            raise Invalid(message, details=[detail(where, message, "already_production")])
        return candidate
