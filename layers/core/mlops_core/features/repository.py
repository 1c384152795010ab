"""Feature views and their materialization bookkeeping as metadata-table items.

All in the view's partition (``FEATURE_VIEW#{view}``, keys in ``mlops_core.storage.keys``):
``VIEW`` (the definition in force; listed through the index under ``FEATURE_VIEWS``),
``VERSION#000003`` (every version applied), ``STATE`` (the materializer's watermark and
freshness histogram), ``LEASE`` (the one writer of the view's online rows at a time),
``SOURCE#{object key}`` (source objects already read, with their ETag) and
``MATERIALIZATION#{run}`` (run records; run ids sort by time).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_core.errors import Conflict
from mlops_core.features.entities import MaterializationRecord, StoredFeatureView, ViewState
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ListedObject


@dataclass(frozen=True)
class SourceMark:
    """A source object read by a run: its ETag then, and the earliest event time it held after
    that run's end (such rows are read again once their time has come)."""

    key: str
    etag: str
    rows: int
    read_at_ms: int
    pending_after_ms: int | None = None


def object_due(listed: ListedObject, mark: SourceMark | None, end_ms: int) -> bool:
    """Whether a run ending at ``end_ms`` reads ``listed`` (the watermark): never read, changed
    since (ETag), or holding rows dated after an earlier run's end that are now due."""
    if mark is None or mark.etag != listed.etag:
        return True
    return mark.pending_after_ms is not None and mark.pending_after_ms <= end_ms


class FeatureViewRepository:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    # ---- definitions ------------------------------------------------------------------------
    def get(self, view: str, *, consistent: bool = False) -> StoredFeatureView | None:
        item = self.table.get(keys.feature_view_pk(view), keys.FEATURE_VIEW_SK, consistent=consistent)
        return StoredFeatureView.model_validate(item) if item else None

    def list_views(self) -> list[StoredFeatureView]:
        return [
            StoredFeatureView.model_validate(item)
            for item in self.table.query(keys.FEATURE_VIEWS, index=keys.LIST_INDEX)
        ]

    def versions(self, view: str) -> list[StoredFeatureView]:
        return [
            StoredFeatureView.model_validate(item)
            for item in self.table.query(
                keys.feature_view_pk(view), sk_prefix=keys.VERSION_PREFIX, newest_first=True
            )
        ]

    def save(self, stored: StoredFeatureView, *, previous_version: int | None) -> None:
        """The new version and the view's current definition in one transaction, on condition
        that the view is still at ``previous_version`` (``Conflict`` otherwise)."""
        name = stored.definition.name
        body = stored.model_dump(mode="json")
        current = {
            keys.PARTITION_KEY: keys.feature_view_pk(name),
            keys.SORT_KEY: keys.FEATURE_VIEW_SK,
            keys.LIST_INDEX_PARTITION_KEY: keys.FEATURE_VIEWS,
            keys.LIST_INDEX_SORT_KEY: name,
            **body,
        }
        version = {
            keys.PARTITION_KEY: keys.feature_view_pk(name),
            keys.SORT_KEY: keys.version_sk(stored.version),
            **body,
        }
        if previous_version is None:
            guard: dict[str, Any] = {
                "condition": "attribute_not_exists(#pk)",
                "names": {"#pk": keys.PARTITION_KEY},
            }
        else:
            guard = {"condition": "#v = :v", "names": {"#v": "version"}, "values": {":v": previous_version}}
        self.table.transact(
            [
                self.table.put_op(current, **guard),
                self.table.put_op(
                    version, condition="attribute_not_exists(#pk)", names={"#pk": keys.PARTITION_KEY}
                ),
            ]
        )

    # ---- the materializer's state -----------------------------------------------------------
    def state(self, view: str) -> ViewState:
        item = self.table.get(keys.feature_view_pk(view), keys.FEATURE_STATE_SK, consistent=True)
        return ViewState.model_validate(item) if item else ViewState()

    def save_state(self, view: str, state: ViewState) -> None:
        self.table.put(
            {
                keys.PARTITION_KEY: keys.feature_view_pk(view),
                keys.SORT_KEY: keys.FEATURE_STATE_SK,
                **state.model_dump(mode="json"),
            }
        )

    def acquire_lease(self, view: str, run_id: str, *, now_ms: int, seconds: int) -> None:
        """Become the view's only writer until ``now_ms + seconds`` (``Conflict`` naming the
        holder while another run holds an unexpired lease)."""
        try:
            self.table.put(
                {
                    keys.PARTITION_KEY: keys.feature_view_pk(view),
                    keys.SORT_KEY: keys.FEATURE_LEASE_SK,
                    "run_id": run_id,
                    "expires_at_ms": now_ms + seconds * 1000,
                },
                condition="attribute_not_exists(#pk) OR #e < :now OR #r = :run",
                names={"#pk": keys.PARTITION_KEY, "#e": "expires_at_ms", "#r": "run_id"},
                values={":now": now_ms, ":run": run_id},
            )
        except Conflict:
            held = self.table.get(keys.feature_view_pk(view), keys.FEATURE_LEASE_SK, consistent=True) or {}
            raise Conflict(
                f"feature view {view}: another materialization is running ({held.get('run_id', 'unknown')})",
                current={"run_id": held.get("run_id"), "lease_expires_at_ms": held.get("expires_at_ms")},
                retry_after_seconds=30,
            ) from None

    def release_lease(self, view: str, run_id: str) -> None:
        try:
            self.table.update(
                keys.feature_view_pk(view),
                keys.FEATURE_LEASE_SK,
                update="SET #e = :zero",
                condition="#r = :run",
                names={"#e": "expires_at_ms", "#r": "run_id"},
                values={":zero": 0, ":run": run_id},
            )
        except Conflict:  # taken over after it expired: nothing of ours to release
            return

    def sources(self, view: str) -> dict[str, SourceMark]:
        marks = {}
        for item in self.table.query(keys.feature_view_pk(view), sk_prefix=keys.FEATURE_SOURCE_PREFIX):
            mark = _source_mark(item)
            marks[mark.key] = mark
        return marks

    def source(self, view: str, object_key: str) -> SourceMark | None:
        """One object's mark (a partition of a run reads only its own)."""
        item = self.table.get(keys.feature_view_pk(view), keys.feature_source_sk(object_key), consistent=True)
        return _source_mark(item) if item else None

    def mark_sources(self, view: str, marks: Sequence[SourceMark]) -> None:
        self.table.batch_put(
            [
                {
                    keys.PARTITION_KEY: keys.feature_view_pk(view),
                    keys.SORT_KEY: keys.feature_source_sk(mark.key),
                    "key": mark.key,
                    "etag": mark.etag,
                    "rows": mark.rows,
                    "read_at_ms": mark.read_at_ms,
                    **(
                        {"pending_after_ms": mark.pending_after_ms}
                        if mark.pending_after_ms is not None
                        else {}
                    ),
                }
                for mark in marks
            ]
        )

    # ---- run records ------------------------------------------------------------------------
    def put_record(self, record: MaterializationRecord, *, new: bool = False) -> None:
        item = {
            keys.PARTITION_KEY: keys.feature_view_pk(record.view),
            keys.SORT_KEY: keys.materialization_sk(record.run_id),
            **record.model_dump(mode="json", exclude_none=True),
        }
        if new:
            self.table.put(item, condition="attribute_not_exists(#pk)", names={"#pk": keys.PARTITION_KEY})
        else:
            self.table.put(item)

    def claim_record(self, view: str, run_id: str, *, started_at: str) -> bool:
        """requested -> running, once (a redelivered request finds it claimed: False)."""
        try:
            self.table.update(
                keys.feature_view_pk(view),
                keys.materialization_sk(run_id),
                update="SET #s = :running, #a = :at",
                condition="#s = :requested",
                names={"#s": "status", "#a": "started_at"},
                values={":running": "running", ":requested": "requested", ":at": started_at},
            )
        except Conflict:
            return False
        return True

    def record(self, view: str, run_id: str) -> MaterializationRecord | None:
        item = self.table.get(keys.feature_view_pk(view), keys.materialization_sk(run_id), consistent=True)
        return MaterializationRecord.model_validate(item) if item else None

    def records(self, view: str, *, limit: int = 20) -> list[MaterializationRecord]:
        return [
            MaterializationRecord.model_validate(item)
            for item in self.table.query(
                keys.feature_view_pk(view),
                sk_prefix=keys.MATERIALIZATION_PREFIX,
                newest_first=True,
                limit=limit,
            )
        ]


def _source_mark(item: Mapping[str, Any]) -> SourceMark:
    return SourceMark(
        key=str(item["key"]),
        etag=str(item["etag"]),
        rows=int(item["rows"]),
        read_at_ms=int(item["read_at_ms"]),
        pending_after_ms=item.get("pending_after_ms"),
    )
