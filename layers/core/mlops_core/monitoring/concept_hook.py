"""The drift runner's concept hook, filled by ``concept_window``: the window's labelled
feedback against the training baseline, its outcome in the runner's terms."""

from __future__ import annotations

from typing import Any

from mlops_core.monitoring.concept_window import ConceptWindowEvaluator
from mlops_core.monitoring.records import ConceptOutcome


class ConceptHook:
    """A ``records.ConceptEvaluator``: ``ConceptWindowEvaluator.evaluate``, reported as a
    ``ConceptOutcome`` (the whole result kept as the run's ``concept``)."""

    def __init__(self, evaluator: ConceptWindowEvaluator) -> None:
        self.evaluator = evaluator

    def evaluate(self, **window: Any) -> ConceptOutcome:
        result = self.evaluator.evaluate(**window)
        return ConceptOutcome(
            drifted=result.drifted,
            live_metric=result.live_metric,
            baseline_metric=result.baseline_metric,
            summary=result.model_dump(mode="json"),
        )
