"""Where monitoring lives in the metadata table: each model's ``MONITORING`` item (its
configuration, and when the scheduled dispatcher last started a run of it; listed under the
``MONITORED`` partition of the list index) and its drift runs (``DRIFT#{started_at}#{run_id}``,
in time order). Keys come from ``mlops_core.storage.keys``."""

from __future__ import annotations

from typing import Any

from mlops_core.errors import Conflict
from mlops_core.monitoring.config import MonitoringConfig
from mlops_core.monitoring.records import DriftRunSummary, StoredMonitoring, run_started_at
from mlops_core.storage import keys
from mlops_core.storage.dynamo import Item, MetadataTable


class MonitoringRepository:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    # ---- configuration ------------------------------------------------------------------
    def monitoring(self, name: str, *, consistent: bool = False) -> StoredMonitoring | None:
        item = self.table.get(keys.model_pk(name), keys.MONITORING_SK, consistent=consistent)
        return None if item is None else StoredMonitoring.model_validate(_fields(item))

    def monitored(self) -> list[StoredMonitoring]:
        """Every model with a stored configuration (enabled or not), by name."""
        return [
            StoredMonitoring.model_validate(_fields(item))
            for item in self.table.query(keys.MONITORED_MODELS, index=keys.LIST_INDEX)
        ]

    def save_config(
        self,
        name: str,
        config: MonitoringConfig,
        *,
        revision: int,
        at: str,
        actor: str | None,
        expected_revision: int,
    ) -> None:
        """Write the configuration if it is still at ``expected_revision`` (0: never set),
        keeping the dispatcher's ``last_run_at`` (``Conflict`` otherwise)."""
        condition = "attribute_not_exists(pk)" if expected_revision == 0 else "revision = :expected"
        values: dict[str, Any] = {
            ":name": name,
            ":config": config.model_dump(mode="json"),
            ":revision": revision,
            ":at": at,
            ":actor": actor,
            ":gsi1pk": keys.MONITORED_MODELS,
        }
        if expected_revision:
            values[":expected"] = expected_revision
        self.table.update(
            keys.model_pk(name),
            keys.MONITORING_SK,
            update="SET model_name = :name, config = :config, revision = :revision, updated_at = :at, "
            "actor = :actor, #gpk = :gsi1pk, #gsk = :name",
            condition=condition,
            names={"#gpk": keys.LIST_INDEX_PARTITION_KEY, "#gsk": keys.LIST_INDEX_SORT_KEY},
            values=values,
        )

    def claim_scheduled_run(self, stored: StoredMonitoring, *, at: str, run_id: str) -> bool:
        """Move the model's ``last_run_at`` from what ``stored`` read to ``at``; False when
        another dispatcher (an overlapping or redelivered tick) moved it first."""
        if stored.last_run_at is None:
            condition, values = "attribute_not_exists(last_run_at)", {}
        else:
            condition, values = "last_run_at = :previous", {":previous": stored.last_run_at}
        try:
            self.table.update(
                keys.model_pk(stored.model_name),
                keys.MONITORING_SK,
                update="SET last_run_at = :at, last_run_id = :run",
                condition=f"attribute_exists(pk) AND ({condition})",
                values={**values, ":at": at, ":run": run_id},
            )
        except Conflict:
            return False
        return True

    # ---- runs ---------------------------------------------------------------------------
    def start_run(self, summary: DriftRunSummary) -> None:
        """The run's ``running`` item (``Conflict`` if the id was used: never overwritten)."""
        self.table.put(_run_item(summary), condition="attribute_not_exists(pk)")

    def finish_run(self, summary: DriftRunSummary) -> None:
        """The run's final summary, if it is still running (``Conflict``: it ended already,
        say by a redelivered invocation that got there first)."""
        self.table.put(
            _run_item(summary),
            condition="attribute_exists(pk) AND #status = :running",
            names={"#status": "status"},
            values={":running": "running"},
        )

    def run(self, name: str, run_id: str, *, consistent: bool = False) -> DriftRunSummary | None:
        started_at = run_started_at(run_id)
        if started_at is None:
            return None
        item = self.table.get(
            keys.model_pk(name), keys.drift_run_sk(started_at, run_id), consistent=consistent
        )
        return None if item is None else DriftRunSummary.model_validate(_fields(item))

    def runs(self, name: str, *, limit: int) -> list[DriftRunSummary]:
        """The model's runs, newest first."""
        items = self.table.query(
            keys.model_pk(name), sk_prefix=keys.DRIFT_RUN_PREFIX, newest_first=True, limit=limit
        )
        return [DriftRunSummary.model_validate(_fields(item)) for item in items]


def _run_item(summary: DriftRunSummary) -> Item:
    return {
        keys.PARTITION_KEY: keys.model_pk(summary.model_name),
        keys.SORT_KEY: keys.drift_run_sk(summary.started_at, summary.run_id),
        **summary.model_dump(mode="json"),
    }


def _fields(item: Item) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in keys.KEY_ATTRIBUTES}
