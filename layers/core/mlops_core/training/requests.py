"""What starts a training run: the workflow's input, and what can be checked before it starts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_core.registry.entities import ALIAS_PATTERN, MODEL_NAME_PATTERN
from mlops_core.storage.dynamo import serialize
from mlops_core.training.estimators import CandidateSpec, SearchSpec, check_candidate, expand
from mlops_core.training.tracking import RUN_ID_PATTERN


class InvalidTrainingRequest(Exception):
    """The execution input is wrong (unknown family, bad hyper-parameters, bad keys)."""


class TrainingRequest(BaseModel):
    """The state machine's input."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(pattern=RUN_ID_PATTERN, description="Also the execution's name")
    model_name: str = Field(pattern=MODEL_NAME_PATTERN)
    dataset_key: str = Field(min_length=1, description="CSV in the artifacts bucket")
    schema_key: str | None = Field(default=None, description="Defaults to schema.json beside the dataset")
    expectations_key: str | None = None
    target_metric: str | None = Field(
        default=None, description="roc_auc for classification, rmse for regression"
    )
    threshold: float | None = Field(default=None, description="The gate: the candidate must reach this")
    tolerance: float = Field(
        default=0.0, ge=0, description="How much worse than the champion is still accepted"
    )
    candidates: list[CandidateSpec] | None = None
    search: SearchSpec | None = None
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    validation_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    promote_to: str | None = Field(default=None, pattern=ALIAS_PATTERN, description="Alias to set on success")

    @model_validator(mode="after")
    def _fractions(self) -> TrainingRequest:
        if self.holdout_fraction + self.validation_fraction >= 0.8:
            raise ValueError("holdout_fraction + validation_fraction must leave at least 20% to train on")
        if self.promote_to == "production":
            raise ValueError(
                "training may set 'staging' or another alias; promotion to production is a registry call"
            )
        return self


def check_before_start(request: TrainingRequest) -> None:
    """What can be checked without the dataset, so that a bad request is a 422 at
    ``POST /training`` rather than a run that fails later: the candidates' families and
    hyper-parameters (ValidateData checks the family's task against the dataset), and that
    the request can be kept in the run record (DynamoDB's numbers, no empty map keys)."""
    for index, spec in enumerate(expand(request.candidates, request.search)):
        check_candidate(spec, None, index)
    serialize(request.model_dump(mode="json"))
