"""The scheduled dispatcher: every tick of the template's schedule (``rate(5 minutes)``,
``DISPATCH_MINUTES``) runs the monitored models that are due, one after another, within the
invocation's time.

Before each run the model's ``last_run_at`` is claimed with a conditional write, so an
overlapping or redelivered tick never runs a model twice. Models are taken most overdue
first; once less than ``reserve_seconds`` plus 1.5 times the slowest run so far is left,
the rest are not started: they stay due and are first in line at the next tick (nothing
starves: a model's own claim moves it to the back). One model's failure to be recorded
does not stop the others.

Why one invocation in turn rather than one per model (fan-out by asynchronous
self-invocation, or an EventBridge Scheduler schedule per model): docs/decision_log.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mlops_core.clock import iso
from mlops_core.monitoring.records import ConceptEvaluator, new_run_id
from mlops_core.monitoring.runner import DriftRunner, RunOutcome
from mlops_core.monitoring.service import MonitoringService

LOGGER = logging.getLogger(__name__)


@dataclass
class Dispatched:
    due: int = 0
    outcomes: list[RunOutcome] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)  # due, left for the next tick
    claimed_elsewhere: list[str] = field(default_factory=list)
    not_recorded: list[str] = field(default_factory=list)


def dispatch(
    service: MonitoringService,
    runner: DriftRunner,
    *,
    remaining_seconds: Callable[[], float],
    reserve_seconds: float,
    concept: ConceptEvaluator | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_outcome: Callable[[RunOutcome], None] = lambda _: None,
) -> Dispatched:
    due = service.due()
    done = Dispatched(due=len(due))
    slowest = 0.0
    for stored in due:
        if remaining_seconds() < reserve_seconds + 1.5 * slowest:
            done.deferred.append(stored.model_name)
            continue
        now = clock()
        run_id = new_run_id(now)
        if not service.repository.claim_scheduled_run(stored, at=iso(now), run_id=run_id):
            done.claimed_elsewhere.append(stored.model_name)
            continue
        began = time.perf_counter()
        try:
            outcome = runner.run(
                stored.model_name, run_id, trigger="schedule", config=stored.config, concept=concept
            )
        except Exception:
            LOGGER.exception("drift run %s of %s could not be recorded", run_id, stored.model_name)
            done.not_recorded.append(stored.model_name)
            continue
        slowest = max(slowest, time.perf_counter() - began)
        done.outcomes.append(outcome)
        on_outcome(outcome)
    return done
