"""What the retraining loop records: its claim on a model's next run, and each decision."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Outcome = Literal["started", "skipped", "duplicate", "ignored"]
ClaimState = Literal["claimed", "started", "released"]


class RetrainClaim(BaseModel):
    """``MODEL#{name} / RETRAINING``: who is starting the model's retraining run now, and the
    last run that was started (the cooldown counts from it)."""

    model_config = ConfigDict(extra="ignore")

    model_name: str
    claim_event_id: str | None = None
    claim_drift_run_id: str | None = None
    claim_run_id: str | None = None
    claim_at_ms: int | None = None
    claim_state: ClaimState | None = None
    claim_dataset_key: str | None = Field(None, description="The dataset version chosen for the claim")
    claim_dataset_event: str | None = Field(None, description="The event that chose claim_dataset_key")
    last_run_id: str | None = None
    last_started_at_ms: int | None = None
    last_event_id: str | None = None
    last_drift_run_id: str | None = None
    last_dataset_key: str | None = None


class DatasetCounts(BaseModel):
    """How the retraining dataset was made: captured rows, which had labels, which were used."""

    model_config = ConfigDict(extra="forbid")

    captured: int = Field(0, description="Captured predictions in the drift window")
    feedback: int = Field(0, description="Feedback recorded on the model since the window started")
    labelled: int = Field(0, description="Captured rows joined with a feedback label (used)")
    skipped: dict[str, int] = Field(default_factory=dict, description="Captured rows left out, by reason")
    training_rows: int = Field(0, description="Rows taken from the production version's training data")
    rows: int = Field(0, description="Rows of the dataset written")


class RetrainDecision(BaseModel):
    """``MODEL#{name} / RETRAIN#{at}#{event}``: what one DriftDetected event led to, and why."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    event_id: str
    drift_run_id: str
    kinds: list[str]
    outcome: Outcome
    reason: str
    at: str
    run_id: str | None = None
    dataset_key: str | None = None
    counts: DatasetCounts | None = None
