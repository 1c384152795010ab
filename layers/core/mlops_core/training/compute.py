"""Where a run's candidates train: in the TrainCandidate Lambda function, or in a SageMaker
training job (the same fitting code, ``training_job``) when the dataset is larger than the
deployment's threshold or the request says ``compute: "sagemaker"`` (docs/training.md).

The local stack has no SageMaker (moto runs no training jobs): there it sets
``MLOPS_SAGEMAKER_UNAVAILABLE`` and a run asking for SageMaker is refused before it starts
(a 422), while the size threshold never applies (the Lambda trainer is the local default).
"""

from __future__ import annotations

from typing import Literal

from mlops_core.config.settings import TrainingComputeSettings
from mlops_core.errors import Invalid, detail
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.state import Candidate

Compute = Literal["lambda", "sagemaker"]


def check_available(requested: Compute | None, settings: TrainingComputeSettings) -> None:
    """``Invalid`` (a 422) when the request asks for SageMaker where there is none."""
    if requested == "sagemaker" and settings.sagemaker_unavailable:
        message = (
            f"compute 'sagemaker' is not available {settings.sagemaker_unavailable}; leave compute unset"
        )
        raise Invalid(message, details=[detail(["body", "compute"], message, "unavailable")])


def choose(requested: Compute | None, dataset_bytes: int, settings: TrainingComputeSettings) -> Compute:
    """The request's choice, else SageMaker above the threshold (where there is SageMaker)."""
    check_available(requested, settings)
    if requested is not None:
        return requested
    threshold = settings.sagemaker_threshold_bytes
    if threshold is not None and dataset_bytes > threshold and not settings.sagemaker_unavailable:
        return "sagemaker"
    return "lambda"


def job_input_key(run_id: str, candidate_id: str) -> str:
    """Where a SageMaker training job reads its candidate (hyper-parameters hold 2,500
    characters each: too few for a wide dataset's feature list)."""
    return keys.candidate_artifact(run_id, candidate_id, keys.TRAINING_JOB_INPUT_FILE)


def stage_for_jobs(store: ArtifactStore, candidates: list[Candidate]) -> None:
    """Write each candidate that trains on SageMaker where its job reads it."""
    for candidate in candidates:
        if candidate.compute == "sagemaker":
            store.put(
                job_input_key(candidate.run_id, candidate.candidate_id),
                candidate.model_dump_json().encode(),
                content_type="application/json",
            )
