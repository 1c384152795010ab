"""Batch scoring's use cases: start a job (checked before anything runs), score one object
(a Map item), and close the job from the Map's results (or record why it failed).

    start      the API: input checked, version resolved (and pinned), record, execution
    score      the ScoreObject function: one object -> predictions CSV + refused rows
    finalize   the Finalize function: the ResultWriter's manifest and result files -> counts
    fail       the MarkFailed function: the Map or a step failed -> the job says why
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from mlops_core.batch.entities import (
    RECORDED_FAILURES,
    BatchJob,
    BatchJobRequest,
    FailedObject,
    FailedRow,
    ObjectSummary,
    ScoreItem,
)
from mlops_core.batch.repository import BatchJobRepository
from mlops_core.batch.rows import UnreadableObject, input_format
from mlops_core.batch.scoring import score_object
from mlops_core.clock import now_iso, parse_iso
from mlops_core.errors import Invalid, NotFound, Unavailable, detail
from mlops_core.registry.entities import PRODUCTION, ModelVersion
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.serving.predictor import Predictor
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.map_runs import entry_input, read_map_run, readable_cause
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import BatchWorkflow


def new_job_id(now: float | None = None) -> str:
    """``batch-20261201T120000Z-1a2b3c4d``: sorts by start time."""
    return f"batch-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(now))}-{secrets.token_hex(4)}"


class ObjectNotScorable(Exception):
    """One object could not be scored as a whole; the Map records it as a failed item."""


class BatchJobs:
    def __init__(
        self,
        table: MetadataTable,
        store: ArtifactStore,
        *,
        workflow: BatchWorkflow | None = None,
        now: Callable[[], str] = now_iso,
    ) -> None:
        self.repository = BatchJobRepository(table)
        self.lookup = RegistryLookup(table)
        self.store = store
        self.workflow = workflow
        self.now = now

    # ---- the API --------------------------------------------------------------------------
    def start(self, request: BatchJobRequest, *, actor: str | None = None) -> BatchJob:
        """Check the input and the model, pin the version, record the job, start the Map.

        404: unknown model, version or alias (no production version); 422: an input outside
        the batch input prefix, or one with no objects. Nothing is written before both pass.
        """
        try:
            prefix = request.prefix(self.store.bucket)
        except ValueError as error:
            raise Invalid(
                str(error), details=[detail(["body", "input"], str(error), "value_error")]
            ) from None
        version = self._version(request)
        if not any(not key.endswith("/") for key in self._first_keys(prefix)):
            raise Invalid(
                "the input prefix holds no objects: upload the files to score first",
                details=[detail(["body", "input"], "no objects under this prefix", "empty_prefix")],
            )
        if self.workflow is None:
            raise RuntimeError("BatchJobs.start needs a workflow")
        job_id = new_job_id()
        job = BatchJob(
            job_id=job_id,
            model_name=request.model_name,
            version=version.version,
            alias=None if request.version is not None else (request.alias or PRODUCTION),
            input_prefix=prefix,
            output_prefix=keys.batch_output_prefix(job_id),
            created_at=self.now(),
            actor=actor,
        )
        self.repository.create(job)
        try:
            arn = self.workflow.start(job_id, execution_input(job))
        except Unavailable as error:
            # Nothing runs: the record says so rather than "running" for ever.
            job = job.model_copy(
                update={
                    "status": "failed",
                    "error": "NotStarted",
                    "cause": error.message,
                    "finished_at": self.now(),
                }
            )
            self.repository.save(job)
            raise
        job = job.model_copy(update={"execution_arn": arn})
        self.repository.save(job)
        return job

    def _version(self, request: BatchJobRequest) -> ModelVersion:
        name = request.model_name
        self.lookup.get_model(name)  # 404 "model 'x' not found" before any other lookup
        if request.version is not None:
            return self.lookup.get_version(name, request.version)
        alias = request.alias or PRODUCTION
        try:
            return self.lookup.resolve_alias(name, alias)
        except NotFound:
            raise NotFound(
                f"model '{name}' has no {alias} version: promote one, or name a version to score with"
            ) from None

    def _first_keys(self, prefix: str, limit: int = 100) -> list[str]:
        found = []
        for key in self.store.keys(prefix):
            found.append(key)
            if len(found) >= limit or not key.endswith("/"):
                break
        return found

    def get(self, job_id: str) -> BatchJob:
        job = self.repository.get(job_id)
        if job is None:
            raise NotFound(f"batch job '{job_id}' not found")
        return job

    def recent(self, *, limit: int, model_name: str | None = None) -> list[BatchJob]:
        return self.repository.recent(limit=limit, model_name=model_name)

    # ---- the workflow's steps -------------------------------------------------------------
    def score(self, item: ScoreItem, predictor: Predictor) -> ObjectSummary:
        """Score one object with the pinned version (loaded and checksum-verified by the same
        ``Predictor.load`` real-time inference uses); write its predictions and refused rows."""
        relative = item.key[len(item.input_prefix) :] if item.key.startswith(item.input_prefix) else item.key
        if item.key.endswith("/"):  # a "folder" placeholder the console creates: nothing to score
            return ObjectSummary(key=relative, rows=0, scored=0, failed=0)
        model = predictor.load(predictor.resolve_version(item.model_name, item.version))
        data = self.store.get(item.key).data
        try:
            scored = score_object(model, data, input_format(item.key))
        except UnreadableObject as error:
            raise ObjectNotScorable(f"{relative}: {error}") from None
        predictions_key = keys.batch_predictions(item.job_id, relative)
        self.store.put(predictions_key, scored.predictions, content_type="text/csv")
        errors_key = None
        if scored.bad:
            errors_key = keys.batch_errors(item.job_id, relative)
            self.store.put(errors_key, scored.errors, content_type="application/x-ndjson")
        return ObjectSummary(
            key=relative,
            rows=scored.rows,
            scored=scored.scored,
            failed=len(scored.bad),
            failed_rows=[
                FailedRow(key=relative, line=row.line, reason=row.reason)
                for row in scored.bad[:RECORDED_FAILURES]
            ],
            predictions_key=predictions_key,
            errors_key=errors_key,
        )

    def finalize(self, job_id: str, manifest_key: str) -> BatchJob:
        """Counts from the Map's ResultWriter output: its manifest names a file of succeeded
        items (each output an ``ObjectSummary``) and one of failed items (input, error, cause)."""
        job = self.get(job_id)
        results = read_map_run(self.store, manifest_key)
        summaries = [ObjectSummary.model_validate_json(entry["Output"]) for entry in results.succeeded]
        failed = [_failed_object(job, entry) for entry in results.failed]
        failed += [_failed_object(job, entry, "NotRun") for entry in results.pending]
        rows_failed = sum(s.failed for s in summaries)
        failed_rows = [row for s in sorted(summaries, key=lambda s: s.key) for row in s.failed_rows]
        finished = self.now()
        job = job.model_copy(
            update={
                "status": "succeeded",
                "finished_at": finished,
                "duration_seconds": _seconds_between(job.created_at, finished),
                "objects": len(summaries) + len(failed),
                "objects_scored": len(summaries),
                "objects_failed": len(failed),
                "rows": sum(s.rows for s in summaries),
                "rows_scored": sum(s.scored for s in summaries),
                "rows_failed": rows_failed,
                "failed_rows": failed_rows[:RECORDED_FAILURES],
                "failed_objects": sorted(failed, key=lambda f: f.key)[:RECORDED_FAILURES],
            }
        )
        self.repository.save(job)
        return job

    def fail(self, job_id: str, error: str, cause: str) -> BatchJob:
        job = self.get(job_id)
        finished = self.now()
        job = job.model_copy(
            update={
                "status": "failed",
                "finished_at": finished,
                "duration_seconds": _seconds_between(job.created_at, finished),
                "error": error[:256],
                "cause": readable_cause(cause)[:2000],
            }
        )
        self.repository.save(job)
        return job


def execution_input(job: BatchJob) -> dict[str, Any]:
    """What the state machine starts with (the ItemSelector copies it into every item)."""
    return {
        "job_id": job.job_id,
        "model_name": job.model_name,
        "version": job.version,
        "input_prefix": job.input_prefix,
    }


def _failed_object(job: BatchJob, entry: dict[str, Any], error: str | None = None) -> FailedObject:
    key = str(entry_input(entry).get("key", "?"))
    if key.startswith(job.input_prefix):
        key = key[len(job.input_prefix) :]
    return FailedObject(
        key=key,
        error=str(error or entry.get("Error") or "Failed"),
        cause=readable_cause(str(entry.get("Cause") or ""))[:1000],
    )


def _seconds_between(start: str, end: str) -> float:
    return round((parse_iso(end) - parse_iso(start)).total_seconds(), 3)
