"""The batch scoring state machine from the synthesized template, run by moto's Step Functions
interpreter (with infra/local/distributed_map.py) and the real handlers invoked in-process:
objects listed by the Map's ItemReader, scored by the scoring function, counted by Finalize
from the ResultWriter's files."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import numpy as np
import pytest
from synthesized_app import SynthesizedApp
from test_training_workflow import _with_test_names

from infra.local import lambda_runtime
from infra.local.stack import deploy_template
from mlops_core.batch.entities import BatchJob, BatchJobRequest
from mlops_core.batch.service import BatchJobs
from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.registry.service import ModelRegistry
from mlops_core.serving.predictor import Predictor
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import BatchWorkflow
from tests.batch_data import csv_object
from tests.support import BUCKET, TABLE, trained_model, upload

pytestmark = pytest.mark.infra
MODEL = "breast-cancer"
#: Rows per run here (CI: 2 cores). The 200,000-row run is benchmarks/batch.py --end-to-end.
OBJECTS, ROWS_PER_OBJECT = 20, 500


@pytest.fixture
def jobs(synthesized: SynthesizedApp, moto_session: Any) -> Iterator[BatchJobs]:
    moto_session.reset()
    lambda_runtime.install()
    template = _with_test_names(synthesized.template_json)
    deployed = deploy_template(template)
    wanted = deployed.physical_ids[template["Outputs"]["BatchStateMachineArn"]["Value"]["Ref"]]
    machines = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
    arn = next(m["stateMachineArn"] for m in machines if wanted in (m["name"], m["stateMachineArn"]))
    table = MetadataTable(TABLE)
    registry = ModelRegistry(table, ArtifactStore(BUCKET))
    for family, run in (("logistic_regression", "run-1"), ("random_forest", "run-2")):
        _, data, signature = trained_model(family)
        upload(f"uploads/{family}.onnx", data)
        registry.register_version(
            MODEL,
            RegisterVersionRequest(artifact_key=f"uploads/{family}.onnx", signature=signature, run_id=run),
        )
    registry.set_alias(MODEL, "production", 1)
    yield BatchJobs(table, ArtifactStore(BUCKET), workflow=BatchWorkflow(arn))


def _finish(jobs: BatchJobs, job: BatchJob, timeout: float = 180) -> BatchJob:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    assert job.execution_arn is not None
    while sfn.describe_execution(executionArn=job.execution_arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution did not finish in {timeout:.0f} s"
        time.sleep(0.1)
    return jobs.get(job.job_id)


def _start(jobs: BatchJobs, prefix: str) -> BatchJob:
    return jobs.start(BatchJobRequest(model_name=MODEL, input=f"s3://{BUCKET}/{prefix}"), actor="alice")


def _read(key: str) -> bytes:
    return ArtifactStore(BUCKET).get(key).data


def test_every_object_is_scored_and_malformed_rows_are_reported_by_line(jobs: BatchJobs) -> None:
    """Given 20 objects with 1 % malformed rows, when a job scores them, then it succeeds, counts
    every row, and its error files name exactly the malformed lines."""
    objects = [
        csv_object(f"batch-input/nightly/part-{i:02d}.csv", ROWS_PER_OBJECT, seed=i, malformed_share=0.01)
        for i in range(OBJECTS)
    ]
    for obj in objects:
        upload(obj.key, obj.data)

    job = _finish(jobs, _start(jobs, "batch-input/nightly/"))

    malformed = sum(len(o.malformed) for o in objects)
    assert job.status == "succeeded", job
    assert (job.objects, job.objects_scored, job.objects_failed) == (OBJECTS, OBJECTS, 0)
    assert job.rows == OBJECTS * ROWS_PER_OBJECT
    assert job.rows_failed == malformed > 0
    assert job.rows_scored == OBJECTS * ROWS_PER_OBJECT - malformed
    assert job.version == 1 and job.alias == "production"
    assert job.duration_seconds is not None and job.duration_seconds > 0
    reported = set()
    for obj in objects:
        relative = obj.key.removeprefix("batch-input/nightly/")
        errors = [
            json.loads(line) for line in _read(f"batch/{job.job_id}/errors/{relative}.jsonl").splitlines()
        ]
        reported |= {(relative, e["line"]) for e in errors}
        assert all(e["reason"] for e in errors)
    assert reported == {(o.key.removeprefix("batch-input/nightly/"), n) for o in objects for n in o.malformed}
    assert [(r.key, r.line) for r in job.failed_rows] == sorted(reported)[: len(job.failed_rows)]


def test_predictions_equal_the_real_time_predictors_for_a_sample(jobs: BatchJobs) -> None:
    """Given a job's output, a sample of 1,000 rows scored again by the real-time Predictor (the
    inference function's core) gives the same labels and the same float32 probabilities."""
    objects = [csv_object(f"batch-input/same/part-{i}.csv", 500, seed=100 + i) for i in range(2)]
    for obj in objects:
        upload(obj.key, obj.data)
    job = _finish(jobs, _start(jobs, "batch-input/same/"))
    assert job.status == "succeeded" and job.rows_scored == 1000

    predictor = Predictor(
        RegistryLookup(MetadataTable(TABLE)),
        ArtifactStore(BUCKET),
        alias_ttl=0,
        cache_size=2,
        max_batch_size=1000,
    )
    sample: list[list[float]] = []
    batch: list[dict[str, str]] = []
    for obj in objects:
        relative = obj.key.removeprefix("batch-input/same/")
        for row in csv.DictReader(io.StringIO(_read(f"batch/{job.job_id}/predictions/{relative}").decode())):
            sample.append(obj.rows[int(row["line"])])
            batch.append(row)
    real_time = predictor.predict(MODEL, sample, alias="production")
    assert real_time.model_version == job.version
    assert [int(r["prediction"]) for r in batch] == real_time.predictions
    assert real_time.classes is not None and real_time.probabilities is not None
    ours = np.array(
        [[float(r[f"probability_{c}"]) for c in real_time.classes] for r in batch], dtype=np.float32
    )
    assert np.array_equal(ours, np.array(real_time.probabilities, dtype=np.float32))
    assert all(int(r["model_version"]) == job.version for r in batch)


def test_a_promotion_during_a_job_does_not_change_its_version(jobs: BatchJobs) -> None:
    """The version is resolved when the job starts and pinned in every item."""
    upload("batch-input/pinned/a.csv", csv_object("a", 50, seed=7).data)
    job = _start(jobs, "batch-input/pinned/")
    ModelRegistry(MetadataTable(TABLE), ArtifactStore(BUCKET)).set_alias(MODEL, "production", 2)
    job = _finish(jobs, job)
    assert job.status == "succeeded" and job.rows_scored == 50, job
    predictions = _read(f"batch/{job.job_id}/predictions/a.csv").decode().splitlines()
    assert job.version == 1
    assert {line.rsplit(",", 1)[1] for line in predictions[1:]} == {"1"}


def test_an_unreadable_object_is_named_and_tolerated_below_the_threshold(jobs: BatchJobs) -> None:
    """Given 20 objects, one without the model's features in its header, the job succeeds with
    19 objects scored and the 20th named among its failures."""
    for i in range(19):
        upload(f"batch-input/one-bad/part-{i:02d}.csv", csv_object("x", 20, seed=i).data)
    upload("batch-input/one-bad/wrong.csv", b"a,b,c\n1,2,3\n")
    job = _finish(jobs, _start(jobs, "batch-input/one-bad/"))
    assert job.status == "succeeded"
    assert (job.objects, job.objects_scored, job.objects_failed) == (20, 19, 1)
    assert [f.key for f in job.failed_objects] == ["wrong.csv"]
    assert job.failed_objects[0].error == "ObjectNotScorable"
    assert "header lacks 10 of the model's features" in job.failed_objects[0].cause


def test_failures_past_the_tolerated_share_fail_the_job(jobs: BatchJobs) -> None:
    """Given 3 objects of which 1 cannot be read (33 % > 10 %), the Map fails and the job with it."""
    for i in range(2):
        upload(f"batch-input/many-bad/part-{i}.csv", csv_object("x", 20, seed=i).data)
    upload("batch-input/many-bad/wrong.csv", b"a,b\n1,2\n")
    job = _finish(jobs, _start(jobs, "batch-input/many-bad/"))
    assert job.status == "failed"
    assert job.error == "States.ExceedToleratedFailureThreshold"
    sfn = boto3.client("stepfunctions")
    assert job.execution_arn is not None
    assert sfn.describe_execution(executionArn=job.execution_arn)["status"] == "FAILED"
