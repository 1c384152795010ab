"""The registry's entities: models, immutable numbered versions, movable aliases, audit
records and promotion policies, with the names and patterns they are checked against."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from mlops_core.errors import Invalid, detail
from mlops_core.registry.signature import ARTIFACT_FORMAT, ModelSignature
from mlops_core.storage import keys

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
ALIAS_PATTERN = r"^[a-z][a-z0-9_-]{0,63}$"
# Keys of caller-supplied maps must not be empty (DynamoDB refuses empty map keys), and
# are bounded like AWS resource tags.
TagKey = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TagValue = Annotated[str, StringConstraints(max_length=256)]
Tags = dict[TagKey, TagValue]
MetricName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
_MODEL_NAME = re.compile(MODEL_NAME_PATTERN)
_ALIAS = re.compile(ALIAS_PATTERN)
Stage = Literal["None", "Staging", "Production", "Archived"]
PRODUCTION = "production"
STAGE_OF_ALIAS: dict[str, Stage] = {"production": "Production", "staging": "Staging"}
MAX_ALIAS_HISTORY = 20

# The metrics versions record, and which way is better: promotion policies, model cards,
# the training gate and SelectBest read this.
HIGHER_IS_BETTER: dict[str, bool] = {
    "accuracy": True,
    "roc_auc": True,
    "f1": True,
    "log_loss": False,
    "rmse": False,
    "r2": True,
}


def check_model_name(name: str) -> str:
    if not _MODEL_NAME.match(name):
        raise Invalid(
            f"invalid model name {name!r}",
            details=[detail(["path", "name"], f"must match {MODEL_NAME_PATTERN}", "pattern")],
        )
    return name


def check_alias(alias: str) -> str:
    if not _ALIAS.match(alias):
        raise Invalid(
            f"invalid alias {alias!r}",
            details=[detail(["path", "alias"], f"must match {ALIAS_PATTERN}", "pattern")],
        )
    return alias


class ArtifactRef(BaseModel):
    model_config = ConfigDict(frozen=True)

    key: str
    s3_version_id: str | None
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int
    format: str = ARTIFACT_FORMAT
    signature_key: str | None = None


class MetricBound(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min: float | None = None
    max: float | None = None


class PromotionPolicy(BaseModel):
    """What a version needs before it may become production."""

    model_config = ConfigDict(extra="forbid")

    thresholds: dict[MetricName, MetricBound] = Field(
        default_factory=dict, description='e.g. {"roc_auc": {"min": 0.9}, "log_loss": {"max": 0.3}}'
    )
    require_staging: bool = Field(default=False, description="The version must be in Staging first")


class PolicyViolation(BaseModel):
    """One rule of a promotion policy that a version does not meet."""

    rule: str = Field(description='e.g. "thresholds.roc_auc.min" or "require_staging"')
    value: float | str | None
    limit: float | None = None
    message: str


FeatureValue = Annotated[float | int | bool | str, Field(union_mode="left_to_right")]


class FeaturePolicy(BaseModel):
    """What serving does when an online feature a request's entity needs is missing or stale
    (docs/features.md, "Predicting by entity id")."""

    model_config = ConfigDict(extra="forbid")

    missing: Literal["refuse", "default"] = Field(
        default="refuse",
        description="No online row for the entity, or a row without a feature the model reads: refuse "
        "(422 naming them) or serve the declared defaults",
    )
    stale: Literal["refuse", "serve", "default"] = Field(
        default="refuse",
        description="A row past its view's TTL: refuse (422), serve the stale values (flagged), or serve "
        "the declared defaults",
    )
    defaults: dict[Annotated[str, StringConstraints(min_length=1, max_length=128)], FeatureValue] = Field(
        default_factory=dict,
        max_length=10_000,
        description="Signature input -> the value served in place of a missing or stale one (policy default)",
    )


class RegisteredModel(BaseModel):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)
    owner: str | None = None
    latest_version: int = 0
    policy: PromotionPolicy = Field(default_factory=PromotionPolicy)
    policy_revision: int = Field(
        default=0, description="Incremented by every policy change; promotions are conditioned on it"
    )
    feature_policy: FeaturePolicy = Field(
        default_factory=FeaturePolicy,
        description="Missing or stale online features when predicting by entity id",
    )
    created_at: str
    updated_at: str


class ModelVersion(BaseModel):
    model_name: str
    version: int
    artifact: ArtifactRef
    signature: ModelSignature
    metrics: dict[str, float] = Field(default_factory=dict)
    run_id: str | None = None
    stage: Stage = "None"
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    created_at: str
    created_by: str | None = None


class Alias(BaseModel):
    model_name: str
    alias: str
    version: int
    revision: int
    updated_at: str
    updated_by: str | None = None
    previous_versions: list[int] = Field(
        default_factory=list, description="Versions this alias named before, newest first (rollback targets)"
    )


AuditAction = Literal["register", "promote", "rollback", "set_policy", "set_routing", "set_feature_policy"]


class AuditRecord(BaseModel):
    """Who changed what, when, from where to where, and why."""

    model_name: str
    at: str
    action: AuditAction
    alias: str | None
    from_version: int | None
    to_version: int | None = Field(description="None for changes that move no version (set_policy)")
    revision: int
    actor: str | None
    reason: str = ""
    policy: PromotionPolicy | None = Field(default=None, description="The policy set (set_policy)")
    feature_policy: FeaturePolicy | None = Field(
        default=None, description="The feature policy set (set_feature_policy)"
    )
    routing: dict[str, Any] | None = Field(
        default=None, description="The routing policy set (set_routing), as the routing API takes it"
    )


class RegisterVersionRequest(BaseModel):
    """Register an ONNX artifact already uploaded to the artifacts bucket."""

    model_config = ConfigDict(extra="forbid")

    artifact_key: str = Field(
        min_length=1,
        max_length=1024,
        description="S3 key of the uploaded model.onnx, under uploads/ (or a training run's runs/ "
        "candidate, or an existing models/ artifact)",
    )
    sha256: str | None = Field(
        default=None, pattern=r"^[0-9a-fA-F]{64}$", description="If given, the upload must match it"
    )
    signature: ModelSignature | None = Field(
        default=None, description="Defaults to signature.json next to the artifact"
    )
    metrics: dict[MetricName, float] = Field(default_factory=dict, max_length=100)
    run_id: str | None = Field(default=None, max_length=128)
    tags: Tags = Field(default_factory=dict, max_length=50)
    description: str = Field(default="", max_length=2000)

    @field_validator("artifact_key")
    @classmethod
    def _relative_key(cls, value: str) -> str:
        if value.startswith("/") or ".." in value.split("/"):
            raise ValueError(
                "artifact_key is a key inside the artifacts bucket, without '/' or '..' prefixes"
            )
        if not value.startswith(keys.REGISTRABLE_PREFIXES):
            raise ValueError(
                f"artifact_key must be under one of {', '.join(keys.REGISTRABLE_PREFIXES)} "
                "(upload new artifacts under uploads/)"
            )
        return value
