"""Batch scoring jobs: what ``POST /batch-predictions`` takes, the job record, and what the
workflow's steps hand each other."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_core.registry.entities import MODEL_NAME_PATTERN
from mlops_core.storage import keys

BATCH_JOB_ID_PATTERN = r"^batch-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"
#: ``s3://bucket/batch-input/...`` or just the key prefix ``batch-input/...``.
_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<prefix>.*)$")
#: Refused rows and failed objects kept on the job record (all of them are in S3).
RECORDED_FAILURES = 20

JobStatus = Literal["running", "succeeded", "failed"]


class BatchJobRequest(BaseModel):
    """Score every object under ``input`` with one version of a model."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(pattern=MODEL_NAME_PATTERN, max_length=128)
    input: str = Field(
        min_length=1,
        max_length=1024,
        description=f"The objects to score: s3://<artifacts bucket>/{keys.BATCH_INPUT_PREFIX}... or the "
        f"key prefix alone ({keys.BATCH_INPUT_PREFIX}...). CSV (a header naming the features, or "
        "the features in signature order), JSON Lines (.jsonl) or Parquet (.parquet: the features as "
        "columns), one object per Map item.",
    )
    version: int | None = Field(default=None, ge=1, description="Score with this version")
    alias: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9-]{0,62}$",
        description="Score with the version this alias names when the job starts (default production)",
    )

    @model_validator(mode="after")
    def _one_selector(self) -> BatchJobRequest:
        if self.version is not None and self.alias is not None:
            raise ValueError("give version or alias, not both")
        return self

    def prefix(self, bucket: str) -> str:
        """The input's key prefix in ``bucket`` (``ValueError`` when it is elsewhere)."""
        text = self.input
        match = _S3_URI.match(text)
        if match is not None:
            if match["bucket"] != bucket:
                raise ValueError("input must be in the stack's artifacts bucket")
            text = match["prefix"]
        elif text.startswith("s3://"):
            raise ValueError("input is not an s3://bucket/prefix/ URI")
        if not text.startswith(keys.BATCH_INPUT_PREFIX) or ".." in text.split("/"):
            raise ValueError(f"input must be under {keys.BATCH_INPUT_PREFIX} in the artifacts bucket")
        if len(text) == len(keys.BATCH_INPUT_PREFIX):
            raise ValueError(f"name a folder below {keys.BATCH_INPUT_PREFIX}, not all of it")
        return text


class FailedRow(BaseModel):
    key: str = Field(description="The input object (relative to the job's input)")
    line: int
    reason: str


class FailedObject(BaseModel):
    key: str
    error: str
    cause: str = ""


class BatchJob(BaseModel):
    """The job record (``BATCH#{id} / BATCH_JOB``)."""

    job_id: str = Field(pattern=BATCH_JOB_ID_PATTERN)
    model_name: str
    version: int = Field(description="The version every row is scored with, resolved at the start")
    alias: str | None = Field(default=None, description="The alias the version was resolved from")
    input_prefix: str
    output_prefix: str
    status: JobStatus = "running"
    created_at: str
    finished_at: str | None = None
    duration_seconds: float | None = None
    actor: str | None = None
    execution_arn: str | None = None
    objects: int | None = Field(default=None, description="Input objects the Map read")
    objects_scored: int | None = None
    objects_failed: int | None = None
    rows: int | None = Field(default=None, description="Rows read (scored + refused)")
    rows_scored: int | None = None
    rows_failed: int | None = None
    failed_rows: list[FailedRow] = Field(default_factory=list, description="The first refused rows")
    failed_objects: list[FailedObject] = Field(default_factory=list)
    error: str | None = None
    cause: str | None = None


class ScoreItem(BaseModel):
    """One Map item: an input object, as the ItemSelector builds it."""

    model_config = ConfigDict(extra="ignore")

    job_id: str = Field(pattern=BATCH_JOB_ID_PATTERN)
    model_name: str
    version: int = Field(ge=1)
    input_prefix: str
    key: str
    size: int = Field(default=0, ge=0)


class ObjectSummary(BaseModel):
    """What the scoring function answers for one object (the Map's per-item result)."""

    key: str
    rows: int
    scored: int
    failed: int
    failed_rows: list[FailedRow] = Field(default_factory=list)
    predictions_key: str | None = None
    errors_key: str | None = None
