"""Materialization's decisions, with no AWS in them: which row of each entity is the latest
in a window, whether it is newer than what the online store holds, the items written, and
the freshness histogram.

Ordering of two rows of one entity: by event time, then by created time (a row without one
is older than a row with one), then by where it was read (a later object key, a later line
wins): the order is total, so the same source always gives the same winners.

Newest wins against the store: a row is written when nothing is stored for its entity, or
when it is newer by that order's first two keys; at equal times it is written only if its
values (or the view version that shaped them) differ, so a second run over the same data
writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_core.features.entities import FeatureViewDefinition, ViewState
from mlops_core.storage import keys

if TYPE_CHECKING:  # sources import numpy: kept off the lookup function's cold path
    from mlops_core.features.sources import ParsedObject

#: Histogram buckets per TTL (the expired share is exact to within one bucket's rows).
BUCKETS_PER_TTL = 100


@dataclass(frozen=True)
class Candidate:
    """The latest row of one entity in this run."""

    entity_id: str
    event_ms: int
    created_ms: int | None
    values: dict[str, Any]

    @property
    def rank(self) -> tuple[int, int]:
        return (self.event_ms, -1 if self.created_ms is None else self.created_ms)


@dataclass
class WindowCounts:
    rows: int = 0
    outside_window: int = 0
    superseded: int = 0
    #: The earliest event time after the window's end (such rows are read again later).
    next_after_end_ms: int | None = None


def latest_per_entity(
    objects: Iterable[ParsedObject], *, start_ms: int | None, end_ms: int
) -> tuple[dict[str, Candidate], WindowCounts]:
    """The latest row of each entity with ``start_ms <= event time <= end_ms``."""
    best: dict[str, tuple[tuple[int, int], ParsedObject, int]] = {}
    counts = WindowCounts()
    lower = start_ms if start_ms is not None else -(2**62)
    for parsed in sorted(objects, key=lambda p: p.key):
        created = parsed.created_ms
        for index, (entity, event) in enumerate(zip(parsed.entity_ids, parsed.event_ms, strict=True)):
            counts.rows += 1
            if event > end_ms:
                counts.outside_window += 1
                if counts.next_after_end_ms is None or event < counts.next_after_end_ms:
                    counts.next_after_end_ms = event
                continue
            if event < lower:
                counts.outside_window += 1
                continue
            c = created[index]
            rank = (event, -1 if c is None else c)
            held = best.get(entity)
            if held is not None:
                counts.superseded += 1
                if rank < held[0]:
                    continue
            best[entity] = (rank, parsed, index)
    candidates = {}
    for entity, (_, parsed, index) in best.items():
        candidates[entity] = Candidate(
            entity_id=entity,
            event_ms=parsed.event_ms[index],
            created_ms=parsed.created_ms[index],
            values={name: column[index] for name, column in parsed.values.items()},
        )
    return candidates, counts


def encode_values(values: Mapping[str, Any]) -> str:
    """The stored form of a row's values: one compact JSON object (keys in the view's order)."""
    return json.dumps(values, separators=(",", ":"), allow_nan=False)


def needs_write(
    candidate: Candidate, stored: Mapping[str, Any] | None, view_version: int, encoded: str
) -> bool:
    """Newest wins: write when nothing is stored, when the candidate is newer, or when it is as
    new but its values or view version differ."""
    if stored is None:
        return True
    stored_rank = (
        int(stored.get(keys.FEATURE_EVENT_TIME, -1)),
        int(stored[keys.FEATURE_CREATED_TIME]) if keys.FEATURE_CREATED_TIME in stored else -1,
    )
    if candidate.rank != stored_rank:
        return candidate.rank > stored_rank
    return stored.get(keys.FEATURE_VALUES) != encoded or stored.get(keys.FEATURE_VIEW_VERSION) != view_version


def online_item(
    view: FeatureViewDefinition, view_version: int, candidate: Candidate, encoded: str, now_ms: int
) -> dict[str, Any]:
    item: dict[str, Any] = {
        keys.FEATURE_KEY: keys.feature_item_key(view.name, candidate.entity_id),
        keys.FEATURE_EVENT_TIME: candidate.event_ms,
        keys.FEATURE_VIEW_VERSION: view_version,
        keys.FEATURE_VALUES: encoded,
        keys.FEATURE_WRITTEN_AT: now_ms,
        # DynamoDB's TTL (Unix seconds): the row is stale from then, and deleted within ~2 days.
        keys.EXPIRES_AT: (candidate.event_ms // 1000) + view.ttl,
    }
    if candidate.created_ms is not None:
        item[keys.FEATURE_CREATED_TIME] = candidate.created_ms
    return item


#: The condition of a conditional write (the race fallback): nothing stored, or the stored row
#: is not newer (at equal times the row being written wins, as ``needs_write`` decided).
NEWER_THAN_STORED = (
    "attribute_not_exists(#k) OR #t < :t OR (#t = :t AND (attribute_not_exists(#c) OR #c <= :c))"
)


def newer_condition(item: Mapping[str, Any]) -> tuple[str, dict[str, str], dict[str, Any]]:
    """``NEWER_THAN_STORED`` with its names and values for ``item`` (a row without a created
    time compares as created at -1, as in ``needs_write``)."""
    names = {"#k": keys.FEATURE_KEY, "#t": keys.FEATURE_EVENT_TIME, "#c": keys.FEATURE_CREATED_TIME}
    values = {":t": item[keys.FEATURE_EVENT_TIME], ":c": item.get(keys.FEATURE_CREATED_TIME, -1)}
    return NEWER_THAN_STORED, names, values


def bucket_width_ms(view: FeatureViewDefinition) -> int:
    return max(60_000, view.ttl * 1000 // BUCKETS_PER_TTL)


class Histogram:
    """Stored entities by event-time bucket, updated as rows are replaced (``ViewState.histogram``)."""

    def __init__(self, counts: Mapping[str, int], width_ms: int) -> None:
        self.width_ms = width_ms
        self.counts: dict[int, int] = {int(k): int(v) for k, v in counts.items() if int(v) > 0}

    def _bucket(self, event_ms: int) -> int:
        return event_ms - event_ms % self.width_ms

    def add(self, event_ms: int) -> None:
        bucket = self._bucket(event_ms)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1

    def remove(self, event_ms: int) -> None:
        bucket = self._bucket(event_ms)
        left = self.counts.get(bucket, 0) - 1
        if left > 0:
            self.counts[bucket] = left
        else:
            self.counts.pop(bucket, None)

    def apply(self, delta: Mapping[str, int]) -> None:
        """Add a partition's changes (bucket start as text -> rows added less rows replaced)."""
        for start, change in delta.items():
            bucket = self._bucket(int(start))
            left = self.counts.get(bucket, 0) + int(change)
            if left > 0:
                self.counts[bucket] = left
            else:
                self.counts.pop(bucket, None)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def older_than(self, cutoff_ms: int) -> int:
        """Entities whose event time is before ``cutoff_ms`` (whole buckets ending by then)."""
        return sum(n for start, n in self.counts.items() if start + self.width_ms <= cutoff_ms)

    def compact(self, cutoff_ms: int) -> None:
        """Fold the buckets wholly before ``cutoff_ms`` (expired) into one: the item stays small."""
        old = [start for start in self.counts if start + self.width_ms <= cutoff_ms]
        if len(old) > 1:
            folded = sum(self.counts.pop(start) for start in old)
            first = min(old)
            self.counts[first] = folded

    def as_state(self) -> dict[str, int]:
        return {str(k): v for k, v in sorted(self.counts.items())}


def histogram_of(state: ViewState, view: FeatureViewDefinition) -> Histogram:
    width = bucket_width_ms(view)
    if state.bucket_ms != width:  # the TTL changed: the old buckets cannot be split exactly
        rebucketed = Histogram({}, width)
        for start, count in state.histogram.items():
            bucket = rebucketed._bucket(int(start))
            rebucketed.counts[bucket] = rebucketed.counts.get(bucket, 0) + int(count)
        return rebucketed
    return Histogram(state.histogram, width)
