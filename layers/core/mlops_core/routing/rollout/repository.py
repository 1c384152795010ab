"""Where rollouts live: one record per rollout (``MODEL#{name} / ROLLOUT#{id}``) and the
marker of the one in progress (``MODEL#{name} / ROLLOUT``), in the model's partition.

The marker makes "one rollout at a time" a condition, not a read: a start puts it only
if it names no rollout, in the transaction that creates the record; the end of a rollout
removes the name, in the transaction that records how it ended. (Nothing deletes: the
item stays, without a ``rollout_id``.)
"""

from __future__ import annotations

from typing import Any

from mlops_core.routing.rollout.entities import Rollout
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable

Operation = dict[str, Any]


class RolloutRepository:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    def get(self, name: str, rollout_id: str) -> Rollout | None:
        item = self.table.get(keys.model_pk(name), keys.rollout_sk(rollout_id), consistent=True)
        return None if item is None else _rollout(item)

    def recent(self, name: str, *, limit: int) -> list[Rollout]:
        """Newest first (ids begin with their start time)."""
        items = self.table.query(
            keys.model_pk(name), sk_prefix=keys.ROLLOUT_PREFIX, newest_first=True, limit=limit
        )
        return [_rollout(item) for item in items]

    def active(self, name: str) -> str | None:
        """The id of the rollout in progress, if any."""
        item = self.table.get(keys.model_pk(name), keys.ROLLOUT_SK, consistent=True)
        return None if item is None else item.get("rollout_id")

    def start_ops(self, rollout: Rollout) -> list[Operation]:
        """The marker (only if no rollout runs) and the new record."""
        marker = self.table.put_op(
            {
                keys.PARTITION_KEY: keys.model_pk(rollout.model_name),
                keys.SORT_KEY: keys.ROLLOUT_SK,
                "rollout_id": rollout.rollout_id,
                "started_at": rollout.created_at,
            },
            condition="attribute_not_exists(rollout_id)",
        )
        record = self.table.put_op(_item(rollout), condition="attribute_not_exists(pk)")
        return [marker, record]

    def save_op(self, rollout: Rollout, *, expected_revision: int) -> Operation:
        """Put ``rollout`` if its record is still at ``expected_revision``."""
        return self.table.put_op(
            _item(rollout), condition="revision = :rev", values={":rev": expected_revision}
        )

    def release_op(self, name: str, rollout_id: str) -> Operation:
        """Take ``rollout_id`` off the marker (only if it is the one named there)."""
        return self.table.update_op(
            keys.model_pk(name),
            keys.ROLLOUT_SK,
            update="REMOVE rollout_id",
            condition="rollout_id = :id",
            values={":id": rollout_id},
        )

    def transact(self, operations: list[Operation]) -> None:
        self.table.transact(operations)


def _item(rollout: Rollout) -> dict[str, Any]:
    return {
        keys.PARTITION_KEY: keys.model_pk(rollout.model_name),
        keys.SORT_KEY: keys.rollout_sk(rollout.rollout_id),
        **rollout.model_dump(mode="json"),
    }


def _rollout(item: dict[str, Any]) -> Rollout:
    return Rollout.model_validate({k: v for k, v in item.items() if k not in keys.KEY_ATTRIBUTES})
