"""The world the rollout integration tests share: the registry with v1 in production and
v2-v4 registered (the ``versions`` fixture), the API's service with a fake workflow, the
workflow's steps, and traffic counted as the capture function counts it."""

from __future__ import annotations

from typing import Any

from mlops_core.errors import Unavailable
from mlops_core.events import DomainEvent
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.repository import RoutingRepository
from mlops_core.routing.rollout.entities import RolloutRequest
from mlops_core.routing.rollout.service import RolloutService
from mlops_core.routing.rollout.steps import RolloutSteps
from mlops_core.routing.state import latency_bucket
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from tests.support import BUCKET, TABLE

MODEL = "breast-cancer"
PRODUCTION, CANDIDATE = 1, 2


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def publish(self, event: DomainEvent) -> None:
        self.events.append(event)

    def names(self) -> list[str]:
        return [e.detail_type() for e in self.events]


class FakeWorkflow:
    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.started: list[tuple[str, dict[str, Any]]] = []
        self.stopped: list[str] = []

    def execution_arn(self, rollout_id: str) -> str:
        return f"arn:aws:states:us-east-1:123456789012:execution:rollout:{rollout_id}"

    def start(self, rollout_id: str, execution_input: dict[str, Any]) -> str:
        if self.fail:
            raise Unavailable("rollout workflow is throttled")
        self.started.append((rollout_id, execution_input))
        return self.execution_arn(rollout_id)

    def stop(self, rollout_id: str, *, cause: str) -> None:
        self.stopped.append(rollout_id)


class World:
    """The registry with v1 in production, the API's service and the workflow's steps."""

    def __init__(self, versions: list[int]) -> None:
        self.table = MetadataTable(TABLE)
        self.publisher = RecordingPublisher()
        self.registry = ModelRegistry(self.table, ArtifactStore(BUCKET), self.publisher)  # type: ignore[arg-type]
        self.registry.set_alias(MODEL, "production", PRODUCTION)
        self.workflow = FakeWorkflow()
        self.service = RolloutService(
            self.table,
            registry=self.registry,
            publisher=self.publisher,
            workflow=self.workflow,  # type: ignore[arg-type]
        )
        self.steps = RolloutSteps(
            self.table, registry=self.registry, publisher=self.publisher, max_wait_seconds=30
        )  # type: ignore[arg-type]
        self.routing = RoutingRepository(self.table)
        self.versions = versions

    def start(self, **changes: Any) -> str:
        request = {"candidate_version": CANDIDATE, "bake_seconds": 600} | changes
        return self.service.start(MODEL, RolloutRequest.model_validate(request), actor="alice").rollout_id

    def traffic(self, version: int, calls: int, errors: int = 0, latency_ms: float = 3.0) -> None:
        """What the capture function adds for ``calls`` calls of ``version``."""
        counts = {"calls": calls, "errors": errors, f"latency_{latency_bucket(latency_ms)}": calls}
        self.table.transact([self.routing.add_to_variant_op(MODEL, version, counts)])

    def policy(self) -> dict[str, Any]:
        stored = self.routing.routing(MODEL, consistent=True)
        assert stored is not None
        return stored.policy.model_dump(mode="json", exclude_none=True)

    def production(self) -> int:
        return self.registry.get_alias(MODEL, "production", consistent=True).version


SINGLE_PRODUCTION = {"type": "single", "alias": "production"}
