"""The registry's domain events (published after the transaction that they announce)."""

from __future__ import annotations

from mlops_core.events import DomainEvent


class ModelVersionRegistered(DomainEvent):
    model_name: str
    version: int
    run_id: str | None
    artifact_sha256: str
    metrics: dict[str, float]
    actor: str | None


class ModelPromoted(DomainEvent):
    model_name: str
    alias: str
    from_version: int | None
    to_version: int
    revision: int
    actor: str | None
    reason: str


class ModelRolledBack(ModelPromoted):
    """The alias went back to the version it named before (``to_version``)."""


REGISTRY_EVENTS: tuple[type[DomainEvent], ...] = (ModelVersionRegistered, ModelPromoted, ModelRolledBack)
