"""The search's and the SageMaker path's step handlers fed sample events from events/training
(against moto): CollectTrainingJob after a training job, SearchRound from ValidateData's
search state, as Step Functions passes them."""

from __future__ import annotations

import importlib
import json
from typing import Any

from infra.local.sample_data import breast_cancer
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.compute import stage_for_jobs
from mlops_core.training.state import Candidate
from mlops_core.training.tracking import RunTracker
from mlops_core.training.training_job import run_job
from tests.support import BUCKET, EVENTS, TABLE, FakeLambdaContext, upload


def _event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / "training" / f"{name}.json").read_text()))


def _invoke(module: str, event: dict[str, Any]) -> Any:
    return importlib.import_module(f"functions.training.{module}").lambda_handler(event, FakeLambdaContext())


def test_collect_training_job_takes_the_sync_tasks_output_and_records_the_candidate(aws: None) -> None:
    for key, data in breast_cancer().files.items():
        upload(key, data)
    event = _event("collect_training_job")
    candidate = Candidate.model_validate({k: v for k, v in event.items() if k != "training_job"})
    tracker = RunTracker(MetadataTable(TABLE))
    tracker.start(candidate.run_id, "breast-cancer", {})
    stage_for_jobs(ArtifactStore(BUCKET), [candidate])  # what ValidateData does for a SageMaker run
    run_job(candidate.run_id, candidate.candidate_id, ArtifactStore(BUCKET))  # what the job runs

    result = _invoke("collect_training_job", event)

    assert result["candidate_id"] == candidate.candidate_id
    assert result["validation_metrics"]["roc_auc"] > 0.9
    recorded = tracker.get_with_candidates(candidate.run_id)["candidates"][0]
    assert recorded["training_job"] == {
        "name": "mlops-3f1c2a9e-7b4d-4e57-9a51-0c6f1d2e8b47",
        "billable_seconds": 184,
        "instance_type": "ml.m5.large",
    }


def test_search_round_takes_validate_datas_search_state(aws: None) -> None:
    for key, data in breast_cancer().files.items():
        upload(key, data)
    start = json.loads(_event("start_search")["body"]) | {"run_id": "search-events"}
    state = _invoke("validate_data", start)

    asked = _invoke("search_round", state)

    assert asked["search_round"] == 1
    assert [c["candidate_id"] for c in asked["candidates"]] == ["t000", "t001", "t002"]
    assert RunTracker(MetadataTable(TABLE)).get("search-events")["search"]["rounds"] == 1
