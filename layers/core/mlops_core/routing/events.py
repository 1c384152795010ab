"""The routing domain's events (published after the transaction that they announce)."""

from __future__ import annotations

from typing import Any

from mlops_core.events import DomainEvent


class RoutingPolicyChanged(DomainEvent):
    model_name: str
    revision: int
    policy: dict[str, Any]
    previous: dict[str, Any] | None
    actor: str | None
    reason: str


ROUTING_EVENTS: tuple[type[DomainEvent], ...] = (RoutingPolicyChanged,)
