"""One drift run: the production version's reference profile against the recent window of
captured predictions; a report in S3, a summary in the registry, an event when drift is found.

    resolve ``production`` -> its version's training run -> ``runs/{run}/reference_profile.json``
    window: the captured predictions of the last ``window_hours`` (at most ``max_rows``, newest)
    data drift: every row of the window, whichever version served it (the inputs are the
        traffic's, not the model's; by feature name, so versions with other signatures count)
    output drift: only the rows the production version served (another version's outputs
        are another model's)
    -> report.json + report.html, the run's summary item, DriftDetected / DriftRunFailed

Nothing to compare with (no production alias, a version registered without a training run,
a run without a profile) ends the run as ``no_reference``: recorded, no exception, so no
retry storm. Any error ends it as ``failed`` (recorded, DriftRunFailed published); only a
failure to record the outcome itself is raised. A run that already ended (a redelivered
invocation) is returned as it is; of two invocations racing on one run, the first to record
its outcome wins and the other changes nothing.

Concept drift is a hook: pass ``concept`` (a ``records.ConceptEvaluator``) and its outcome
is stored with the run, added to the report and, when it drifted, named in DriftDetected.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from mlops_core.clock import iso
from mlops_core.errors import Conflict, MlopsError, Unavailable
from mlops_core.monitoring.config import MonitoringConfig
from mlops_core.monitoring.detect import detect_drift
from mlops_core.monitoring.entities import DriftResult
from mlops_core.monitoring.events import DriftDetected, DriftRunFailed
from mlops_core.monitoring.records import (
    FINAL_STATUSES,
    ConceptEvaluator,
    DriftRunSummary,
    Trigger,
    run_started_at,
)
from mlops_core.monitoring.reference import NoReference, production_reference
from mlops_core.monitoring.report import DriftReport, WindowFacts, prediction_drift, report_key, result_fields
from mlops_core.monitoring.report_html import render_html
from mlops_core.monitoring.repository import MonitoringRepository
from mlops_core.monitoring.window import category_names, distribution, feature_columns, predictions_of
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.serving.capture import CapturedPrediction
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore

LOGGER = logging.getLogger(__name__)


class WindowSource(Protocol):
    """Captured predictions by time (``feedback.capture_store.CaptureStore``; injected, since
    monitoring does not import the feedback domain)."""

    def window(
        self, model_name: str, *, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[CapturedPrediction]: ...


@dataclass(frozen=True)
class RunOutcome:
    summary: DriftRunSummary
    result: DriftResult | None = None
    #: False when the run had ended already (nothing was done this time).
    ran: bool = True


class DriftRunner:
    def __init__(
        self,
        table: MetadataTable,
        artifacts: ArtifactStore,
        captures: WindowSource,
        *,
        publisher: EventPublisher | None = None,
        registry: RegistryLookup | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repository = MonitoringRepository(table)
        self.registry = registry or RegistryLookup(table)
        self.artifacts = artifacts
        self.captures = captures
        self.publisher = publisher
        self.clock = clock

    def run(
        self,
        name: str,
        run_id: str,
        *,
        trigger: Trigger = "on_demand",
        config: MonitoringConfig | None = None,
        concept: ConceptEvaluator | None = None,
    ) -> RunOutcome:
        """Carry out the run ``run_id`` of model ``name`` (its ``running`` item is created if
        there is none yet); ``config`` defaults to the model's stored one (or the defaults)."""
        started_at = run_started_at(run_id)
        if started_at is None:
            raise ValueError(f"{run_id!r} is not a drift run id")
        existing = self.repository.run(name, run_id, consistent=True)
        if existing is not None and existing.status in FINAL_STATUSES:
            return RunOutcome(existing, ran=False)
        summary = existing or DriftRunSummary(
            model_name=name, run_id=run_id, trigger=trigger, status="running", started_at=started_at
        )
        if existing is None:
            try:
                self.repository.start_run(summary)
            except Conflict:  # another invocation of this run started it a moment ago
                raced = self.repository.run(name, run_id, consistent=True)
                if raced is not None and raced.status in FINAL_STATUSES:
                    return RunOutcome(raced, ran=False)
        began = time.perf_counter()
        result: DriftResult | None = None
        try:
            stored = self.repository.monitoring(name)
            config = config or (stored.config if stored else MonitoringConfig())
            summary, result = self._compare(summary, config, concept)
        except NoReference as missing:
            summary = summary.model_copy(
                update={
                    "status": "no_reference",
                    "message": str(missing),
                    "model_version": missing.version,
                    "reference_run_id": missing.run_id,
                }
            )
        except Exception as error:  # recorded as the run's outcome, never retried
            if not isinstance(error, MlopsError):
                LOGGER.exception("drift run %s of %s failed", run_id, name)
            summary = summary.model_copy(
                update={"status": "failed", "error": type(error).__name__, "message": _message(error)}
            )
        summary = summary.model_copy(
            update={"finished_at": iso(self.clock()), "seconds": round(time.perf_counter() - began, 3)}
        )
        try:
            self.repository.finish_run(summary)
        except Conflict:  # another invocation of the same run recorded its outcome first
            ended = self.repository.run(name, run_id, consistent=True)
            return RunOutcome(ended or summary, ran=False)
        self._announce(summary)
        return RunOutcome(summary, result)

    def _compare(
        self, summary: DriftRunSummary, config: MonitoringConfig, concept: ConceptEvaluator | None
    ) -> tuple[DriftRunSummary, DriftResult | None]:
        name = summary.model_name
        version, profile = production_reference(self.registry, self.artifacts, name)
        end = self.clock()
        start = end - timedelta(hours=config.window_hours)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        rows = self.captures.window(name, start_ms=start_ms, end_ms=end_ms, limit=config.max_rows)
        window = feature_columns(rows)
        outputs = predictions_of(rows, version.version)
        facts = WindowFacts(
            start=iso(start),
            end=iso(end),
            rows=len(rows),
            malformed_rows=window.malformed_rows,
            rows_by_version={str(v): n for v, n in sorted(Counter(r.model_version for r in rows).items())},
            max_rows=config.max_rows,
        )
        result = None
        if rows:
            result = detect_drift(
                profile,
                window.columns,
                predictions=outputs if profile.prediction is not None and outputs else None,
                settings=config.drift,
            )
        outcome = (
            concept.evaluate(
                model_name=name,
                model_version=version.version,
                config=config,
                profile=profile,
                rows=rows,
                window_start_ms=start_ms,
                window_end_ms=end_ms,
            )
            if concept is not None
            else None
        )
        message = None
        if result is None:
            message = "no captured predictions in the window"
        elif result.status == "insufficient_data":
            message = f"no feature has {config.drift.min_rows} rows with a value in the window (min_rows)"
        summary = summary.model_copy(
            update={
                "status": result.status if result else "insufficient_data",
                "message": message,
                "model_version": version.version,
                "reference_run_id": version.run_id,
                "window_start": facts.start,
                "window_end": facts.end,
                "window_rows": len(rows),
                "version_rows": len(outputs),
                "prediction": prediction_drift(result, profile, len(outputs)),
                "concept": outcome.model_dump(mode="json") if outcome else None,
                **(result_fields(result) if result else {}),
            }
        )
        signature = version.signature
        names = {f.name: category_names(None, f.categories) for f in signature.features}
        report = DriftReport(
            run=summary,
            window=facts,
            result=result,
            distributions={
                feature: plotted
                for feature, reference in profile.features.items()
                if (plotted := distribution(reference, window.columns.get(feature), names.get(feature)))
                is not None
            },
            prediction_distribution=(
                distribution(
                    profile.prediction, outputs, category_names(signature.classes, signature.class_names)
                )
                if profile.prediction is not None
                else None
            ),
            concept=summary.concept,
        )
        self.artifacts.put(
            report_key(summary, "json"), report.model_dump_json().encode(), content_type="application/json"
        )
        self.artifacts.put(
            report_key(summary, "html"), render_html(report).encode(), content_type="text/html; charset=utf-8"
        )
        return summary, result

    def _announce(self, summary: DriftRunSummary) -> None:
        if self.publisher is None:
            return
        event: DriftDetected | DriftRunFailed | None = None
        kinds = [
            kind for kind, found in (("data", summary.dataset_drift), ("concept", _concept(summary))) if found
        ]
        if summary.status == "failed":
            event = DriftRunFailed(
                model_name=summary.model_name, run_id=summary.run_id, error=summary.message or "failed"
            )
        elif kinds and summary.model_version is not None:
            concept = summary.concept or {}
            event = DriftDetected(
                model_name=summary.model_name,
                model_version=summary.model_version,
                run_id=summary.run_id,
                kinds=kinds,
                drifted_features=summary.drifted_features,
                drift_share=summary.drift_share,
                live_metric=concept.get("live_metric"),
                baseline_metric=concept.get("baseline_metric"),
                window_start=summary.window_start or summary.started_at,
                window_end=summary.window_end or summary.started_at,
                window_rows=summary.window_rows,
            )
        if event is None:
            return
        try:
            self.publisher.publish(event)
        except Unavailable as error:  # the run is recorded; the event is the notification
            LOGGER.warning("event %s not published: %s", event.detail_type(), error.message)


def _concept(summary: DriftRunSummary) -> bool:
    return bool(summary.concept and summary.concept.get("drifted"))


def _message(error: Exception) -> str:
    if isinstance(error, MlopsError):
        return error.message
    return f"internal error ({type(error).__name__}); see the drift function's logs"
