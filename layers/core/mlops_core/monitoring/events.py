"""The monitoring domain's events (published after the drift run's summary is stored)."""

from __future__ import annotations

from typing import Literal

from mlops_core.events import DomainEvent


class DriftDetected(DomainEvent):
    """A drift run found data drift (the dataset-level decision) or concept drift (the live
    metric's interval below the training baseline, or ADWIN's alarm)."""

    model_name: str
    model_version: int  # the version that served the window
    run_id: str  # the drift run (GET /models/{name}/drift-runs/{run_id})
    kinds: list[Literal["data", "concept"]]
    drifted_features: list[str]
    drift_share: float
    live_metric: float | None
    baseline_metric: float | None
    window_start: str
    window_end: str
    window_rows: int


class DriftRunFailed(DomainEvent):
    model_name: str
    run_id: str
    error: str


MONITORING_EVENTS: tuple[type[DomainEvent], ...] = (DriftDetected, DriftRunFailed)
