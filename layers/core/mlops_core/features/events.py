"""The feature store's events (EventBridge, source ``serverless-mlops``; docs/events.md)."""

from __future__ import annotations

from mlops_core.events import DomainEvent


class FeatureViewApplied(DomainEvent):
    """A new version of a view was registered (``mlops features apply``)."""

    view: str
    version: int
    previous_version: int | None
    changes: list[str]
    applied_by: str | None


class FeatureMaterializationRequested(DomainEvent):
    """An on-demand materialization to run (``POST /feature-views/{view}/materializations``):
    a rule delivers it to the materialize function, asynchronously (API Gateway would stop
    waiting after 29 s)."""

    view: str
    run_id: str
    start_ms: int | None
    end_ms: int | None
    full: bool = False


class FeatureMaterializationFailed(DomainEvent):
    view: str
    run_id: str
    trigger: str
    error: str


FEATURE_EVENTS: tuple[type[DomainEvent], ...] = (
    FeatureViewApplied,
    FeatureMaterializationRequested,
    FeatureMaterializationFailed,
)
