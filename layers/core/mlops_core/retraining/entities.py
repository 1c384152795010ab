"""What the retraining loop records: its claim on a model's next run, and each decision."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_core.clock import iso, parse_iso

#: A decision's id: when it was made (UTC, to the millisecond) and 32 bits of its event's id,
#: ``20261201T120000123Z-1f2e3d4c`` (the shape of a drift run's id). The time rebuilds the
#: sort key's prefix, so one decision is one Query of a millisecond's items, not a search.
DECISION_ID_PATTERN = r"^\d{8}T\d{9}Z-[0-9a-f]{8}$"
_DECISION_ID = re.compile(DECISION_ID_PATTERN)

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


def decision_id(at: str, event_id: str) -> str:
    """The id of the decision made at ``at`` (ISO 8601, ms) on the event ``event_id``."""
    moment = parse_iso(at).astimezone(UTC)
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:8]
    return f"{moment:%Y%m%dT%H%M%S}{moment.microsecond // 1000:03d}Z-{digest}"


def decided_at(decision_id: str) -> str | None:
    """The ISO time a decision id carries (None if it is not one)."""
    if not _DECISION_ID.match(decision_id):
        return None
    try:
        moment = parse_iso(
            f"{decision_id[0:4]}-{decision_id[4:6]}-{decision_id[6:8]}T{decision_id[9:11]}:"
            f"{decision_id[11:13]}:{decision_id[13:15]}.{decision_id[15:18]}Z"
        )
    except ValueError:
        return None
    return iso(moment)


class RetrainDecision(BaseModel):
    """``MODEL#{name} / RETRAIN#{at}#{event}``: what one DriftDetected event led to, and why."""

    model_config = ConfigDict(extra="forbid")

    decision_id: str = Field("", description="GET /models/{name}/retraining/{decision_id}")
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

    @model_validator(mode="before")
    @classmethod
    def _with_id(cls, data: Any) -> Any:
        """The id from the time and the event (stored decisions written before it had one too)."""
        if isinstance(data, dict) and not data.get("decision_id") and data.get("at") and data.get("event_id"):
            try:
                return {**data, "decision_id": decision_id(str(data["at"]), str(data["event_id"]))}
            except ValueError:
                return data
        return data
