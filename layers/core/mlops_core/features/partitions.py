"""Partitioned materialization: a run whose chosen source objects are too large for one
function hands them to a Step Functions Distributed Map, one child per object.

    materialize (the function, schedule or on demand)
      chooses the objects as every run does (watermark, window, new version);
      their total size > ``single_run_max_bytes``?  no: the run goes on in this function
        yes: STATE.ever_written set, the lease extended to the workflow's timeout, the record
             saved ``running`` + ``partitioned``, then the execution (named after the run id)
    MaterializeObjects (Distributed Map; ItemReader lists the view's source prefix)
      MaterializeObject (one object): the same choice for its one object (its SOURCE# mark),
        parse and check, latest row per entity, the stored rows read first when the view was
        written before the run, then conditional PutItems (newest wins between children too:
        two objects may hold rows of one entity), its SOURCE# mark, its counts returned
    FinishMaterialization: the Map's result files -> one run record (counts summed, the
        objects that failed listed), STATE (histogram deltas, newest event time, version),
        the lease released; a Map that failed as a whole -> the record failed, lease released.

Why conditional puts here and BatchWriteItem in one function: one function holding the lease
is the view's only writer, so it can read the stored rows, decide, and write 25 a call; the
children of one run write at the same time, and a conditional put is the only write DynamoDB
checks against the stored row. ``ReturnValues=ALL_OLD`` tells each put which row it replaced,
so the freshness histogram stays exact under those races.

A source object that does not match the view fails its own child (nothing of it written,
not marked: the next run reads it again); the other objects are written. One function's run
instead writes nothing when any object is wrong: it parses everything first, which is what
does not fit in memory here. The run is then ``failed`` and lists the objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.errors import MlopsError, NotFound, Unavailable
from mlops_core.features.entities import (
    FailedSource,
    FeatureViewDefinition,
    MaterializationRecord,
    RejectedRow,
    StoredFeatureView,
    ViewState,
    iso_ms,
)
from mlops_core.features.events import FeatureMaterializationFailed
from mlops_core.features.materialization import (
    Candidate,
    bucket_width_ms,
    encode_values,
    histogram_of,
    latest_per_entity,
    needs_write,
    online_item,
)
from mlops_core.features.online import OnlineStore
from mlops_core.features.repository import SourceMark, object_due
from mlops_core.storage import keys
from mlops_core.storage.dynamo import KeyedTable
from mlops_core.storage.map_runs import MapRunResults, entry_input, read_map_run, readable_cause
from mlops_core.storage.s3 import ListedObject

if TYPE_CHECKING:
    from mlops_core.features.service import FeatureStoreService

#: The workflow's timeout, and the lease of a partitioned run (a dead execution frees the view then).
PARTITIONED_LEASE_SECONDS = 4 * 3600
#: Failed objects kept on the run record.
RECORDED_FAILURES = 100


class Starter(Protocol):
    """What starts the workflow (``mlops_core.storage.stepfunctions.MaterializationWorkflow``)."""

    def start(self, name: str, execution_input: dict[str, Any]) -> str: ...


class PartitionRun(BaseModel):
    """The execution's input; the Map's ItemSelector copies it into every item."""

    model_config = ConfigDict(extra="ignore")

    view: str
    run_id: str
    view_version: int
    source_prefix: str = Field(description="The view's source path (a prefix): what the ItemReader lists")
    incremental: bool = Field(description="Objects read before and unchanged are skipped (their marks)")
    compare: bool = Field(description="The view was written before this run: read stored rows first")
    start_ms: int | None = None
    end_ms: int
    now_ms: int = Field(description="The run's start: written-at of its items, read-at of its marks")


class PartitionItem(PartitionRun):
    """One child's input: the run and one listed object."""

    key: str
    size: int
    #: The ItemReader's entry for the object (``$$.Map.Item.Value``): its ETag among the rest.
    listed: dict[str, Any] = Field(default_factory=dict)

    @property
    def etag(self) -> str:
        """Unquoted, as the marks keep it. Step Functions' documentation spells the field
        ``Etag``, S3's ListObjectsV2 (and so the local stack's reader) ``ETag``: either is read."""
        return str(self.listed.get("Etag") or self.listed.get("ETag") or "").strip('"')


class PartitionOutcome(BaseModel):
    """One child's answer (the Map's result files hold one per object)."""

    object_key: str
    skipped: bool = False
    rows_read: int = 0
    rows_rejected: int = 0
    rejected_reasons: dict[str, int] = Field(default_factory=dict)
    rejected_examples: list[RejectedRow] = Field(default_factory=list)
    rows_outside_window: int = 0
    rows_superseded: int = 0
    entities: int = 0
    items_written: int = 0
    items_unchanged: int = 0
    items_lost_race: int = 0
    read_requests: int = 0
    write_requests: int = 0
    newest_event_ms: int | None = None
    #: Bucket start (Unix ms, as text) -> rows added less rows replaced (``Histogram.apply``).
    histogram_delta: dict[str, int] = Field(default_factory=dict)
    error: str | None = None
    error_detail: list[dict[str, Any]] | None = None


class FinishRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    run: PartitionRun
    manifest_key: str | None = None
    #: The Map's (or a step's) error when it failed as a whole (``Catch`` result).
    failure: dict[str, Any] | None = None


class PartitionedRuns:
    """Deciding, starting, running one object, and finishing partitioned runs."""

    def __init__(self, workflow: Starter | None, *, single_run_max_bytes: int) -> None:
        self.workflow = workflow
        self.single_run_max_bytes = single_run_max_bytes

    # ---- in the materialize function ----------------------------------------------------------
    def needed(self, view: FeatureViewDefinition, chosen: Sequence[ListedObject]) -> bool:
        """More bytes to read than one function holds, in more than one object (one object
        cannot be split: a child holds it whole)."""
        return (
            self.workflow is not None
            and view.source.path.endswith("/")
            and len(chosen) > 1
            and sum(o.size for o in chosen) > self.single_run_max_bytes
        )

    def start(
        self,
        service: FeatureStoreService,
        stored: StoredFeatureView,
        state: ViewState,
        record: MaterializationRecord,
        *,
        start_ms: int | None,
        end_ms: int,
        incremental: bool,
    ) -> None:
        if self.workflow is None:
            raise RuntimeError("no partitioned workflow configured")
        view = stored.definition
        run = PartitionRun(
            view=view.name,
            run_id=record.run_id,
            view_version=stored.version,
            source_prefix=view.source.path,
            incremental=incremental,
            compare=state.ever_written,
            start_ms=start_ms,
            end_ms=end_ms,
            now_ms=service._now_ms(),
        )
        service.views.acquire_lease(
            view.name, record.run_id, now_ms=run.now_ms, seconds=PARTITIONED_LEASE_SECONDS
        )
        state.ever_written = True  # before any child writes (see ViewState)
        state.last_run_id, state.last_run_status = record.run_id, "running"
        state.last_run_at_ms = run.now_ms
        service.views.save_state(view.name, state)
        record.partitioned = True
        service.views.put_record(record)  # before the execution: its last step updates it
        self.workflow.start(record.run_id, run.model_dump(mode="json"))

    # ---- MaterializeObject -------------------------------------------------------------------
    def materialize_object(self, service: FeatureStoreService, item: PartitionItem) -> PartitionOutcome:
        """One object of a partitioned run. A source that does not match the view answers an
        outcome with ``error`` (nothing of it written); ``Unavailable`` is raised (the step's
        retry)."""
        stored = service.get(item.view)
        view = stored.definition
        relative = item.key[len(item.source_prefix) :]
        outcome = PartitionOutcome(object_key=relative)
        if item.key.endswith("/") or item.size == 0:
            outcome.skipped = True
            return outcome
        if stored.version != item.view_version:
            outcome.error = (
                f"the view changed during the run (version {stored.version}, the run's {item.view_version})"
            )
            return outcome
        listed = ListedObject(key=item.key, etag=item.etag, size=item.size)
        mark = service.views.source(view.name, item.key) if item.incremental else None
        if item.incremental and not object_due(listed, mark, item.end_ms):
            outcome.skipped = True
            return outcome
        if item.size > self.single_run_max_bytes:
            outcome.error = (
                f"{relative} is {item.size:,} bytes, more than one function reads "
                f"({self.single_run_max_bytes:,}): split it into smaller objects"
            )
            return outcome
        # This call's own counters (a local process runs many children on one module).
        online = OnlineStore(KeyedTable(service.online.table.table_name, what=service.online.table.what))
        try:
            parsed = service._parse(view, listed)
        except Unavailable:
            raise
        except MlopsError as error:  # the source does not match the view: this object fails
            outcome.error, outcome.error_detail = error.message, error.details or None
            return outcome
        outcome.rows_read = parsed.rows_read
        for reason, count in parsed.rejected.items():
            outcome.rows_rejected += count
            outcome.rejected_reasons[reason] = outcome.rejected_reasons.get(reason, 0) + count
        outcome.rejected_examples = parsed.examples[:10]
        candidates, counts = latest_per_entity([parsed], start_ms=item.start_ms, end_ms=item.end_ms)
        outcome.rows_outside_window, outcome.rows_superseded = counts.outside_window, counts.superseded
        outcome.entities = len(candidates)
        self._write(service, online, stored=stored, item=item, candidates=candidates, outcome=outcome)
        outcome.newest_event_ms = max((c.event_ms for c in candidates.values()), default=None)
        outcome.read_requests = online.table.read_requests
        outcome.write_requests = online.table.write_requests
        if item.start_ms is None:  # as one function's run: only a run from the beginning marks
            service.views.mark_sources(
                view.name,
                [
                    SourceMark(
                        key=item.key,
                        etag=item.etag,
                        rows=parsed.rows_read,
                        read_at_ms=item.now_ms,
                        pending_after_ms=min((e for e in parsed.event_ms if e > item.end_ms), default=None),
                    )
                ],
            )
        return outcome

    def _write(
        self,
        service: FeatureStoreService,
        online: OnlineStore,
        *,
        stored: StoredFeatureView,
        item: PartitionItem,
        candidates: dict[str, Candidate],
        outcome: PartitionOutcome,
    ) -> None:
        """Newest wins (read first when the view was written before), conditional puts, and the
        histogram's changes from what each put replaced."""
        view = stored.definition
        encoded = {entity: encode_values(c.values) for entity, c in candidates.items()}
        stored_rows = (
            online.stored(view.name, list(candidates), workers=service.workers)
            if item.compare and candidates
            else {}
        )
        items = [
            online_item(view, stored.version, candidate, encoded[entity], item.now_ms)
            for entity, candidate in candidates.items()
            if needs_write(candidate, stored_rows.get(entity), stored.version, encoded[entity])
        ]
        outcome.items_unchanged = len(candidates) - len(items)
        width = bucket_width_ms(view)
        delta: dict[int, int] = {}
        outcomes = online.write_if_newer(items, workers=service.workers)
        for written_item, (written, replaced) in zip(items, outcomes, strict=True):
            if not written:
                outcome.items_lost_race += 1
                continue
            outcome.items_written += 1
            event_ms = int(written_item[keys.FEATURE_EVENT_TIME])
            delta[event_ms - event_ms % width] = delta.get(event_ms - event_ms % width, 0) + 1
            if replaced is not None:
                old = int(replaced[keys.FEATURE_EVENT_TIME])
                delta[old - old % width] = delta.get(old - old % width, 0) - 1
        outcome.histogram_delta = {str(k): v for k, v in sorted(delta.items()) if v}

    # ---- FinishMaterialization ---------------------------------------------------------------
    def finish(self, service: FeatureStoreService, request: FinishRequest) -> MaterializationRecord:
        """One record of the whole run from its children's outcomes; STATE updated; the lease
        released. Idempotent: the record is saved last, and a run already recorded as ended
        is answered as it is (a retried step never applies the histogram's changes twice)."""
        run = request.run
        record = service.views.record(run.view, run.run_id)
        if record is None:
            raise NotFound(f"materialization {run.run_id} of feature view {run.view} not found")
        if record.status in ("succeeded", "failed"):  # a retried step: STATE has its changes already
            service.views.release_lease(run.view, run.run_id)
            return record
        stored = service.get(run.view)
        state = service.views.state(run.view)
        failed: list[FailedSource] = []
        outcomes: list[PartitionOutcome] = []
        if request.failure is not None:
            record.error = "the partitioned run failed: " + _failure_text(request.failure)
        elif request.manifest_key is not None:
            results = read_map_run(service.sources, request.manifest_key)
            outcomes = [PartitionOutcome.model_validate_json(e["Output"]) for e in results.succeeded]
            failed = _failed_children(results, run.source_prefix)
        _sum_into(record, outcomes)
        failed += [
            FailedSource(object_key=o.object_key, error=o.error, error_detail=o.error_detail)
            for o in outcomes
            if o.error is not None
        ]
        failed.sort(key=lambda f: f.object_key)
        record.failed_objects = failed[:RECORDED_FAILURES]
        if failed and record.error is None:
            record.error = (
                f"{len(failed)} of {record.objects_read + len(failed)} source object(s) failed "
                f"(their rows were not written; the next run reads them again): {failed[0].object_key}: "
                f"{failed[0].error}"
            )
        record.status = "failed" if record.error is not None else "succeeded"

        now = service._now_ms()
        # A retried step whose STATE was saved before its record: the changes are in already.
        if not (state.last_run_id == run.run_id and state.last_run_status in ("succeeded", "failed")):
            _apply_to_state(state, stored, run, outcomes, record, now_ms=now)
        record.finished_at = iso_ms(now)
        record.duration_ms = now - run.now_ms
        try:
            service.views.save_state(run.view, state)
            service.views.put_record(record)
        finally:
            service.views.release_lease(run.view, run.run_id)
        if record.status == "failed":
            service._publish(
                FeatureMaterializationFailed(
                    view=run.view, run_id=run.run_id, trigger=record.trigger, error=record.error or ""
                )
            )
        return record


def _apply_to_state(
    state: ViewState,
    stored: StoredFeatureView,
    run: PartitionRun,
    outcomes: Sequence[PartitionOutcome],
    record: MaterializationRecord,
    *,
    now_ms: int,
) -> None:
    histogram = histogram_of(state, stored.definition)
    # Summed first: one child's -1 in a bucket may meet another child's +1 there.
    delta: dict[str, int] = {}
    for outcome in outcomes:
        for start, change in outcome.histogram_delta.items():
            delta[start] = delta.get(start, 0) + change
    histogram.apply(delta)
    histogram.compact(now_ms - stored.definition.ttl * 1000)
    state.histogram, state.bucket_ms = histogram.as_state(), histogram.width_ms
    state.entities = histogram.total
    newest = [o.newest_event_ms for o in outcomes if o.newest_event_ms is not None]
    if state.newest_event_ms is not None:
        newest.append(state.newest_event_ms)
    state.newest_event_ms = max(newest) if newest else None
    state.view_version = run.view_version
    state.last_run_id, state.last_run_status = run.run_id, record.status
    if record.status == "succeeded":
        state.last_success_at_ms = run.now_ms


def _sum_into(record: MaterializationRecord, outcomes: Sequence[PartitionOutcome]) -> None:
    """The children's counts on the record (set, not added: a retried finish gives the same)."""
    done = [o for o in outcomes if not o.skipped and o.error is None]
    record.objects_read = len(done)
    record.objects_skipped = sum(1 for o in outcomes if o.skipped)
    for name in (
        "rows_read",
        "rows_rejected",
        "rows_outside_window",
        "rows_superseded",
        "entities",
        "items_written",
        "items_unchanged",
        "items_lost_race",
        "read_requests",
        "write_requests",
    ):
        setattr(record, name, sum(getattr(o, name) for o in done))
    reasons: dict[str, int] = {}
    examples: list[RejectedRow] = []
    for outcome in sorted(done, key=lambda o: o.object_key):
        for reason, count in outcome.rejected_reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        examples.extend(outcome.rejected_examples[: max(0, 10 - len(examples))])
    record.rejected_reasons, record.rejected_examples = reasons, examples


def _failed_children(results: MapRunResults, prefix: str) -> list[FailedSource]:
    """Children that did not answer (an error after the step's retries, or never run)."""
    failed = []
    for entry, error in [(e, None) for e in results.failed] + [(e, "NotRun") for e in results.pending]:
        key = str(entry_input(entry).get("key", "?"))
        failed.append(
            FailedSource(
                object_key=key[len(prefix) :] if key.startswith(prefix) else key,
                error=f"{error or entry.get('Error') or 'Failed'}: "
                + readable_cause(str(entry.get("Cause") or ""))[:1000],
            )
        )
    return failed


def _failure_text(failure: dict[str, Any]) -> str:
    error = str(failure.get("Error") or "States.Runtime")
    cause = readable_cause(str(failure.get("Cause") or ""))
    return f"{error}: {cause}"[:2000] if cause else error
