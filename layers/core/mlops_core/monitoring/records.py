"""What the registry keeps about monitoring: a model's stored configuration (with when it last
ran) and one summary per drift run; the ids of runs; and the hook a concept-drift evaluator
plugs into a run.

A drift run's id starts with the time it was started (UTC, to the millisecond), so its
sort key (``keys.drift_run_sk(started_at, run_id)``) can be rebuilt from the id alone:
``GET /models/{name}/drift-runs/{run_id}`` is one GetItem, not a search of the history.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.clock import iso
from mlops_core.data.profiles import ReferenceProfile
from mlops_core.monitoring.config import MonitoringConfig
from mlops_core.serving.capture import CapturedPrediction

#: ``running`` until the run ends; ``drift`` / ``no_drift`` as the data decided (dataset
#: level); ``insufficient_data`` when no feature had ``min_rows`` values in the window;
#: ``no_reference`` when there is nothing to compare with (no production version, a version
#: without a training run, a run without a reference profile); ``failed`` on an error.
RunStatus = Literal["running", "drift", "no_drift", "insufficient_data", "no_reference", "failed"]
FINAL_STATUSES: frozenset[str] = frozenset(
    {"drift", "no_drift", "insufficient_data", "no_reference", "failed"}
)
Trigger = Literal["schedule", "on_demand"]

RUN_ID_PATTERN = r"^\d{8}T\d{9}Z-[0-9a-f]{8}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)


def new_run_id(at: datetime) -> str:
    """``20261201T120000123Z-1f2e3d4c``: the start time (ms) and 32 random bits."""
    moment = at.astimezone(UTC)
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{secrets.token_hex(4)}"


def run_started_at(run_id: str) -> str | None:
    """The ISO start time a run id carries (None if it is not a drift run id)."""
    if not _RUN_ID.match(run_id):
        return None
    try:
        moment = datetime.strptime(run_id[:15], "%Y%m%dT%H%M%S").replace(
            tzinfo=UTC, microsecond=int(run_id[15:18]) * 1000
        )
    except ValueError:
        return None
    return iso(moment)


class StoredMonitoring(BaseModel):
    """``MODEL#{name} / MONITORING``: the configuration in force and the dispatcher's clock."""

    model_config = ConfigDict(extra="ignore")

    model_name: str
    config: MonitoringConfig
    revision: int = Field(0, description="Changes with every PUT (0: never configured)")
    updated_at: str | None = None
    actor: str | None = None
    last_run_at: str | None = Field(None, description="When the last scheduled run was started")
    last_run_id: str | None = None


class PredictionDrift(BaseModel):
    """The output's test, on the rows the production version served."""

    model_config = ConfigDict(extra="forbid")

    status: str
    drifted: bool = False
    rows: int = 0
    effect_size: float | None = None
    p_value: float | None = None
    message: str | None = None


class RetrainingLink(BaseModel):
    """What a drift run's ``DriftDetected`` led to in the retraining loop (written on the run's
    item by the retrain function once it decided; ``GET /models/{name}/retraining/{decision_id}``)."""

    model_config = ConfigDict(extra="ignore")

    decision_id: str
    outcome: str = Field(description="started, skipped (the reason says why)")
    reason: str
    run_id: str | None = Field(None, description="The training run started, if one was")
    at: str


class DriftRunSummary(BaseModel):
    """``MODEL#{name} / DRIFT#{started_at}#{run_id}``: one run, as the history lists it."""

    model_config = ConfigDict(extra="ignore")

    model_name: str
    run_id: str
    trigger: Trigger
    status: RunStatus
    started_at: str
    finished_at: str | None = None
    message: str | None = Field(None, description="Why a run ended as it did, when that needs saying")
    model_version: int | None = Field(None, description="The production version the window was compared for")
    reference_run_id: str | None = Field(None, description="The training run whose profile is the reference")
    window_start: str | None = None
    window_end: str | None = None
    window_rows: int = 0
    version_rows: int = Field(0, description="Rows of the window the production version served")
    tested_features: int = 0
    drifted_features: list[str] = Field(default_factory=list, description="By severity")
    drift_share: float = 0.0
    dataset_drift: bool = False
    missing_features: list[str] = Field(default_factory=list)
    unexpected_type_features: list[str] = Field(default_factory=list)
    unknown_features: list[str] = Field(default_factory=list)
    prediction: PredictionDrift | None = None
    #: Filled by a concept-drift evaluator (``ConceptEvaluator``), when one ran: its own
    #: summary (live metric, interval, baseline, detector state...). None otherwise.
    concept: dict[str, Any] | None = None
    seconds: float | None = Field(None, description="How long the run took")
    error: str | None = None
    retraining: RetrainingLink | None = Field(
        None, description="The retraining decision its DriftDetected led to (retraining on for the model)"
    )


class ConceptOutcome(BaseModel):
    """What a concept-drift evaluator reports for one run's window."""

    model_config = ConfigDict(extra="forbid")

    drifted: bool
    live_metric: float | None = None
    baseline_metric: float | None = None
    summary: dict[str, Any] = Field(default_factory=dict, description="Stored as the run's `concept`")


class ConceptEvaluator(Protocol):
    """The hook for concept drift (labelled feedback against the training baseline).

    ``DriftRunner.run(..., concept=evaluator)`` calls it once per run that got as far as a
    window (a production version with a reference profile), after the data-drift
    comparison, with the profile (its ``metric_baseline``) and the window's rows (every
    version's; the evaluator picks what it needs). Its outcome is stored as the run's ``concept``, added
    to the report, and makes ``DriftDetected`` carry the kind ``concept`` when it drifted.
    An exception fails the run like any other.
    """

    def evaluate(
        self,
        *,
        model_name: str,
        model_version: int,
        config: MonitoringConfig,
        profile: ReferenceProfile,
        rows: list[CapturedPrediction],
        window_start_ms: int,
        window_end_ms: int,
    ) -> ConceptOutcome: ...
