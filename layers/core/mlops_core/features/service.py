"""The feature store's use cases: apply and read view definitions, materialize, freshness.

Materialization (docs/features.md): one run per view at a time (a lease in the metadata
table, as long as the function's timeout), so its BatchWriteItem calls need no conditions:

1. list the source objects; a run reads only objects it has not read before or that changed
   (ETag), plus those holding rows dated after an earlier run's end that are now in its window
   (the watermark: ``SOURCE#`` items, written by runs with no window start); a new view
   version, or ``full=True``, reads them all;
2. parse and check every chosen object before anything is written (a column or type that
   does not match the view fails the run, naming them; malformed rows are rejected and
   counted);
3. keep the latest row per entity with an event time in the window (up to now);
4. read the stored rows of those entities (BatchGetItem, 100 keys a call; skipped while the
   view has never been written) and keep only rows newer than them (``needs_write``);
5. write those (BatchWriteItem, 25 a call, ``workers`` calls at a time, unprocessed items
   retried), or with ``conditional=True`` one conditional PutItem each (the fallback where
   writers race, e.g. partitions of one view written in parallel);
6. record the source objects read, the state (freshness histogram) and the run.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from mlops_core.errors import Conflict, MlopsError, NotFound
from mlops_core.events import DomainEvent
from mlops_core.features.entities import (
    ApplyResult,
    FeatureViewDefinition,
    Freshness,
    MaterializationRecord,
    StoredFeatureView,
    Trigger,
    ViewState,
    diff,
    iso_ms,
)
from mlops_core.features.events import (
    FeatureMaterializationFailed,
    FeatureMaterializationRequested,
    FeatureViewApplied,
)
from mlops_core.features.materialization import (
    encode_values,
    histogram_of,
    latest_per_entity,
    needs_write,
    online_item,
)
from mlops_core.features.online import OnlineStore
from mlops_core.features.repository import FeatureViewRepository, SourceMark, object_due
from mlops_core.features.sources import ParsedObject, parse_object
from mlops_core.features.usage import breaking_users, broken_features
from mlops_core.registry.repository import RegistryRepository
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore, ListedObject

if TYPE_CHECKING:  # partitions uses the service's pieces
    from mlops_core.features.partitions import PartitionedRuns

#: A scheduled view is due when its schedule has passed, less this (the dispatcher's ticks drift).
SCHEDULE_SLACK_MS = 60_000
#: The writer lease: the materialize function's timeout (a run cannot outlive it).
DEFAULT_LEASE_SECONDS = 900


def new_run_id(now_ms: int) -> str:
    """Time-ordered: ``20261201T120000123Z-1a2b3c4d`` (sort order is start order)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now_ms / 1000))
    return f"{stamp}{now_ms % 1000:03d}Z-{secrets.token_hex(4)}"


RUN_ID_PATTERN = r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$"


class Publisher(Protocol):
    """What the service needs of an event bus (``mlops_core.storage.eventbridge.EventPublisher``)."""

    def publish(self, event: DomainEvent) -> None: ...


@dataclass
class DispatchReport:
    runs: list[MaterializationRecord] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    freshness: list[Freshness] = field(default_factory=list)
    left_for_later: list[str] = field(default_factory=list)


class FeatureStoreService:
    def __init__(
        self,
        views: FeatureViewRepository,
        online: OnlineStore,
        sources: ArtifactStore,
        *,
        publisher: Publisher | None = None,
        clock: Callable[[], float] = time.time,
        workers: int = 8,
        lease_seconds: int = DEFAULT_LEASE_SECONDS,
        conditional_writes: bool = False,
        lease_wait_seconds: float = 30,
        sleep: Callable[[float], None] = time.sleep,
        registry: RegistryRepository | None = None,
        partitions: PartitionedRuns | None = None,
    ) -> None:
        self.views = views
        #: Runs whose chosen objects are too large for this function go to a Distributed Map.
        self.partitions = partitions
        #: Where the versions reading each view are recorded (``apply`` refuses to break them).
        self.registry = registry
        self.online = online
        self.sources = sources
        self.publisher = publisher
        self.clock = clock
        self.workers = workers
        self.lease_seconds = lease_seconds
        self.conditional_writes = conditional_writes
        #: How long an on-demand run waits for another run of its view to finish.
        self.lease_wait_seconds = lease_wait_seconds
        self.sleep = sleep

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # ---- definitions ------------------------------------------------------------------------
    def get(self, name: str) -> StoredFeatureView:
        stored = self.views.get(name)
        if stored is None:
            raise NotFound(f"feature view {name} not found")
        return stored

    def list_views(self) -> list[StoredFeatureView]:
        return self.views.list_views()

    def apply(
        self, definition: FeatureViewDefinition, *, actor: str | None, reason: str = "", dry_run: bool = False
    ) -> ApplyResult:
        """Register ``definition``: a new version if it differs from the one deployed (the same
        definition again changes nothing: applying is idempotent)."""
        current = self.views.get(definition.name, consistent=True)
        digest = definition.digest()
        if current is not None and current.digest == digest:
            return ApplyResult(
                view=current, changed=False, previous_version=current.version, changes=[], dry_run=dry_run
            )
        changes = diff(current.definition if current else None, definition)
        if current is not None and self.registry is not None:
            self._refuse_breaking(self.registry, current.definition, definition)
        stored = StoredFeatureView(
            definition=definition,
            version=(current.version + 1) if current else 1,
            digest=digest,
            applied_at=iso_ms(self._now_ms()),
            applied_by=actor,
            reason=reason,
        )
        previous = current.version if current else None
        if not dry_run:
            try:
                self.views.save(stored, previous_version=previous)
            except Conflict:
                raise Conflict(
                    f"feature view {definition.name} changed while it was applied: apply again",
                    retry_after_seconds=1,
                ) from None
            self._publish(
                FeatureViewApplied(
                    view=definition.name,
                    version=stored.version,
                    previous_version=previous,
                    changes=changes,
                    applied_by=actor,
                )
            )
        return ApplyResult(
            view=stored, changed=True, previous_version=previous, changes=changes, dry_run=dry_run
        )

    # ---- materialization --------------------------------------------------------------------
    def _refuse_breaking(
        self, registry: RegistryRepository, before: FeatureViewDefinition, after: FeatureViewDefinition
    ) -> None:
        users = breaking_users(registry, before, after)
        if not users:
            return
        changes = broken_features(before, after)
        what = ", ".join(f"{name} ({change})" for name, change in changes.items()) or (
            f"entity {before.entity.name} ({before.entity.type.value} -> {after.entity.type.value})"
        )
        raise Conflict(
            f"feature view {before.name}: this definition changes {what}, which "
            f"{len(users)} model version(s) read: {'; '.join(u.describe() for u in users[:20])}. "
            "Keep the features, or move those aliases and routing policies off the versions first",
            details=[
                {
                    "loc": ["body", "features"],
                    "msg": f"read by {u.model_name} v{u.version} ({u.deployed_by})",
                    "type": "used_by_model",
                    "model_name": u.model_name,
                    "version": u.version,
                    "features": u.features,
                }
                for u in users
            ],
        )

    def request_materialization(
        self, name: str, *, start_ms: int | None, end_ms: int | None, full: bool = False
    ) -> MaterializationRecord:
        """Record an on-demand run as requested and ask the materializer for it (an event)."""
        stored = self.get(name)
        now = self._now_ms()
        record = MaterializationRecord(
            run_id=new_run_id(now),
            view=name,
            view_version=stored.version,
            trigger="on_demand",
            status="requested",
            requested_at=iso_ms(now),
            incremental=not full,
            window_start_ms=start_ms,
            window_end_ms=end_ms,
        )
        self.views.put_record(record, new=True)
        self._publish(
            FeatureMaterializationRequested(
                view=name, run_id=record.run_id, start_ms=start_ms, end_ms=end_ms, full=full
            )
        )
        return record

    def run_requested(self, name: str, run_id: str) -> MaterializationRecord | None:
        """Run a requested materialization once (None: unknown, or claimed by an earlier delivery)."""
        record = self.views.record(name, run_id)
        if record is None or not self.views.claim_record(name, run_id, started_at=iso_ms(self._now_ms())):
            return None
        waited_until = time.monotonic() + self.lease_wait_seconds
        while True:
            try:
                return self.materialize(
                    name,
                    trigger="on_demand",
                    start_ms=record.window_start_ms,
                    end_ms=record.window_end_ms,
                    full=not record.incremental,
                    run_id=run_id,
                    requested_at=record.requested_at,
                )
            except Conflict as busy:  # another run holds the view: wait for it, a little
                if time.monotonic() + 1 < waited_until:
                    self.sleep(1)
                    continue
                skipped = record.model_copy(
                    update={"status": "skipped", "error": busy.message, "finished_at": iso_ms(self._now_ms())}
                )
                self.views.put_record(skipped)
                return skipped
            except MlopsError:
                return self.views.record(name, run_id)  # recorded as failed by materialize

    def materialize(
        self,
        name: str,
        *,
        trigger: Trigger,
        start_ms: int | None = None,
        end_ms: int | None = None,
        full: bool = False,
        run_id: str | None = None,
        requested_at: str | None = None,
    ) -> MaterializationRecord:
        """One run (see the module); ``Conflict`` if another run holds the view, the domain
        error that failed it otherwise (the failed run is recorded first)."""
        stored = self.get(name)
        started = self._now_ms()
        run_id = run_id or new_run_id(started)
        incremental = not full
        window_end = end_ms if end_ms is not None else started
        record = MaterializationRecord(
            run_id=run_id,
            view=name,
            view_version=stored.version,
            trigger=trigger,
            status="running",
            requested_at=requested_at or iso_ms(started),
            started_at=iso_ms(started),
            incremental=incremental,
            window_start_ms=start_ms,
            window_end_ms=window_end,
        )
        self.views.acquire_lease(name, run_id, now_ms=started, seconds=self.lease_seconds)
        reads, writes = self.online.table.read_requests, self.online.table.write_requests
        state = self.views.state(name)
        handed_off = False
        try:
            if trigger == "schedule":
                state.last_scheduled_at_ms = started
            handed_off = self._run(
                stored, state, record, start_ms=start_ms, end_ms=window_end, incremental=incremental
            )
            if handed_off:  # a Distributed Map runs it; its last step records it and frees the lease
                return record
            record.status = "succeeded"
        except MlopsError as error:
            record.status = "failed"
            record.error = error.message
            record.error_detail = error.details or None
            raise
        except Exception:
            record.status = "failed"
            record.error = "internal error (see the materialize function's log)"
            raise
        finally:
            if not handed_off:
                self._close(record, state, started=started, reads=reads, writes=writes)
        return record

    def _close(
        self, record: MaterializationRecord, state: ViewState, *, started: int, reads: int, writes: int
    ) -> None:
        """Record the run, save the state and release the lease (a run in this function)."""
        name, run_id, trigger = record.view, record.run_id, record.trigger
        finished = self._now_ms()
        record.finished_at = iso_ms(finished)
        record.duration_ms = finished - started
        record.read_requests = self.online.table.read_requests - reads
        record.write_requests = self.online.table.write_requests - writes
        state.last_run_id, state.last_run_status, state.last_run_at_ms = run_id, record.status, started
        if record.status == "succeeded":
            state.last_success_at_ms = started
        try:
            self.views.save_state(name, state)
            self.views.put_record(record)
        finally:
            self.views.release_lease(name, run_id)
        if record.status == "failed":
            self._publish(
                FeatureMaterializationFailed(
                    view=name, run_id=run_id, trigger=trigger, error=record.error or ""
                )
            )

    def _run(
        self,
        stored: StoredFeatureView,
        state: ViewState,
        record: MaterializationRecord,
        *,
        start_ms: int | None,
        end_ms: int,
        incremental: bool,
    ) -> bool:
        """Materialize here (False), or hand the run to the partitioned workflow (True)."""
        view = stored.definition
        new_version = state.view_version != stored.version
        listed = self._list_sources(view)
        marks = self.views.sources(view.name) if incremental and not new_version else {}
        # A run from the beginning of time has applied every row of its objects up to its end:
        # it marks them read (a run with a window start has not seen the rows before it).
        marks_sources = start_ms is None
        chosen = [o for o in listed if object_due(o, marks.get(o.key), end_ms)]
        record.objects_skipped = len(listed) - len(chosen)
        record.objects_read = len(chosen)
        if self.partitions is not None and self.partitions.needed(view, chosen):
            self.partitions.start(
                self,
                stored,
                state,
                record,
                start_ms=start_ms,
                end_ms=end_ms,
                incremental=incremental and not new_version,
            )
            return True
        # Every chosen object is read and checked before anything is written.
        parsed = [self._parse(view, o) for o in chosen]
        record.rows_read = sum(p.rows_read for p in parsed)
        for p in parsed:
            for reason, count in p.rejected.items():
                record.rows_rejected += count
                record.rejected_reasons[reason] = record.rejected_reasons.get(reason, 0) + count
            room = 10 - len(record.rejected_examples)
            record.rejected_examples.extend(p.examples[: max(0, room)])
        candidates, counts = latest_per_entity(parsed, start_ms=start_ms, end_ms=end_ms)
        record.rows_outside_window = counts.outside_window
        record.rows_superseded = counts.superseded
        record.entities = len(candidates)

        now = self._now_ms()
        encoded = {entity: encode_values(c.values) for entity, c in candidates.items()}
        stored_rows = (
            self.online.stored(view.name, list(candidates), workers=self.workers)
            if state.ever_written and candidates
            else {}
        )
        items = []
        newest = state.newest_event_ms
        for entity, candidate in candidates.items():
            newest = candidate.event_ms if newest is None else max(newest, candidate.event_ms)
            previous = stored_rows.get(entity)
            if not needs_write(candidate, previous, stored.version, encoded[entity]):
                continue
            items.append(online_item(view, stored.version, candidate, encoded[entity], now))
        record.items_unchanged = len(candidates) - len(items)
        self._write(view.name, state, record, items)
        self._account(view, state, items, stored_rows, now=now)
        state.newest_event_ms = newest
        state.view_version = stored.version
        if marks_sources:
            self.views.mark_sources(
                view.name,
                [
                    SourceMark(
                        key=o.key,
                        etag=o.etag,
                        rows=p.rows_read,
                        read_at_ms=now,
                        pending_after_ms=min((e for e in p.event_ms if e > end_ms), default=None),
                    )
                    for o, p in zip(chosen, parsed, strict=True)
                ],
            )
        return False

    def _write(
        self, name: str, state: ViewState, record: MaterializationRecord, items: list[dict[str, Any]]
    ) -> None:
        if items and not state.ever_written:
            state.ever_written = True
            self.views.save_state(name, state)  # before the first write (see ViewState)
        if self.conditional_writes:
            outcomes = self.online.write_if_newer(items, workers=self.workers)
            written = sum(1 for done, _ in outcomes if done)
            record.items_written, record.items_lost_race = written, len(outcomes) - written
        else:
            self.online.write(items, workers=self.workers)
            record.items_written = len(items)

    def _account(
        self,
        view: FeatureViewDefinition,
        state: ViewState,
        items: list[dict[str, Any]],
        stored_rows: dict[str, dict[str, Any]],
        *,
        now: int,
    ) -> None:
        """The freshness histogram after ``items`` replaced ``stored_rows``."""
        histogram = histogram_of(state, view)
        for item in items:
            entity = str(item[keys.FEATURE_KEY])[len(view.name) + 1 :]
            previous = stored_rows.get(entity)
            if previous is not None:
                histogram.remove(int(previous[keys.FEATURE_EVENT_TIME]))
            histogram.add(int(item[keys.FEATURE_EVENT_TIME]))
        histogram.compact(now - view.ttl * 1000)
        state.histogram = histogram.as_state()
        state.bucket_ms = histogram.width_ms
        state.entities = histogram.total

    def _list_sources(self, view: FeatureViewDefinition) -> list[ListedObject]:
        path = view.source.path
        listed = list(self.sources.objects(path))
        if not path.endswith("/"):  # one object: the prefix listing may hold longer keys too
            listed = [o for o in listed if o.key == path]
        return [o for o in listed if not o.key.endswith("/") and o.size > 0]

    def _parse(self, view: FeatureViewDefinition, listed: ListedObject) -> ParsedObject:
        relative = (
            listed.key[len(view.source.path) :]
            if view.source.path.endswith("/")
            else listed.key.rsplit("/", 1)[-1]
        )
        data = self.sources.get(listed.key).data
        return parse_object(view, relative or listed.key.rsplit("/", 1)[-1], data)

    # ---- the schedule -----------------------------------------------------------------------
    def dispatch(
        self, *, time_left_s: Callable[[], float] | None = None, reserve_s: float = 10
    ) -> DispatchReport:
        """Materialize every scheduled view that is due (while ``time_left_s()`` exceeds
        ``reserve_s``; the others wait for the next tick), then measure every view's freshness."""
        report = DispatchReport()
        for stored in self.views.list_views():
            view = stored.definition
            state = self.views.state(view.name)
            now = self._now_ms()
            due = view.schedule is not None and (
                state.last_scheduled_at_ms is None
                or now - state.last_scheduled_at_ms >= view.schedule * 1000 - SCHEDULE_SLACK_MS
            )
            if due and time_left_s is not None and time_left_s() < reserve_s:
                report.left_for_later.append(view.name)
                due = False
            if due:
                try:
                    report.runs.append(self.materialize(view.name, trigger="schedule"))
                except Conflict:
                    report.busy.append(view.name)
                except MlopsError:  # recorded as failed; the next due tick tries again
                    failed = self.views.state(view.name).last_run_id
                    record = self.views.record(view.name, failed) if failed else None
                    if record is not None:
                        report.runs.append(record)
            report.freshness.append(self.freshness_of(stored, self.views.state(view.name)))
        return report

    # ---- freshness --------------------------------------------------------------------------
    def freshness(self, name: str) -> Freshness:
        stored = self.get(name)
        return self.freshness_of(stored, self.views.state(name))

    def freshness_of(self, stored: StoredFeatureView, state: ViewState) -> Freshness:
        view = stored.definition
        now = self._now_ms()
        histogram = histogram_of(state, view)
        entities = histogram.total
        expired = histogram.older_than(now - view.ttl * 1000)
        age = None if state.newest_event_ms is None else max(0.0, (now - state.newest_event_ms) / 1000)
        target = view.freshness_target
        return Freshness(
            view=view.name,
            version=stored.version,
            entities=entities,
            newest_event_time=None if state.newest_event_ms is None else iso_ms(state.newest_event_ms),
            age_seconds=age,
            freshness_target_seconds=target,
            stale=age is None or (target is not None and age > target),
            expired_entities=expired,
            expired_share=expired / entities if entities else 0.0,
            ttl_seconds=view.ttl,
            last_run_id=state.last_run_id,
            last_run_status=state.last_run_status,
            last_success_at=None if state.last_success_at_ms is None else iso_ms(state.last_success_at_ms),
        )

    def _publish(self, event: DomainEvent) -> None:
        if self.publisher is not None:
            self.publisher.publish(event)


def record_summary(record: MaterializationRecord) -> dict[str, Any]:
    """The numbers a log line or a metric needs of a run."""
    return {
        "view": record.view,
        "run_id": record.run_id,
        "status": record.status,
        "rows_read": record.rows_read,
        "rows_rejected": record.rows_rejected,
        "items_written": record.items_written,
        "items_unchanged": record.items_unchanged,
        "duration_ms": record.duration_ms,
    }
