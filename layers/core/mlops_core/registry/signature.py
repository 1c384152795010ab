"""What a registered model is made of: the ONNX format, the signature that travels with
it, and the checksums that are verified before it is loaded.

Models are stored as ONNX, never as pickle or joblib: loading ONNX runs no code, so
write access to the bucket does not become code execution in the functions. Every
artifact's sha256 is recorded in the registry and checked before it is loaded.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops_core.data.types import FeatureType, check_column_name
from mlops_core.errors import IntegrityError

ARTIFACT_FORMAT = "onnx"

ClassLabel = Annotated[int | str, Field(union_mode="left_to_right")]


class FeatureSpec(BaseModel):
    """One input column, in the order the model expects it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: FeatureType = "double"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The dataset's column name as it is (spaces, '/', non-ASCII letters...): the
        # ONNX graph takes one tensor, so names live only here.
        return check_column_name(value, "feature")


class ModelSignature(BaseModel):
    """What a model takes and returns: feature names, types and order, and its classes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["classification", "regression"] = "classification"
    features: list[FeatureSpec] = Field(min_length=1, max_length=10_000)
    classes: list[ClassLabel] | None = None
    target: str | None = None
    # The ONNX graph's input and outputs, as exported.
    input_name: str = "input"
    input_dtype: Literal["float32", "float64"] = "float32"
    label_output: str = "label"
    probabilities_output: str | None = "probabilities"

    @model_validator(mode="after")
    def _consistent(self) -> ModelSignature:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        if self.task == "classification" and not self.classes:
            raise ValueError("a classification signature lists its classes")
        if self.task == "regression" and self.classes:
            raise ValueError("a regression signature has no classes")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def verify_checksum(data: bytes, expected_sha256: str, *, what: str) -> None:
    """Refuse bytes whose sha256 is not the one recorded at registration."""
    actual = sha256_hex(data)
    if not hmac.compare_digest(actual, expected_sha256.lower()):
        raise IntegrityError(
            f"integrity check failed for {what}: sha256 {actual[:12]}… does not match the "
            f"registered {expected_sha256[:12]}…; the artifact is refused",
            retry_after_seconds=30,
        )
