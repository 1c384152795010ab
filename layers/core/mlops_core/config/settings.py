"""Settings read from the environment, validated once per cold start.

Plain pydantic models validated from ``os.environ`` (each field's alias is its variable):
pydantic-settings did the same and cost ~90 ms of the inference cold start to import.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field


class EnvironmentSettings(BaseModel):
    """Settings whose fields are named, by ``validation_alias``, after environment variables."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_environment(cls, **overrides: Any) -> Self:
        """Validated from ``os.environ``; ``overrides`` (by variable name) win.

        Only the variables the fields name are read (``get``, never iterating the
        environment: another thread may be changing it, as the local stack's does).
        """
        names = {f.validation_alias for f in cls.model_fields.values() if isinstance(f.validation_alias, str)}
        values = {name: value for name in names if (value := os.environ.get(name)) is not None}
        return cls.model_validate(values | overrides)


class CoreSettings(EnvironmentSettings):
    """What every function needs: where the artifacts and the metadata live."""

    artifacts_bucket: str = Field(min_length=3, validation_alias="ARTIFACTS_BUCKET")
    metadata_table: str = Field(min_length=3, validation_alias="METADATA_TABLE")


class EventSettings(CoreSettings):
    """Functions that publish domain events."""

    event_bus_name: str = Field(default="default", validation_alias="EVENT_BUS_NAME")


class DriftFunctionSettings(EventSettings):
    """The drift function: runs read the registry, the capture and profiles, and write reports."""

    # The scheduled dispatcher starts another model's run only while at least this much of
    # the invocation is left (plus 1.5 times the slowest run so far); the rest wait a tick.
    reserve_seconds: float = Field(default=120.0, ge=0, le=900, validation_alias="DRIFT_RESERVE_SECONDS")


class DriftApiSettings(CoreSettings):
    """The drift API: records runs and hands them to the drift function (asynchronously)."""

    drift_function_name: str = Field(min_length=1, validation_alias="DRIFT_FUNCTION_NAME")


class TrainingApiSettings(CoreSettings):
    state_machine_arn: str = Field(min_length=20, validation_alias="STATE_MACHINE_ARN")


class RolloutStepSettings(EventSettings):
    """The rollout workflow's steps."""

    # Set by the local stack only (never in the template): bakes wait at most this long.
    max_wait_seconds: int | None = Field(
        default=None, ge=0, validation_alias="MLOPS_ROLLOUT_MAX_WAIT_SECONDS"
    )


class RolloutApiSettings(EventSettings):
    state_machine_arn: str = Field(min_length=20, validation_alias="ROLLOUT_STATE_MACHINE_ARN")


class InferenceSettings(CoreSettings):
    """Knobs of the prediction path."""

    # How long a resolved alias (alias -> version) is trusted before DynamoDB is read
    # again: promotions and rollbacks reach every warm container within this time.
    alias_cache_ttl_seconds: float = Field(default=10.0, ge=0, validation_alias="ALIAS_CACHE_TTL_SECONDS")
    # Largest batch one call may send (documented in docs/api.md).
    max_batch_size: int = Field(default=1000, ge=1, le=10000, validation_alias="MAX_BATCH_SIZE")
    # Loaded ONNX sessions kept per container (least recently used evicted).
    model_cache_size: int = Field(default=8, ge=1, validation_alias="MODEL_CACHE_SIZE")
    # The online feature store, for predictions by entity id (unset: entity_ids are refused).
    features_table: str | None = Field(default=None, min_length=3, validation_alias="FEATURES_TABLE")


class CaptureSettings(CoreSettings):
    """The capture function: where captured predictions go (and, for shadows and traffic
    counts, the registry)."""

    predictions_table: str = Field(min_length=3, validation_alias="PREDICTIONS_TABLE")
    prediction_ttl_days: int = Field(default=30, ge=1, le=3650, validation_alias="PREDICTION_TTL_DAYS")
    # The routing history's time bucket (routing.history; the rewards function reads the same).
    routing_history_bucket_seconds: int = Field(
        default=300, ge=1, le=86_400, validation_alias="MLOPS_ROUTING_HISTORY_BUCKET_SECONDS"
    )
    # Shadow versions kept loaded by the capture function.
    model_cache_size: int = Field(default=4, ge=1, validation_alias="MODEL_CACHE_SIZE")


class FeedbackSettings(EnvironmentSettings):
    """The feedback function: the prediction log it records feedback in, the registry it reads
    a model's classes from, and how long a prediction id may go uncaptured."""

    metadata_table: str = Field(min_length=3, validation_alias="METADATA_TABLE")
    predictions_table: str = Field(min_length=3, validation_alias="PREDICTIONS_TABLE")
    # Captured predictions reach the log seconds after they are made (a log subscription):
    # feedback on an id younger than this that is not in the log yet is "not captured yet"
    # (409, retry), older it is unknown (404).
    capture_delay_seconds: int = Field(
        default=300, ge=0, le=3600, validation_alias="FEEDBACK_CAPTURE_DELAY_SECONDS"
    )
    # How far in the future an id's time may be (clocks of two hosts) and still be ours.
    clock_skew_seconds: int = Field(default=10, ge=0, le=300, validation_alias="FEEDBACK_CLOCK_SKEW_SECONDS")


class RewardsSettings(EnvironmentSettings):
    """The rewards function: the prediction log it marks and the metadata table it counts in."""

    metadata_table: str = Field(min_length=3, validation_alias="METADATA_TABLE")
    predictions_table: str = Field(min_length=3, validation_alias="PREDICTIONS_TABLE")
    # The routing history's time bucket (routing.history; the capture function reads the same).
    routing_history_bucket_seconds: int = Field(
        default=300, ge=1, le=86_400, validation_alias="MLOPS_ROUTING_HISTORY_BUCKET_SECONDS"
    )


class FeedbackCaptureSettings(EnvironmentSettings):
    """The feedback-capture function: the bucket it writes the bulk feedback (``feedback/``) to."""

    artifacts_bucket: str = Field(min_length=3, validation_alias="ARTIFACTS_BUCKET")


class RetrainSettings(TrainingApiSettings):
    """The retrain function: what the training API needs (it starts runs the same way), and the
    prediction capture and feedback it builds datasets from (both in the artifacts bucket)."""


class FeatureLookupSettings(EnvironmentSettings):
    """The feature lookup function: the online store it reads and the views' definitions."""

    metadata_table: str = Field(min_length=3, validation_alias="METADATA_TABLE")
    features_table: str = Field(min_length=3, validation_alias="FEATURES_TABLE")
    # How long a view's definition is trusted before it is read again (like the aliases').
    view_cache_ttl_seconds: float = Field(default=10.0, ge=0, validation_alias="VIEW_CACHE_TTL_SECONDS")


class MaterializeSettings(EventSettings):
    """The materialize function: sources in the artifacts bucket, the online store it writes,
    the views and runs in the metadata table."""

    features_table: str = Field(min_length=3, validation_alias="FEATURES_TABLE")
    # Concurrent BatchGetItem / BatchWriteItem calls of one run.
    write_workers: int = Field(default=8, ge=1, le=64, validation_alias="MATERIALIZE_WORKERS")
    # One conditional PutItem per row instead of BatchWriteItem (for writers that may race).
    conditional_writes: bool = Field(default=False, validation_alias="MATERIALIZE_CONDITIONAL_WRITES")
    # Partitioned materialization (mlops_core.features.partitions): the Distributed Map's state
    # machine (none: every run in this function), and the source bytes one function reads.
    partition_state_machine_arn: str | None = Field(
        default=None, validation_alias="MATERIALIZE_PARTITION_STATE_MACHINE_ARN"
    )
    single_run_max_bytes: int = Field(
        default=100_000_000, ge=1, validation_alias="MATERIALIZE_SINGLE_RUN_MAX_BYTES"
    )


@lru_cache(maxsize=1)
def core_settings() -> CoreSettings:
    return CoreSettings.from_environment()


@lru_cache(maxsize=1)
def inference_settings() -> InferenceSettings:
    return InferenceSettings.from_environment()


class TrainingComputeSettings(EnvironmentSettings):
    """Where a training run's candidates train (``mlops_core.training.compute``): the
    dataset size above which ValidateData sends them to a SageMaker training job, and, on
    the local stack only, why SageMaker is not there."""

    sagemaker_threshold_bytes: int | None = Field(
        default=None, ge=1, validation_alias="SAGEMAKER_THRESHOLD_BYTES"
    )
    sagemaker_unavailable: str | None = Field(default=None, validation_alias="MLOPS_SAGEMAKER_UNAVAILABLE")


class StreamInferenceSettings(InferenceSettings):
    """The stream inference function: the prediction path's knobs, and the stream results go to."""

    output_stream: str = Field(min_length=1, validation_alias="OUTPUT_STREAM")


class BatchApiSettings(CoreSettings):
    """The batch scoring API: the workflow it starts."""

    state_machine_arn: str = Field(min_length=20, validation_alias="BATCH_STATE_MACHINE_ARN")


class BatchScoreSettings(CoreSettings):
    """The batch scoring function: versions are pinned, so loaded sessions are kept per container."""

    model_cache_size: int = Field(default=2, ge=1, validation_alias="MODEL_CACHE_SIZE")
