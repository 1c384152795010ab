"""The online store: one item per (view, entity) in the features table, read by key.

This is the read API the lookup function uses, and the one inference by entity id builds on
(docs/features.md, "The online read API"):

- ``OnlineStore.read_many([(view, entity_id), ...])``: up to ``MAX_KEYS_PER_READ`` (100) keys of
  any views in **one** BatchGetItem round trip (plus retries of what DynamoDB leaves
  unprocessed), through the signed reader (``mlops_core.storage.signed_reads``: no boto3 or
  botocore imported) wherever the environment allows, as on Lambda;
- ``OnlineStore.read(view, entity_id)``: one GetItem;
- each found row is an ``OnlineRow``: values, event time, age, and ``stale`` (past the view's
  TTL, which every item carries as ``expires_at``: no view definition needed to decide).

Entity ids are passed in their canonical text (``sources.canonical_entity_id``: an int64 id
``"007"`` is ``"7"``). The writer side (``stored``, ``write``, ``write_if_newer``) is the
materializer's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_core.errors import Invalid
from mlops_core.storage import keys
from mlops_core.storage.dynamo import KeyedTable

#: One BatchGetItem reads at most 100 keys: one round trip per call of ``read_many``.
MAX_KEYS_PER_READ = 100
#: What the materializer reads of a stored row to decide newest-wins.
_RANK_ATTRIBUTES = (
    keys.FEATURE_EVENT_TIME,
    keys.FEATURE_CREATED_TIME,
    keys.FEATURE_VIEW_VERSION,
    keys.FEATURE_VALUES,
)


@dataclass(frozen=True)
class OnlineRow:
    """One entity's latest materialized row in one view."""

    view: str
    entity_id: str
    values: dict[str, Any]
    event_time_ms: int
    created_time_ms: int | None
    view_version: int
    written_at_ms: int
    #: Unix seconds: the event time plus the view's TTL (DynamoDB's TTL attribute).
    expires_at: int

    def age_seconds(self, now_ms: int) -> float:
        return max(0.0, (now_ms - self.event_time_ms) / 1000)

    def is_stale(self, now_ms: int) -> bool:
        """Past the view's TTL (DynamoDB deletes such items lazily, within about two days)."""
        return now_ms >= self.expires_at * 1000


def row_of(item: Mapping[str, Any]) -> OnlineRow:
    view, _, entity = str(item[keys.FEATURE_KEY]).partition("#")
    created = item.get(keys.FEATURE_CREATED_TIME)
    return OnlineRow(
        view=view,
        entity_id=entity,
        values=json.loads(item[keys.FEATURE_VALUES]),
        event_time_ms=int(item[keys.FEATURE_EVENT_TIME]),
        created_time_ms=None if created is None else int(created),
        view_version=int(item.get(keys.FEATURE_VIEW_VERSION, 0)),
        written_at_ms=int(item.get(keys.FEATURE_WRITTEN_AT, 0)),
        expires_at=int(item.get(keys.EXPIRES_AT, 0)),
    )


class OnlineStore:
    def __init__(self, table: KeyedTable) -> None:
        self.table = table

    # ---- reads (lookup, inference) ----------------------------------------------------------
    def read(self, view: str, entity_id: str) -> OnlineRow | None:
        item = self.table.get(keys.feature_item_key(view, entity_id))
        return row_of(item) if item else None

    def read_many(self, wanted: Sequence[tuple[str, str]]) -> dict[tuple[str, str], OnlineRow]:
        """The rows of up to 100 (view, entity id) pairs in one round trip; absent ones are left out."""
        if len(set(wanted)) > MAX_KEYS_PER_READ:
            raise Invalid(
                f"at most {MAX_KEYS_PER_READ} (view, entity) pairs per read, not {len(set(wanted))}"
            )
        found = self.table.batch_get([keys.feature_item_key(v, e) for v, e in wanted])
        rows = {}
        for view, entity in wanted:
            item = found.get(keys.feature_item_key(view, entity))
            if item is not None:
                rows[(view, entity)] = row_of(item)
        return rows

    def read_view(self, view: str, entity_ids: Sequence[str]) -> dict[str, OnlineRow]:
        return {entity: row for (_, entity), row in self.read_many([(view, e) for e in entity_ids]).items()}

    # ---- the materializer's side ------------------------------------------------------------
    def stored(self, view: str, entity_ids: Sequence[str], *, workers: int) -> dict[str, dict[str, Any]]:
        """What newest-wins compares with: each stored entity's times, version and values."""
        found = self.table.batch_get(
            [keys.feature_item_key(view, e) for e in entity_ids], attributes=_RANK_ATTRIBUTES, workers=workers
        )
        prefix = len(view) + 1
        return {str(k)[prefix:]: item for k, item in found.items()}

    def write(self, items: Sequence[Mapping[str, Any]], *, workers: int) -> None:
        """BatchWriteItem, 25 a call (no conditions: the caller holds the view's writer lease)."""
        self.table.batch_put(items, workers=workers)

    def write_if_newer(
        self, items: Sequence[Mapping[str, Any]], *, workers: int
    ) -> list[tuple[bool, dict[str, Any] | None]]:
        """Conditional puts (the fallback where writers may race), one outcome per item in
        order: written or refused because a newer row was stored meanwhile, and the row a
        written item replaced (None: there was none), so counts of stored rows stay exact."""
        from concurrent.futures import ThreadPoolExecutor

        # The materializer's side: kept off the read path's imports (inference's cold start).
        from mlops_core.features.materialization import newer_condition

        def put(item: Mapping[str, Any]) -> tuple[bool, dict[str, Any] | None]:
            condition, names, values = newer_condition(item)
            return self.table.put_if_replacing(item, condition=condition, names=names, values=values)

        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            return list(pool.map(put, items))
