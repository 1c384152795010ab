"""Online lookups by entity id: what ``GET /features/{view}/{entity_id}`` and ``POST
/features/{view}`` answer.

The view's definition (to type-check the entity id and list its features) is read from the
metadata table at most every ``cache_ttl_seconds`` per container, like the inference
function's aliases; the rows with one GetItem, or one BatchGetItem for up to 100 entities
(``online.OnlineStore``). A warm lookup is one DynamoDB round trip.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from mlops_core.errors import Invalid, NotFound, detail
from mlops_core.features.entities import FeatureViewDefinition, StoredFeatureView, canonical_entity_id, iso_ms
from mlops_core.features.online import MAX_KEYS_PER_READ, OnlineRow, OnlineStore
from mlops_core.features.repository import FeatureViewRepository

MAX_ENTITIES_PER_CALL = MAX_KEYS_PER_READ


class FeatureRow(BaseModel):
    """One entity's features as the online store holds them."""

    entity_id: str = Field(description="As the store keys it (an int64 id in its canonical form)")
    found: bool = True
    values: dict[str, Any] | None = Field(default=None, description="Feature name -> value (null: missing)")
    event_time: str | None = Field(default=None, description="The row's event time (ISO 8601, UTC)")
    event_time_ms: int | None = None
    age_seconds: float | None = Field(default=None, description="Now minus the event time")
    stale: bool | None = Field(default=None, description="Older than the view's TTL")
    view_version: int | None = Field(default=None, description="The view version that materialized the row")


class FeatureLookupResult(FeatureRow):
    view: str


class BatchLookupResult(BaseModel):
    view: str
    results: list[FeatureRow] = Field(
        description="One per entity id sent, in order (found: false when absent)"
    )
    found: int
    missing: list[str] = Field(description="Entity ids with no row in the store")


class FeatureLookup:
    def __init__(
        self,
        views: FeatureViewRepository,
        online: OnlineStore,
        *,
        cache_ttl_seconds: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.views = views
        self.online = online
        self.cache_ttl_seconds = cache_ttl_seconds
        self.clock = clock
        self._cache: dict[str, tuple[float, StoredFeatureView | None]] = {}
        self._lock = threading.Lock()

    def view(self, name: str) -> FeatureViewDefinition:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(name)
        if cached is None or now - cached[0] > self.cache_ttl_seconds:
            found = self.views.get(name)
            with self._lock:
                self._cache[name] = (now, found)
            cached = (now, found)
        if cached[1] is None:
            raise NotFound(f"feature view {name} not found")
        return cached[1].definition

    def entity_id(self, view: FeatureViewDefinition, raw: str, loc: list[str | int]) -> str:
        canonical = canonical_entity_id(raw, view.entity.type)
        if canonical is None:
            raise Invalid(
                f"entity id {raw[:64]!r} is not a valid {view.entity.name} ({view.entity.type})",
                details=[detail(loc, f"not a valid {view.entity.type} entity id", "entity_id")],
            )
        return canonical

    def get(self, name: str, raw_entity_id: str) -> FeatureLookupResult:
        view = self.view(name)
        entity = self.entity_id(view, raw_entity_id, ["path", "entity_id"])
        row = self.online.read(name, entity)
        if row is None:
            raise NotFound(f"no features of {view.entity.name} {entity} in view {name}")
        return FeatureLookupResult(view=name, **self._row(row, view).model_dump())

    def batch(self, name: str, raw_entity_ids: Sequence[str]) -> BatchLookupResult:
        view = self.view(name)
        entities = [
            self.entity_id(view, raw, ["body", "entity_ids", i]) for i, raw in enumerate(raw_entity_ids)
        ]
        rows = self.online.read_view(name, entities)
        results = [
            self._row(rows[e], view) if e in rows else FeatureRow(entity_id=e, found=False) for e in entities
        ]
        return BatchLookupResult(
            view=name,
            results=results,
            found=sum(1 for r in results if r.found),
            missing=[r.entity_id for r in results if not r.found],
        )

    def _row(self, row: OnlineRow, view: FeatureViewDefinition) -> FeatureRow:
        now = int(self.clock() * 1000)
        # Features of the view's current definition, in its order (a row written by an older
        # version lacks the new ones: null until it is materialized again).
        values = {name: row.values.get(name) for name in view.feature_names}
        return FeatureRow(
            entity_id=row.entity_id,
            values=values,
            event_time=iso_ms(row.event_time_ms),
            event_time_ms=row.event_time_ms,
            age_seconds=round(row.age_seconds(now), 3),
            stale=row.is_stale(now),
            view_version=row.view_version,
        )
