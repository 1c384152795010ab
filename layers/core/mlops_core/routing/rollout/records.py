"""What every rollout use case shares: its record (read, saved under its revision, ended
with the marker's release in one transaction), the variants' totals, routing everything
back to production, and the events.

``RolloutService`` (the API's use cases) and ``RolloutSteps`` (the workflow's) build on it.
"""

from __future__ import annotations

import logging
from typing import Any

from mlops_core.clock import now_iso
from mlops_core.errors import Conflict, NotFound, Unavailable
from mlops_core.events import DomainEvent
from mlops_core.registry.entities import PRODUCTION
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.policy import SinglePolicy
from mlops_core.routing.rollout.entities import ENDED, Outcome, Rollout, RolloutNotRunning, RolloutStatus
from mlops_core.routing.rollout.events import RolloutRolledBack
from mlops_core.routing.rollout.repository import RolloutRepository
from mlops_core.routing.service import RoutingService
from mlops_core.routing.state import VariantTotals
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher

LOGGER = logging.getLogger(__name__)
SINGLE_PRODUCTION = SinglePolicy(alias=PRODUCTION)
#: How often a routing change that lost a race is read again and retried.
ATTEMPTS = 3
#: The workflow's error name for each way a rollout can end without promotion.
ERROR_NAMES: dict[str, str] = {
    "rolled_back": "RolloutRolledBack",
    "failed": "RolloutFailed",
    "aborted": "RolloutAborted",
}


class RolloutRecords:
    def __init__(
        self, table: MetadataTable, *, registry: ModelRegistry, publisher: EventPublisher | None = None
    ) -> None:
        self.registry = registry
        self.routing = RoutingService(table, registry=registry, publisher=publisher)
        self.repository = RolloutRepository(table)
        self.publisher = publisher

    def get(self, name: str, rollout_id: str) -> Rollout:
        found = self.repository.get(name, rollout_id)
        if found is None:
            self.registry.get_model(name)  # 404 naming the model if that is what is missing
            raise NotFound(f"model '{name}' has no rollout '{rollout_id}'")
        return found

    def _running(self, name: str, rollout_id: str) -> Rollout:
        rollout = self.get(name, rollout_id)
        if rollout.status != "running":
            raise RolloutNotRunning(f"rollout {rollout_id} is {rollout.status}")
        return rollout

    def _totals(self, name: str, *versions: int) -> dict[int, VariantTotals]:
        found = {t.version: t for t in self.routing.repository.variants(name)}
        return {v: found.get(v) or VariantTotals(version=v) for v in versions}

    def _save(self, rollout: Rollout, **changes: Any) -> Rollout:
        """The record with ``changes``, if no one changed it since ``rollout`` was read."""
        saved = rollout.model_copy(
            update=changes | {"revision": rollout.revision + 1, "updated_at": now_iso()}
        )
        try:
            self.repository.transact([self.repository.save_op(saved, expected_revision=rollout.revision)])
        except Conflict as error:
            latest = self.get(rollout.model_name, rollout.rollout_id)
            if latest.status in ENDED:
                raise RolloutNotRunning(f"rollout {rollout.rollout_id} is {latest.status}") from error
            raise
        return saved

    def _finish(self, rollout: Rollout, status: RolloutStatus, outcome: Outcome) -> Rollout:
        """End the rollout and release the marker, in one transaction; the record as it is
        if something else (another step, an abort) ended it first."""
        at = now_iso()
        ended = rollout.model_copy(
            update={
                "status": status,
                "outcome": outcome,
                "ended_at": at,
                "updated_at": at,
                "revision": rollout.revision + 1,
            }
        )
        save = self.repository.save_op(ended, expected_revision=rollout.revision)
        try:
            self.repository.transact(
                [save, self.repository.release_op(rollout.model_name, rollout.rollout_id)]
            )
        except Conflict as error:
            if error.cancellation_reasons[:1] == [None]:  # only the marker failed: it names another
                self.repository.transact([save])
                return ended
            latest = self.get(rollout.model_name, rollout.rollout_id)
            if latest.status in ENDED:
                return latest
            raise
        return ended

    def _route_to_production(self, rollout: Rollout, reason: str, *, actor: str | None = None) -> None:
        """``single`` on the production alias, whatever the policy is (retried on a race)."""
        name = rollout.model_name
        for attempt in range(ATTEMPTS):
            current = self.routing.repository.routing(name, consistent=True)
            if current is not None and current.policy == SINGLE_PRODUCTION:
                return
            try:
                self.routing.set_policy(
                    name, SINGLE_PRODUCTION.model_dump(), actor=actor or rollout.actor, reason=reason
                )
                return
            except Conflict:
                if attempt == ATTEMPTS - 1:
                    raise

    def _rolled_back(self, rollout: Rollout, *, actor: str | None) -> None:
        outcome = rollout.outcome
        if outcome is None or outcome.cause == "promoted":
            return
        step = rollout.progress[outcome.step - 1] if outcome.step else None
        self._announce(
            RolloutRolledBack(
                model_name=rollout.model_name,
                rollout_id=rollout.rollout_id,
                candidate_version=rollout.candidate_version,
                production_version=rollout.production_version,
                cause=outcome.cause,
                step=outcome.step,
                percent=step.percent if step else None,
                tripped=[t.model_dump(mode="json") for t in outcome.tripped],
                message=outcome.message,
                actor=actor,
            )
        )

    def _announce(self, event: DomainEvent) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.publish(event)
        except Unavailable as error:
            LOGGER.warning("event %s not published: %s", event.detail_type(), error.message)
