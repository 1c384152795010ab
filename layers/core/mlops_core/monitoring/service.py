"""The monitoring use cases: configure a model's drift monitoring, read it, record an
on-demand run, read the run history, and tell the scheduled dispatcher which models are due.

A configuration is validated in full before anything is written (pydantic for its shape;
here what needs the registry: thresholds must name features of the production version,
``min_rows`` must fit in ``max_rows``): 422 with a location per problem, 404 for an unknown
model, nothing saved on any error.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field

from mlops_core.clock import iso, parse_iso
from mlops_core.errors import Conflict, Invalid, NotFound, detail
from mlops_core.monitoring.config import DISPATCH_MINUTES, MonitoringConfig
from mlops_core.monitoring.records import DriftRunSummary, StoredMonitoring, Trigger, new_run_id
from mlops_core.monitoring.repository import MonitoringRepository
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.storage.dynamo import MetadataTable

#: A scheduled run is due this much before its period has passed: the dispatcher ticks every
#: DISPATCH_MINUTES (EventBridge may fire a little early or late), so an hourly model runs
#: hourly rather than every 65 minutes. Less than the shortest period, so never twice a tick.
DUE_SLACK = timedelta(seconds=90)
#: A run still ``running`` this long after it started did not finish (the drift function's
#: timeout is 15 minutes): it is shown as failed.
RUN_DEADLINE = timedelta(minutes=16)
HISTORY_LIMIT = 20


class MonitoringView(BaseModel):
    """``GET /models/{name}/monitoring``: the configuration in force (defaults when none was set)."""

    model_name: str
    configured: bool = Field(description="A configuration was stored (PUT); scheduled runs need one")
    scheduled: bool = Field(description="Configured and enabled: the dispatcher runs it every every_minutes")
    config: MonitoringConfig
    revision: int
    updated_at: str | None
    actor: str | None
    last_run_at: str | None = Field(description="When the last scheduled run started")
    last_run_id: str | None
    next_run_at: str | None = Field(
        description="When the next scheduled run is due (give or take a dispatch); null when not "
        "scheduled, or scheduled and never run (then at the next dispatch)"
    )
    dispatch_minutes: int = DISPATCH_MINUTES


class DriftOverview(BaseModel):
    """``GET /models/{name}/drift``: the latest finished run and the recent history."""

    model_name: str
    latest: DriftRunSummary | None = Field(description="The newest run that finished (not running)")
    history: list[DriftRunSummary] = Field(description="Newest first, running ones included")
    monitoring: MonitoringView


class MonitoringService:
    def __init__(
        self,
        table: MetadataTable,
        *,
        registry: RegistryLookup | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.repository = MonitoringRepository(table)
        self.registry = registry or RegistryLookup(table)
        self.clock = clock

    # ---- configuration ------------------------------------------------------------------
    def view(self, name: str) -> MonitoringView:
        self.registry.get_model(name)
        stored = self.repository.monitoring(name) or StoredMonitoring(
            model_name=name, config=MonitoringConfig()
        )
        return _view(stored)

    def configure(
        self,
        name: str,
        config: MonitoringConfig,
        *,
        actor: str | None = None,
        expected_revision: int | None = None,
    ) -> MonitoringView:
        """Store ``config`` (replacing the one in force); ``expected_revision`` makes it a
        compare-and-set (409 when the stored configuration is at another revision)."""
        self.registry.get_model(name)
        self._check(name, config)
        current = self.repository.monitoring(name, consistent=True)
        revision = current.revision if current else 0
        if expected_revision is not None and expected_revision != revision:
            raise Conflict(
                f"the monitoring of model '{name}' is at revision {revision}, not {expected_revision}",
                current={"revision": revision},
            )
        try:
            self.repository.save_config(
                name,
                config,
                revision=revision + 1,
                at=iso(self.clock()),
                actor=actor,
                expected_revision=revision,
            )
        except Conflict as error:
            raise Conflict(
                f"the monitoring of model '{name}' changed concurrently; read it again and retry"
            ) from error
        return self.view(name)

    def _check(self, name: str, config: MonitoringConfig) -> None:
        problems = []
        if config.drift.min_rows > config.max_rows:
            problems.append(
                detail(
                    ["body", "drift", "min_rows"],
                    f"min_rows {config.drift.min_rows} is more than max_rows {config.max_rows}: "
                    "every run would have insufficient data",
                    "min_rows_above_max_rows",
                )
            )
        if config.drift.thresholds:
            try:
                version = self.registry.resolve_alias(name, "production")
            except NotFound:
                version = None
            if version is not None:
                features = {f.name for f in version.signature.features}
                problems.extend(
                    detail(
                        ["body", "drift", "thresholds", feature],
                        f"version {version.version} (production) has no feature '{feature}'",
                        "unknown_feature",
                    )
                    for feature in sorted(set(config.drift.thresholds) - features)
                )
        if problems:
            raise Invalid(
                "the monitoring configuration cannot work: " + "; ".join(p["msg"] for p in problems),
                details=problems,
            )

    # ---- runs ---------------------------------------------------------------------------
    def start_run(self, name: str, *, trigger: Trigger = "on_demand") -> DriftRunSummary:
        """Record a ``running`` run of the model (404 for an unknown model)."""
        self.registry.get_model(name)
        now = self.clock()
        summary = DriftRunSummary(
            model_name=name, run_id=new_run_id(now), trigger=trigger, status="running", started_at=iso(now)
        )
        self.repository.start_run(summary)
        return summary

    def get_run(self, name: str, run_id: str) -> DriftRunSummary:
        run = self.repository.run(name, run_id)
        if run is None:
            self.registry.get_model(name)
            raise NotFound(f"model '{name}' has no drift run '{run_id}'")
        return self._as_seen(run)

    def runs(self, name: str, *, limit: int = 50) -> list[DriftRunSummary]:
        """The model's runs, newest first."""
        self.registry.get_model(name)
        return [self._as_seen(run) for run in self.repository.runs(name, limit=limit)]

    def overview(self, name: str, *, limit: int = HISTORY_LIMIT) -> DriftOverview:
        history = self.runs(name, limit=limit)
        latest = next((run for run in history if run.status != "running"), None)
        if latest is None and len(history) == limit:  # many runs in flight: look further back
            latest = next((run for run in self.runs(name, limit=200) if run.status != "running"), None)
        return DriftOverview(model_name=name, latest=latest, history=history, monitoring=self.view(name))

    def _as_seen(self, run: DriftRunSummary) -> DriftRunSummary:
        """A run left ``running`` past the function's timeout did not finish: say so."""
        if run.status == "running" and self.clock() - parse_iso(run.started_at) > RUN_DEADLINE:
            return run.model_copy(
                update={
                    "status": "failed",
                    "error": "did_not_finish",
                    "message": f"still running {RUN_DEADLINE.total_seconds() / 60:.0f} minutes after it "
                    "started: the drift function timed out or was stopped (see its logs)",
                }
            )
        return run

    # ---- the dispatcher -----------------------------------------------------------------
    def due(self) -> list[StoredMonitoring]:
        """Enabled models whose period has passed since their last scheduled run, most
        overdue first (never run: first of all)."""
        now = self.clock()
        due = []
        for stored in self.repository.monitored():
            if not stored.config.enabled:
                continue
            if stored.last_run_at is None:
                due.append((datetime.min.replace(tzinfo=UTC), stored))
                continue
            next_at = parse_iso(stored.last_run_at) + timedelta(minutes=stored.config.every_minutes)
            if next_at - DUE_SLACK <= now:
                due.append((next_at, stored))
        due.sort(key=lambda pair: (pair[0], pair[1].model_name))
        return [stored for _, stored in due]


def _view(stored: StoredMonitoring) -> MonitoringView:
    configured = stored.revision > 0
    scheduled = configured and stored.config.enabled
    next_run_at = None
    if scheduled and stored.last_run_at:
        next_run_at = iso(parse_iso(stored.last_run_at) + timedelta(minutes=stored.config.every_minutes))
    return MonitoringView(
        model_name=stored.model_name,
        configured=configured,
        scheduled=scheduled,
        config=stored.config,
        revision=stored.revision,
        updated_at=stored.updated_at,
        actor=stored.actor,
        last_run_at=stored.last_run_at,
        last_run_id=stored.last_run_id,
        next_run_at=next_run_at,
    )
