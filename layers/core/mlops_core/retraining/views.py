"""Reading the retraining loop's decisions (``GET /models/{name}/retraining[/{decision_id}]``,
``mlops retrain list|show``), each joined with what it started: the training run (its status,
dataset, the gate's evaluation, its failure) and the version it registered, if any.

The decision records the run id when it is made; how the run ended is read from the run's
own record at the time of asking, so the answer is never staler than the run.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from mlops_core.errors import Invalid, NotFound
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.retraining.entities import RetrainDecision
from mlops_core.retraining.repository import RetrainingRepository
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.training.tracking import RunTracker

#: The run record's fields shown beside a decision.
RUN_FIELDS = ("status", "dataset", "evaluation", "failure", "registered_version", "started_at", "ended_at")


class TrainingRunOutcome(BaseModel):
    """The training run a decision started, as its record says now."""

    run_id: str
    status: str | None = Field(None, description="RUNNING, SUCCEEDED, REJECTED (by the gate) or FAILED")
    dataset: dict[str, Any] | None = Field(None, description="The dataset it trained on (key, rows, sha256)")
    evaluation: dict[str, Any] | None = Field(
        None, description="The gate's evaluation: passed, reason, metrics"
    )
    failure: dict[str, Any] | None = None
    registered_version: int | None = None
    started_at: str | None = None
    ended_at: str | None = None
    found: bool = Field(True, description="False when the run has no record (yet)")


class RetrainDecisionView(BaseModel):
    decision: RetrainDecision
    training_run: TrainingRunOutcome | None = Field(description="The run it started (null when skipped)")
    registered_version: int | None = Field(
        description="The version that run registered, if it passed the gate"
    )
    version_path: str | None = Field(description="GET it for the version (its card: .../card)")
    drift_run_path: str | None = Field(description="The drift run the decision came from")


class RetrainingViews:
    def __init__(self, table: MetadataTable) -> None:
        self.repository = RetrainingRepository(table)
        self.registry = RegistryLookup(table)
        self.tracker = RunTracker(table)

    def decisions(self, name: str, *, limit: int = 50) -> list[RetrainDecision]:
        """The model's decisions, newest first (404 for an unknown model)."""
        self.registry.get_model(name)
        return self.repository.decisions(name, limit=limit)

    def decision(self, name: str, decision_id: str) -> RetrainDecisionView:
        found = self.repository.decision(name, decision_id)
        if found is None:
            self.registry.get_model(name)
            raise NotFound(f"model '{name}' has no retraining decision '{decision_id}'")
        run = self._run(found.run_id) if found.run_id else None
        version = run.registered_version if run else None
        return RetrainDecisionView(
            decision=found,
            training_run=run,
            registered_version=version,
            version_path=f"/models/{name}/versions/{version}" if version else None,
            drift_run_path=f"/models/{name}/drift-runs/{found.drift_run_id}" if found.drift_run_id else None,
        )

    def _run(self, run_id: str) -> TrainingRunOutcome:
        try:
            record = self.tracker.get(run_id)
        except (NotFound, Invalid):
            return TrainingRunOutcome(run_id=run_id, found=False)
        return TrainingRunOutcome.model_validate({k: record.get(k) for k in RUN_FIELDS} | {"run_id": run_id})
