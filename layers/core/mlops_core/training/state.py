"""The training workflow's state, step by step, as typed documents.

Step Functions passes these between the steps (S3 keys and ids, never the data); each
step validates what it receives and returns the next document. The shapes are the
contract with the state machine in ``infra/cdk/constructs/training.py`` (``$.candidates``
feeds the Map, whose results land in ``$.results``; the Gate reads ``$.evaluation.passed``).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.registry.signature import FeatureViewInput
from mlops_core.training.pruning import Curve, TrialPruning

Task = Literal["classification", "regression"]


class _State(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatasetRef(_State):
    key: str
    version_id: str | None
    sha256: str
    rows: int
    schema_key: str


class Candidate(_State):
    """One Map item: everything TrainCandidate needs, nothing it must look up."""

    run_id: str
    candidate_id: str
    family: str
    params: dict[str, Any]
    task: Task
    dataset: DatasetRef
    features: list[str]
    #: The feature views the dataset was built from (a point-in-time training set): written
    #: into the candidate's signature, so the registered version names them.
    feature_views: list[FeatureViewInput] | None = Field(default=None, exclude_if=lambda v: v is None)
    target: str
    seed: int
    holdout_fraction: float
    validation_fraction: float
    target_metric: str
    compute: Literal["lambda", "sagemaker"] = "lambda"
    #: A search trial that may be pruned (its family trains in steps, a pruner is declared).
    pruning: TrialPruning | None = Field(default=None, exclude_if=lambda v: v is None)


class _Trained(_State):
    """Which candidate a TrainCandidate result is of."""

    candidate_id: str
    family: str
    params: dict[str, Any]
    seed: int


class CandidateResult(_Trained):
    """What TrainCandidate returns (one Map iteration's result)."""

    artifact_key: str
    artifact_version_id: str | None
    sha256: str
    validation_metrics: dict[str, float]
    train_rows: int
    validation_rows: int
    duration_seconds: float
    package_versions: dict[str, str]
    #: A trial trained in steps: its validation curve, for the study's pruner.
    curve: Curve | None = Field(default=None, exclude_if=lambda v: v is None)


class PrunedResult(_Trained):
    """What TrainCandidate returns for a trial its pruner stopped: no model, its last step."""

    state: Literal["PRUNED"] = "PRUNED"
    step: int = Field(description="The last step trained (iterations or trees)")
    value: float = Field(description="The validation metric at that step")
    metric: str
    curve: Curve
    train_rows: int
    validation_rows: int
    duration_seconds: float


class RunState(_State):
    """What every step after ValidateData carries."""

    run_id: str
    model_name: str
    task: Task
    dataset: DatasetRef
    features: list[str]
    target: str
    target_metric: str
    threshold: float | None
    tolerance: float
    seed: int
    holdout_fraction: float
    validation_fraction: float
    promote_to: str | None
    reference_profile_key: str
    compute: Literal["lambda", "sagemaker"] = "lambda"


class ValidatedState(RunState):
    """ValidateData's output: the Map iterates over ``candidates``."""

    candidates: list[Candidate]


class TrainedState(ValidatedState):
    """SelectBest's input: the Map's results beside the candidates."""

    results: list[CandidateResult]


class SelectedState(RunState):
    """SelectBest's output, Evaluate's input."""

    best: CandidateResult


class Evaluation(_State):
    passed: bool
    reason: str
    metric: str
    holdout_metrics: dict[str, float]
    holdout_rows: int
    threshold: float | None
    tolerance: float
    champion: dict[str, Any] | None


class EvaluatedState(SelectedState):
    """Evaluate's output; the Gate reads ``evaluation.passed``; RegisterModel's input."""

    evaluation: Evaluation


class Registered(_State):
    """RegisterModel's output, the execution's result."""

    run_id: str
    model_name: str
    version: int
    artifact_sha256: str
    holdout_metrics: dict[str, float]
    alias: str | None


class SearchState(RunState):
    """An Optuna search between rounds: ValidateData's and SearchRound's output, the trial
    Map's input (``candidates``: this round's trials), and SearchRound's input again with the
    Map's ``results`` (a TrainCandidate result, or the trial with ``error`` when it failed)."""

    search: dict[str, Any]
    search_round: int
    #: The views a run on feature views trains from: each trial's signature names them.
    feature_views: list[FeatureViewInput] | None = Field(default=None, exclude_if=lambda v: v is None)
    candidates: list[Candidate]
    results: list[dict[str, Any]] = []
