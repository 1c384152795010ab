"""The retraining loop: a ``DriftDetected`` event -> (switched on) a training run on labelled live data.

For each event, in order, stopping at the first "no":

1. The event is a ``DriftDetected`` from this project (anything else is ignored).
2. The model's monitoring configuration (``MODEL#{name} / MONITORING``) has
   ``retraining.enabled`` (off by default; no configuration is off): otherwise nothing
   happens and nothing is recorded.
3. One of the event's kinds (data, concept) is in ``retraining.on``.
4. The model's claim (``MODEL#{name} / RETRAINING``) is taken for this event: no other
   event is starting a run now, and the last run started more than ``cooldown_hours`` ago.
   One conditional write decides, so two events arriving together start one run; a
   redelivered event whose run started is a ``duplicate``.
5. The dataset: the captured predictions of the drift window (at most ``max_rows``, the
   newest) joined by prediction id with their feedback labels (feedback recorded since the
   window started), the features in the production signature's order and the label as the
   target, plus, with ``include_training_data``, the production version's own training
   data (``dataset``). Fewer than ``min_labelled_rows`` labelled rows: no run.
6. It is written as a new version of ``datasets/{model}-retraining/`` (data.csv,
   schema.json, retraining.json), and the training workflow starts with the configuration
   of the model's last successful run (candidates or search, target metric, threshold,
   tolerance, seed, fractions, expectations, ``promote_to``) on it, through the same path
   ``POST /training`` takes (``training.launch``), with ``triggered_by`` naming the drift
   run and the event. The workflow's gate decides; nothing is promoted here.

Every decision after (2) is recorded (``MODEL#{name} / RETRAIN#{at}#{event}``): started
with the run id and the dataset, or skipped with the reason. A dependency that fails
(``Unavailable``) raises: Lambda delivers the event again and the same event takes its
claim again (a claim left by a crash is taken over after ``stale_claim_seconds``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from mlops_core.clock import iso, parse_iso
from mlops_core.data.schema import DatasetSchema, DataValidationError, load_csv
from mlops_core.errors import Conflict, Invalid, NotFound
from mlops_core.events import EVENT_SOURCE
from mlops_core.feedback.capture_store import CaptureStore
from mlops_core.feedback.feedback_store import FeedbackStore
from mlops_core.monitoring.config import MonitoringConfig
from mlops_core.monitoring.events import DriftDetected
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.registry.signature import sha256_hex
from mlops_core.retraining.dataset import (
    build_dataset,
    dataset_name,
    known_prediction_ids,
    next_version_key,
    retraining_schema,
    write_dataset,
)
from mlops_core.retraining.entities import RetrainClaim, RetrainDecision
from mlops_core.retraining.repository import RetrainingRepository
from mlops_core.storage.dynamo import Item, MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import TrainingWorkflow
from mlops_core.training.launch import start_training_run
from mlops_core.training.requests import (
    TrainingRequest,
    TrainingTrigger,
    TriggerEvent,
    read_document,
    validation_problems,
)
from mlops_core.training.tracking import RunTracker

LOGGER = logging.getLogger(__name__)

#: A claim not started within this long is taken to be a crashed attempt's, and may be taken over.
STALE_CLAIM_SECONDS = 15 * 60
#: How many of a model's runs are looked through for its last successful one.
RUNS_SEARCHED = 200
#: How many of a model's newest decisions a redelivered event looks through for its own.
DUPLICATE_SEARCH = 20
#: Fields of the last successful run's request that are this run's own, not its configuration.
_NOT_CARRIED = {
    "run_id",
    "dataset_key",
    "schema_key",
    "triggered_by",
    # A run on feature views retrains on the captured rows (their features as served), not its labels.
    "labels",
    "feature_views",
    "training_set",
    "feature_view_versions",
}


class RetrainingService:
    def __init__(
        self,
        table: MetadataTable,
        store: ArtifactStore,
        workflow: TrainingWorkflow,
        *,
        clock: Callable[[], float] = time.time,
        stale_claim_seconds: int = STALE_CLAIM_SECONDS,
    ) -> None:
        self.repository = RetrainingRepository(table)
        self.registry = RegistryLookup(table)
        self.tracker = RunTracker(table)
        self.store = store
        self.captures = CaptureStore(store)
        self.feedback = FeedbackStore(store)
        self.workflow = workflow
        self.clock = clock
        self.stale_claim_ms = stale_claim_seconds * 1000

    def handle(self, event: Mapping[str, Any]) -> RetrainDecision:
        """What the event leads to (recorded from step 3 on; see the module's docstring)."""
        event_id = str(event.get("id") or "")
        drift = _drift_detected(event)
        if isinstance(drift, str):
            return _ignored(event_id, drift)
        config = self.repository.monitoring_config(drift.model_name)
        if config is None or not config.retraining.enabled:
            return _ignored(event_id, f"retraining is off for model '{drift.model_name}'", drift)
        kinds = [str(kind) for kind in drift.kinds if kind in config.retraining.on]
        if not kinds:
            reason = f"retraining is on for {config.retraining.on}, the drift was {drift.kinds}"
            return self._record(drift, event_id, "skipped", reason)
        held = self.repository.claim(drift.model_name)
        if held is not None and held.claim_event_id == event_id and held.claim_state == "started":
            return self._duplicate(drift, event_id, held)
        return self._claim_and_retrain(drift, event_id, str(event.get("time") or ""), kinds, config)

    def _claim_and_retrain(
        self, drift: DriftDetected, event_id: str, event_time: str, kinds: list[str], config: MonitoringConfig
    ) -> RetrainDecision:
        run_id = retraining_run_id(drift.model_name, event_id, event_time)
        now_ms = int(self.clock() * 1000)
        try:
            self.repository.take_claim(
                drift.model_name,
                event_id=event_id,
                drift_run_id=drift.run_id,
                run_id=run_id,
                now_ms=now_ms,
                cooldown_ms=int(config.retraining.cooldown_hours * 3_600_000),
                stale_ms=self.stale_claim_ms,
            )
        except Conflict:
            return self._not_claimed(drift, event_id, config.retraining.cooldown_hours, now_ms)
        try:
            return self._retrain(drift, event_id, kinds=kinds, run_id=run_id, config=config, now_ms=now_ms)
        except Invalid as refused:
            self.repository.release(drift.model_name, event_id=event_id)
            return self._record(drift, event_id, "skipped", refused.message)

    # ---- the run ----------------------------------------------------------------------------
    def _retrain(
        self,
        drift: DriftDetected,
        event_id: str,
        *,
        kinds: list[str],
        run_id: str,
        config: MonitoringConfig,
        now_ms: int,
    ) -> RetrainDecision:
        name, settings = drift.model_name, config.retraining
        try:
            production = self.registry.resolve_alias(name, "production")
        except NotFound:
            raise Invalid(f"model '{name}' has no production version to retrain") from None
        last = self._last_successful_run(name)
        base_run = self._run(production.run_id) or last
        dataset = base_run.get("dataset") or {}
        if not dataset.get("schema_key") or not dataset.get("key"):
            raise Invalid(f"run '{base_run.get('run_id')}' records no dataset to take the schema from")
        base_schema = read_document(
            self.store, dataset["schema_key"], DatasetSchema, "schema", ["dataset", "schema_key"]
        )
        if base_schema.task != production.signature.task:
            raise Invalid(
                f"the training schema is for {base_schema.task}, the production version does "
                f"{production.signature.task}"
            )
        schema = retraining_schema(base_schema, production.signature.feature_names, dataset_name(name))
        start_ms, end_ms = _window(drift)
        captured = self.captures.window(name, start_ms=start_ms, end_ms=end_ms, limit=config.max_rows)
        feedback = self.feedback.window(name, start_ms=start_ms, end_ms=max(now_ms + 1, end_ms))
        training, known = None, frozenset[str]()
        if settings.include_training_data:
            try:
                stored = self.store.get(dataset["key"], dataset.get("version_id"))
            except NotFound:
                raise Invalid(
                    f"the training data '{dataset['key']}' of run '{base_run['run_id']}' is gone"
                ) from None
            if dataset.get("sha256") and sha256_hex(stored.data) != dataset["sha256"]:
                raise Invalid(
                    f"the training data '{dataset['key']}' changed since run '{base_run['run_id']}'"
                )
            try:
                training = load_csv(stored.data, base_schema)
            except DataValidationError as error:
                raise Invalid(f"the training data '{dataset['key']}' no longer loads: {error}") from None
            known = known_prediction_ids(self.store, dataset["key"])
        built = build_dataset(schema, captured, feedback, training=training, known_ids=known)
        if built.counts.labelled < settings.min_labelled_rows:
            self.repository.release(name, event_id=event_id)
            return self._record(
                drift,
                event_id,
                "skipped",
                f"{built.counts.labelled} captured predictions with feedback labels in the window, "
                f"fewer than min_labelled_rows ({settings.min_labelled_rows})",
                counts=built.counts,
            )
        dataset_key = self.repository.choose_dataset(
            name, event_id=event_id, dataset_key=next_version_key(self.store, schema.name)
        )
        provenance = {
            "model_name": name,
            "drift_run_id": drift.run_id,
            "event_id": event_id,
            "kinds": kinds,
            "window_start": drift.window_start,
            "window_end": drift.window_end,
            "production_version": production.version,
            "training_data": {k: dataset.get(k) for k in ("key", "version_id", "sha256")}
            if training is not None
            else None,
        }
        write_dataset(self.store, dataset_key, built, provenance)
        request = self._request(last, run_id, dataset_key, drift, event_id)
        try:
            start_training_run(request, self.store, self.workflow)
        except Conflict:
            LOGGER.info("run %s was started by an earlier delivery of %s", run_id, event_id)
        self.repository.mark_started(
            name,
            event_id=event_id,
            drift_run_id=drift.run_id,
            run_id=run_id,
            dataset_key=dataset_key,
            now_ms=now_ms,
        )
        return self._record(
            drift,
            event_id,
            "started",
            f"training run {run_id} on {built.counts.labelled} labelled rows"
            + (f" and {built.counts.training_rows} of the training data" if training is not None else ""),
            run_id=run_id,
            dataset_key=dataset_key,
            counts=built.counts,
        )

    def _request(
        self, last: Item, run_id: str, dataset_key: str, drift: DriftDetected, event_id: str
    ) -> TrainingRequest:
        """The last successful run's configuration on the new dataset, with its lineage."""
        carried = {k: v for k, v in (last.get("request") or {}).items() if k not in _NOT_CARRIED}
        trigger = TrainingTrigger(
            drift_run_id=drift.run_id,
            event=TriggerEvent(
                type=DriftDetected.detail_type(),
                id=event_id,
                kinds=list(drift.kinds),
                model_version=drift.model_version,
            ),
        )
        try:
            return TrainingRequest.model_validate(
                {
                    **carried,
                    "run_id": run_id,
                    "dataset_key": dataset_key,
                    "triggered_by": trigger.model_dump(),
                }
            )
        except ValidationError as error:
            raise Invalid(
                f"the configuration of run '{last.get('run_id')}' is not a valid request any more: "
                + "; ".join(validation_problems(error))
            ) from None

    def _last_successful_run(self, name: str) -> Item:
        for run in self.tracker.list_for_model(name, limit=RUNS_SEARCHED):
            if run.get("status") == "SUCCEEDED" and run.get("request"):
                return run
        raise Invalid(f"model '{name}' has no successful training run to take the configuration from")

    def _run(self, run_id: str | None) -> Item | None:
        if not run_id:
            return None
        try:
            return self.tracker.get(run_id)
        except (NotFound, Invalid):
            return None

    # ---- recording ----------------------------------------------------------------------------
    def _not_claimed(
        self, drift: DriftDetected, event_id: str, cooldown_hours: float, now_ms: int
    ) -> RetrainDecision:
        held = self.repository.claim(drift.model_name)
        if held is not None and held.claim_event_id == event_id and held.claim_state == "started":
            return self._duplicate(drift, event_id, held)
        if held is not None and held.claim_state == "claimed" and held.claim_event_id != event_id:
            reason = (
                f"another DriftDetected (drift run {held.claim_drift_run_id}) is starting a retraining run"
            )
        elif held is not None and held.last_started_at_ms is not None:
            hours = (now_ms - held.last_started_at_ms) / 3_600_000
            reason = (
                f"retraining run {held.last_run_id} started {hours:.2f} h ago, within the cooldown "
                f"of {cooldown_hours:g} h"
            )
        else:
            reason = "the model's retraining claim is held"
        return self._record(drift, event_id, "skipped", reason)

    def _record(
        self, drift: DriftDetected, event_id: str, outcome: str, reason: str, **fields: Any
    ) -> RetrainDecision:
        decision = RetrainDecision.model_validate(
            {
                "model_name": drift.model_name,
                "event_id": event_id,
                "drift_run_id": drift.run_id,
                "kinds": list(drift.kinds),
                "outcome": outcome,
                "reason": reason,
                "at": iso(datetime.fromtimestamp(self.clock(), UTC)),
                **fields,
            }
        )
        self.repository.record_decision(decision)
        self.repository.link_drift_run(decision)
        LOGGER.info("retraining %s: %s", outcome, reason, extra={"model_name": drift.model_name})
        return decision

    def _duplicate(self, drift: DriftDetected, event_id: str, held: RetrainClaim) -> RetrainDecision:
        """A redelivery of an event whose run started: nothing new is recorded, but the drift
        run is linked to the decision again (an earlier delivery may have failed just after
        recording it)."""
        recorded = next(
            (
                d
                for d in self.repository.decisions(drift.model_name, limit=DUPLICATE_SEARCH)
                if d.event_id == event_id and d.outcome == "started"
            ),
            None,
        )
        if recorded is not None:
            self.repository.link_drift_run(recorded)
        return _decision(drift, event_id, "duplicate", "this event's run was started already", held)


def _drift_detected(event: Mapping[str, Any]) -> DriftDetected | str:
    """The event's DriftDetected, or why it is not one to act on."""
    if event.get("source") != EVENT_SOURCE or event.get("detail-type") != DriftDetected.detail_type():
        return "not a DriftDetected event of this project"
    if not event.get("id"):
        return "the event has no id"
    try:
        return DriftDetected.model_validate(event.get("detail"))
    except ValidationError as error:
        return "unreadable DriftDetected: " + "; ".join(validation_problems(error))[:500]


def retraining_run_id(model_name: str, event_id: str, event_time: str) -> str:
    """The run id of an event's retraining run: the same for every delivery of the event (a
    second start of it is refused by Step Functions), readable, within the run id pattern."""
    try:
        stamp = parse_iso(event_time).astimezone(UTC).strftime("%Y%m%d-%H%M%S")
    except ValueError:
        stamp = "event"
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:8]
    return f"{model_name[:40].replace('.', '-')}-retrain-{stamp}-{digest}"


def _window(drift: DriftDetected) -> tuple[int, int]:
    try:
        start, end = parse_iso(drift.window_start), parse_iso(drift.window_end)
    except ValueError:
        raise Invalid(
            f"the event's window {drift.window_start!r}..{drift.window_end!r} is not ISO 8601"
        ) from None
    if start.tzinfo is None or end.tzinfo is None or end < start:
        raise Invalid(f"the event's window {drift.window_start!r}..{drift.window_end!r} is not a UTC range")
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _ignored(event_id: str, reason: str, drift: DriftDetected | None = None) -> RetrainDecision:
    return RetrainDecision(
        model_name=drift.model_name if drift else "",
        event_id=event_id,
        drift_run_id=drift.run_id if drift else "",
        kinds=list(drift.kinds) if drift else [],
        outcome="ignored",
        reason=reason,
        at=iso(datetime.now(UTC)),
    )


def _decision(
    drift: DriftDetected, event_id: str, outcome: str, reason: str, held: RetrainClaim
) -> RetrainDecision:
    return RetrainDecision.model_validate(
        {
            "model_name": drift.model_name,
            "event_id": event_id,
            "drift_run_id": drift.run_id,
            "kinds": list(drift.kinds),
            "outcome": outcome,
            "reason": reason,
            "at": iso(datetime.now(UTC)),
            "run_id": held.last_run_id,
            "dataset_key": held.last_dataset_key,
        }
    )
