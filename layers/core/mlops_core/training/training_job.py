"""A candidate trained by a SageMaker training job, and the step that collects it.

The job runs ``run_job`` (infra/sagemaker/launcher.py starts it inside the scikit-learn
framework container, with the layers' exact pins): the same ``fit_candidate`` as the
TrainCandidate function, so the same ONNX, signature and validation metrics land in the
same keys. It writes its ``CandidateResult`` beside them (it has no access to the
metadata table); CollectTrainingJob, a Lambda step after the ``.sync`` task, reads that
result, checks the artifact's checksum and records the candidate as TrainCandidate does.
"""

from __future__ import annotations

import json
from typing import Any

from mlops_core.registry.signature import sha256_hex
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.compute import job_input_key
from mlops_core.training.requests import InvalidTrainingRequest
from mlops_core.training.state import Candidate, CandidateResult
from mlops_core.training.steps import fit_candidate
from mlops_core.training.tracking import RunTracker

#: Where the workflow puts the .sync task's answer (DescribeTrainingJob) on the Map item.
JOB_RESULT_FIELD = "training_job"


def result_key(candidate: Candidate) -> str:
    return keys.candidate_artifact(candidate.run_id, candidate.candidate_id, keys.TRAINING_JOB_RESULT_FILE)


def run_job(run_id: str, candidate_id: str, store: ArtifactStore) -> CandidateResult:
    """Inside the training job: fit the staged candidate, write its result beside its model."""
    candidate = Candidate.model_validate_json(store.get(job_input_key(run_id, candidate_id)).data)
    result = fit_candidate(candidate.model_dump(mode="json"), store)
    store.put(
        result_key(candidate), result.model_dump_json(indent=2).encode(), content_type="application/json"
    )
    return result


def collect_training_job(
    raw_item: dict[str, Any], store: ArtifactStore, tracker: RunTracker
) -> dict[str, Any]:
    """After the job: its result, checked against the artifact it names, recorded on the run."""
    job = raw_item.get(JOB_RESULT_FIELD) or {}
    candidate = Candidate.model_validate({k: v for k, v in raw_item.items() if k != JOB_RESULT_FIELD})
    result = CandidateResult.model_validate_json(store.get(result_key(candidate)).data)
    artifact = store.get(result.artifact_key, result.artifact_version_id).data
    if sha256_hex(artifact) != result.sha256 or result.candidate_id != candidate.candidate_id:
        raise InvalidTrainingRequest(
            f"training job for candidate {candidate.candidate_id}: its result does not match its artifact"
        )
    recorded = result.model_dump(mode="json") | {
        "compute": "sagemaker",
        "training_job": {
            "name": job.get("TrainingJobName"),
            "billable_seconds": job.get("BillableTimeInSeconds"),
            "instance_type": (job.get("ResourceConfig") or {}).get("InstanceType"),
        },
    }
    tracker.record_candidate(candidate.run_id, json.loads(json.dumps(recorded)))
    return result.model_dump(mode="json")


def main(argv: list[str]) -> int:
    """``python -m mlops_core.training.training_job RUN_ID CANDIDATE_ID`` (the job's command;
    the bucket from ``ARTIFACTS_BUCKET``)."""
    import os

    run_id, candidate_id = argv
    result = run_job(run_id, candidate_id, ArtifactStore(os.environ["ARTIFACTS_BUCKET"]))
    print(json.dumps({"candidate_id": result.candidate_id, "validation_metrics": result.validation_metrics}))
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
