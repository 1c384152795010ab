"""How a model is monitored: kept in the registry (``MODEL#{name} / MONITORING``), set with
``PUT /models/{name}/monitoring`` and ``mlops drift configure``; defaults that work.

One template schedule (``rate(5 minutes)``) invokes the drift function, which runs each
enabled model whose ``every_minutes`` has passed since its last run; ``POST
/models/{name}/drift-runs`` runs one now. A window is the last ``window_hours`` of captured
predictions (at most ``max_rows``, the newest), compared with the reference profile of the
run that trained the version serving in production; concept drift compares the live
metric on the window's labelled feedback with the training baseline.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.monitoring.entities import DriftSettings

#: How often the template's schedule looks for models that are due (docs/infrastructure.md).
DISPATCH_MINUTES = 5


class ConceptSettings(BaseModel):
    """Concept drift from labelled feedback on the window's predictions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_labels: int = Field(50, ge=1, description="below this many labelled predictions: insufficient data")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="of the live metric's interval")
    adwin_delta: float = Field(0.002, gt=0, lt=1, description="ADWIN's confidence parameter (early warning)")


class RetrainingSettings(BaseModel):
    """What a drift finding may start (off unless switched on per model)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="start a training run on DriftDetected")
    on: list[str] = Field(
        default_factory=lambda: ["data", "concept"], description="which findings start one: data, concept"
    )
    include_training_data: bool = Field(
        True, description="add the dataset the production version was trained on to the labelled window"
    )
    min_labelled_rows: int = Field(100, ge=1, description="fewer captured rows with labels: no run, reported")
    cooldown_hours: float = Field(24.0, ge=0, description="at most one retraining run per this many hours")


class MonitoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="scheduled runs (on-demand runs work either way)")
    every_minutes: int = Field(
        60, ge=DISPATCH_MINUTES, le=7 * 24 * 60, description=f"between scheduled runs (>= {DISPATCH_MINUTES})"
    )
    window_hours: float = Field(24.0, gt=0, le=24 * 30, description="captured predictions this far back")
    max_rows: int = Field(200_000, ge=100, le=2_000_000, description="the newest rows of the window at most")
    drift: DriftSettings = Field(default_factory=DriftSettings)
    concept: ConceptSettings = Field(default_factory=ConceptSettings)
    retraining: RetrainingSettings = Field(default_factory=RetrainingSettings)
