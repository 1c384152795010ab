"""The training workflow's domain events."""

from __future__ import annotations

from mlops_core.events import DomainEvent


class TrainingRunFailed(DomainEvent):
    run_id: str | None
    model_name: str | None
    error: str
    cause: str


TRAINING_EVENTS: tuple[type[DomainEvent], ...] = (TrainingRunFailed,)
