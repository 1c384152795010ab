"""The rollout's domain events (published after the writes they announce). The routing
changes and the promotion a rollout makes publish their own (RoutingPolicyChanged,
ModelPromoted, ModelRolledBack)."""

from __future__ import annotations

from typing import Any, Literal

from mlops_core.events import DomainEvent


class RolloutStarted(DomainEvent):
    model_name: str
    rollout_id: str
    candidate_version: int
    production_version: int
    steps: list[int]
    bake_seconds: int
    actor: str | None
    reason: str


class RolloutCompleted(DomainEvent):
    """The candidate served every step within its guardrails and is now production."""

    model_name: str
    rollout_id: str
    candidate_version: int
    from_version: int
    steps: list[int]
    actor: str | None


class RolloutRolledBack(DomainEvent):
    """Traffic (and, if Promote had moved it, the production alias) is back on production."""

    model_name: str
    rollout_id: str
    candidate_version: int
    production_version: int
    cause: Literal["guardrail", "error", "aborted"]
    step: int | None
    percent: int | None
    tripped: list[dict[str, Any]]
    message: str
    actor: str | None


ROLLOUT_EVENTS: tuple[type[DomainEvent], ...] = (RolloutStarted, RolloutCompleted, RolloutRolledBack)
