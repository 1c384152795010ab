"""The event bus adapter: domain events onto the project's EventBridge bus."""

from __future__ import annotations

from typing import Any

from mlops_core.errors import Unavailable
from mlops_core.events import EVENT_SOURCE, DomainEvent
from mlops_core.storage.clients import client, translate_errors


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
