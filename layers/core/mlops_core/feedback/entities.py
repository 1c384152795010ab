"""Feedback on one prediction, as the prediction log keeps it beside the prediction.

``PREDICTION#{id} / FEEDBACK`` is written once (conditioned on not existing) by the
feedback function and names the version that served the prediction, copied from the
captured prediction: the reward is credited to that arm, whatever the routing policy
says by the time the feedback arrives. The rewards updater marks it ``counted_at`` in the
same transaction that adds it to the arm, so it counts exactly once.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class FeedbackRecord(BaseModel):
    model_config = ConfigDict(frozen=True)

    prediction_id: str
    model_name: str
    model_version: int = Field(description="The version that served the prediction")
    reward: float | None = Field(
        description="0 or 1 (given, or derived from the label); None when a label gives no reward "
        "(a regression label without a reward rule)"
    )
    label: Any = Field(default=None, description="The true outcome, when the caller sent one")
    prediction: Any = Field(default=None, description="What the model answered (for concept drift)")
    at_ms: int = Field(description="When the feedback was recorded (Unix ms)")
    prediction_at_ms: int = Field(description="When the prediction was made (Unix ms)")
    counted_at: str | None = Field(default=None, description="When the rewards updater counted it")
