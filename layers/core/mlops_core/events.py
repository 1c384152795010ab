"""Domain events: what every event the project publishes on EventBridge has in common.

Every event has ``source = "serverless-mlops"`` and ``detail-type`` = its schema's class
name; ``detail`` is the schema's JSON. Each domain declares its own events (for example
``mlops_core.registry.events``) and ``mlops_core.storage.eventbridge`` publishes them;
rules in the CDK app match on these fields, and consumers can validate what they receive
with the same pydantic models (docs/events.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

EVENT_SOURCE = "serverless-mlops"


class DomainEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def detail_type(cls) -> str:
        return cls.__name__
