"""Domain events on EventBridge, with their schemas.

Every event has ``source = "serverless-mlops"`` and ``detail-type`` = the schema's class
name; ``detail`` is the schema's JSON. Rules in ``infra/`` match on these; consumers can
validate what they receive with the same pydantic models.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from mlops_core.aws import client, translate_errors
from mlops_core.errors import Unavailable

EVENT_SOURCE = "serverless-mlops"


class DomainEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def detail_type(cls) -> str:
        return cls.__name__


class TrainingRunFailed(DomainEvent):
    run_id: str | None
    model_name: str | None
    error: str
    cause: str


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


EVENT_TYPES: dict[str, type[DomainEvent]] = {
    cls.detail_type(): cls
    for cls in (TrainingRunFailed, ModelVersionRegistered, ModelPromoted, ModelRolledBack)
}


class EventPublisher:
    what = "event bus"

    def __init__(self, bus_name: str) -> None:
        self.bus_name = bus_name

    def publish(self, event: DomainEvent) -> None:
        entry: dict[str, Any] = {
            "Source": EVENT_SOURCE,
            "DetailType": event.detail_type(),
            "Detail": event.model_dump_json(),
            "EventBusName": self.bus_name,
        }
        with translate_errors(self.what):
            response = client("events").put_events(Entries=[entry])
        if response.get("FailedEntryCount"):
            failure = response["Entries"][0]
            raise Unavailable(
                f"{self.what} refused {event.detail_type()}: {failure.get('ErrorCode', 'error')}"
            )
