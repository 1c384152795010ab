"""docs/events.md lists exactly the events the domains declare."""

from __future__ import annotations

import re

from mlops_core.features.events import FEATURE_EVENTS
from mlops_core.monitoring.events import MONITORING_EVENTS
from mlops_core.registry.events import REGISTRY_EVENTS
from mlops_core.routing.events import ROUTING_EVENTS
from mlops_core.routing.rollout.events import ROLLOUT_EVENTS
from mlops_core.training.events import TRAINING_EVENTS
from tests.support import ROOT

DECLARED = (
    REGISTRY_EVENTS + ROUTING_EVENTS + ROLLOUT_EVENTS + TRAINING_EVENTS + MONITORING_EVENTS + FEATURE_EVENTS
)


def test_the_events_table_lists_every_declared_event_and_nothing_else() -> None:
    table = re.findall(r"^\| `([A-Za-z]+)` \|", (ROOT / "docs" / "events.md").read_text(), flags=re.M)
    assert sorted(table) == sorted(cls.detail_type() for cls in DECLARED)
