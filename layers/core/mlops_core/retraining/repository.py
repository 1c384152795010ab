"""Where the retraining loop reads and writes in the metadata table (keys from ``storage.keys``):

- ``MODEL#{name} / MONITORING`` — the model's monitoring configuration (written by
  ``PUT /models/{name}/monitoring``; its ``config`` map is a ``MonitoringConfig``). Read
  only: no item, or one this version cannot read, is retraining off.
- ``MODEL#{name} / RETRAINING`` — the claim: one event at a time may be starting the
  model's retraining run, and not within the cooldown of the last one started. Every
  change is a conditional update, so two events that arrive together cannot both start.
- ``MODEL#{name} / RETRAIN#{at}#{event}`` — each decision, in time order; its id
  (``entities.decision_id``) carries ``at``, so reading one is a Query of that millisecond.
- ``MODEL#{name} / DRIFT#{started_at}#{run}`` — the drift run an event came from: its
  ``retraining`` attribute is set to the decision (``records.RetrainingLink``), once the run
  has ended (it is never rewritten after that), so the run names what it led to.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from mlops_core.errors import Conflict
from mlops_core.monitoring.config import MonitoringConfig
from mlops_core.monitoring.records import RetrainingLink, run_started_at
from mlops_core.retraining.entities import RetrainClaim, RetrainDecision, decided_at
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable

LOGGER = logging.getLogger(__name__)


class RetrainingRepository:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    # ---- the configuration (read only) ------------------------------------------------------
    def monitoring_config(self, model_name: str) -> MonitoringConfig | None:
        """The model's stored monitoring configuration; None when there is none (or it cannot
        be read: a configuration this code does not understand never switches retraining on)."""
        item = self.table.get(keys.model_pk(model_name), keys.MONITORING_SK, consistent=True)
        config = None if item is None else item.get("config")
        if not isinstance(config, dict):
            return None
        try:
            return MonitoringConfig.model_validate(config)
        except ValidationError as error:
            LOGGER.warning("monitoring configuration of %r unreadable: %s", model_name, error)
            return None

    # ---- the claim ----------------------------------------------------------------------------
    def claim(self, model_name: str) -> RetrainClaim | None:
        item = self.table.get(keys.model_pk(model_name), keys.RETRAINING_SK, consistent=True)
        return None if item is None else RetrainClaim.model_validate(_fields(item))

    def take_claim(
        self,
        model_name: str,
        *,
        event_id: str,
        drift_run_id: str,
        run_id: str,
        now_ms: int,
        cooldown_ms: int,
        stale_ms: int,
    ) -> None:
        """Claim the model's next retraining run for ``event_id`` (``Conflict`` if it cannot).

        Taken when no event is starting a run now (none claimed it, or its claim ended:
        started or released; or it went quiet for ``stale_ms``, a crashed function) and the
        last run started at least ``cooldown_ms`` ago; or again by the same event while it
        has not started its run (a redelivery)."""
        self.table.update(
            keys.model_pk(model_name),
            keys.RETRAINING_SK,
            update="SET model_name = :model, claim_event_id = :event, claim_drift_run_id = :drift, "
            "claim_run_id = :run, claim_at_ms = :now, claim_state = :claimed",
            condition="attribute_not_exists(pk) "
            "OR (claim_event_id = :event AND claim_state <> :started) "
            "OR ((claim_state <> :claimed OR claim_at_ms < :stale) "
            "AND (attribute_not_exists(last_started_at_ms) OR last_started_at_ms <= :cutoff))",
            values={
                ":model": model_name,
                ":event": event_id,
                ":drift": drift_run_id,
                ":run": run_id,
                ":now": now_ms,
                ":claimed": "claimed",
                ":started": "started",
                ":stale": now_ms - stale_ms,
                ":cutoff": now_ms - cooldown_ms,
            },
        )

    def choose_dataset(self, model_name: str, *, event_id: str, dataset_key: str) -> str:
        """Record the dataset version the claim writes; the one recorded first if another
        delivery of the same event chose before (both then write and train on that key)."""
        try:
            self.table.update(
                keys.model_pk(model_name),
                keys.RETRAINING_SK,
                update="SET claim_dataset_key = :key, claim_dataset_event = :event",
                # A key chosen by an earlier claim (another event's) is not this one's.
                condition="claim_event_id = :event AND (attribute_not_exists(claim_dataset_key) "
                "OR claim_dataset_event <> :event)",
                values={":key": dataset_key, ":event": event_id},
            )
        except Conflict:
            claim = self.claim(model_name)
            if claim is None or claim.claim_dataset_event != event_id or claim.claim_dataset_key is None:
                raise
            return claim.claim_dataset_key
        return dataset_key

    def mark_started(
        self, model_name: str, *, event_id: str, drift_run_id: str, run_id: str, dataset_key: str, now_ms: int
    ) -> None:
        """The claim's run started: the cooldown counts from now."""
        self.table.update(
            keys.model_pk(model_name),
            keys.RETRAINING_SK,
            update="SET claim_state = :started, last_run_id = :run, last_started_at_ms = :now, "
            "last_event_id = :event, last_drift_run_id = :drift, last_dataset_key = :key",
            condition="claim_event_id = :event",
            values={
                ":started": "started",
                ":run": run_id,
                ":now": now_ms,
                ":event": event_id,
                ":drift": drift_run_id,
                ":key": dataset_key,
            },
        )

    def release(self, model_name: str, *, event_id: str) -> None:
        """Give the claim up without a run (too few labels, say): the cooldown is unchanged."""
        try:
            self.table.update(
                keys.model_pk(model_name),
                keys.RETRAINING_SK,
                update="SET claim_state = :released",
                condition="claim_event_id = :event AND claim_state = :claimed",
                values={":released": "released", ":event": event_id, ":claimed": "claimed"},
            )
        except Conflict:
            LOGGER.info("claim of %r by %s was not held any more", model_name, event_id)

    # ---- decisions ----------------------------------------------------------------------------
    def record_decision(self, decision: RetrainDecision) -> None:
        self.table.put(
            {
                keys.PARTITION_KEY: keys.model_pk(decision.model_name),
                keys.SORT_KEY: keys.retrain_decision_sk(decision.at, decision.event_id),
                **decision.model_dump(mode="json", exclude_none=True),
            }
        )

    def decisions(self, model_name: str, *, limit: int = 50) -> list[RetrainDecision]:
        """The model's retraining decisions, newest first."""
        items = self.table.query(
            keys.model_pk(model_name), sk_prefix=keys.RETRAIN_DECISION_PREFIX, newest_first=True, limit=limit
        )
        return [RetrainDecision.model_validate(_fields(item)) for item in items]

    def decision(self, model_name: str, decision_id: str) -> RetrainDecision | None:
        """One decision by its id (None if there is none, or the id is not a decision's)."""
        at = decided_at(decision_id)
        if at is None:
            return None
        for item in self.table.query(
            keys.model_pk(model_name), sk_prefix=keys.retrain_decision_sk(at, ""), limit=100
        ):
            found = RetrainDecision.model_validate(_fields(item))
            if found.decision_id == decision_id:
                return found
        return None

    def link_drift_run(self, decision: RetrainDecision) -> bool:
        """Name the decision on the drift run it came from (False: no such run, e.g. an event
        sent by hand, or the run has not recorded its end)."""
        started_at = run_started_at(decision.drift_run_id)
        if started_at is None or not decision.decision_id:
            return False
        link = RetrainingLink(
            decision_id=decision.decision_id,
            outcome=decision.outcome,
            reason=decision.reason,
            run_id=decision.run_id,
            at=decision.at,
        )
        try:
            self.table.update(
                keys.model_pk(decision.model_name),
                keys.drift_run_sk(started_at, decision.drift_run_id),
                update="SET retraining = :link",
                condition="attribute_exists(pk) AND #status <> :running",
                names={"#status": "status"},
                values={":link": link.model_dump(mode="json", exclude_none=True), ":running": "running"},
            )
        except Conflict:
            LOGGER.info(
                "drift run %s of %r not linked: not recorded as ended",
                decision.drift_run_id,
                decision.model_name,
            )
            return False
        return True


def _fields(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in keys.KEY_ATTRIBUTES}
