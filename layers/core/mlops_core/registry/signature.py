"""What a registered model is made of: the ONNX format, the signature that travels with
it, and the checksums that are verified before it is loaded.

Models are stored as ONNX, never as pickle or joblib: loading ONNX runs no code, so
write access to the bucket does not become code execution in the functions. Every
artifact's sha256 is recorded in the registry and checked before it is loaded.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from mlops_core.data.types import FeatureType, check_categories, check_column_name
from mlops_core.errors import IntegrityError

ARTIFACT_FORMAT = "onnx"

ClassLabel = Annotated[int | str, Field(union_mode="left_to_right")]


class FeatureSpec(BaseModel):
    """One input column, in the order the model expects it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: FeatureType = "double"
    nullable: bool = Field(
        default=False,
        description="The model takes a missing value (null) here: its training data had them",
    )
    categories: list[str] | None = Field(
        default=None,
        description="A category feature's values; the graph takes each as its position here (a code)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        # The dataset's column name as it is (spaces, '/', non-ASCII letters...): the
        # ONNX graph takes one tensor, so names live only here.
        return check_column_name(value, "feature")

    @model_validator(mode="after")
    def _categories(self) -> FeatureSpec:
        if (self.type == "category") != (self.categories is not None):
            raise ValueError(
                f"feature '{self.name}': categories are given for a category feature, and only then"
            )
        if self.categories is not None:
            check_categories(self.categories, f"feature '{self.name}'")
        return self

    # cached_property, not a pydantic private attribute: those are read through __getattr__,
    # about 1 us a read, on the prediction path's per-value loop.
    @cached_property
    def _codes(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.categories or [])}

    def code_of(self, value: str) -> int | None:
        """A category feature's code for ``value`` (exactly as written); None if it is not one."""
        return self._codes.get(value)


#: A feature view's name (``mlops_core.features.entities.VIEW_NAME_PATTERN``: the registry sits
#: below the feature store and cannot import it).
FEATURE_VIEW_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
EntityKeyKind = Literal["int64", "string"]


class ViewFeature(BaseModel):
    """One feature of a view that feeds one signature input (by default, the input of its name)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", description="The view's feature")
    input: str | None = Field(default=None, description="The signature input it feeds (default: name)")

    @property
    def input_name(self) -> str:
        return self.input if self.input is not None else self.name


def _feature_ref(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class FeatureViewInput(BaseModel):
    """Which signature inputs one feature view feeds (docs/features.md, "A signature names its
    feature views")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    view: str = Field(pattern=FEATURE_VIEW_NAME_PATTERN)
    version: int | None = Field(
        default=None, ge=1, description="The view version trained on (registration fills in the one in force)"
    )
    entity: str | None = Field(
        default=None, max_length=128, description="The view's entity key (filled in at registration)"
    )
    entity_type: EntityKeyKind | None = Field(
        default=None, description="Its type (filled in at registration)"
    )
    features: list[Annotated[ViewFeature, BeforeValidator(_feature_ref)]] = Field(
        min_length=1, max_length=200
    )

    @property
    def inputs(self) -> list[str]:
        return [f.input_name for f in self.features]


class ModelSignature(BaseModel):
    """What a model takes and returns: feature names, types and order, and its classes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["classification", "regression"] = "classification"
    features: list[FeatureSpec] = Field(min_length=1, max_length=10_000)
    classes: list[ClassLabel] | None = None
    #: A text target's class names, one per class (``classes`` are then the codes the graph
    #: outputs: positions in the dataset's categories). Callers see and send the names.
    class_names: list[str] | None = Field(default=None, max_length=1000)
    target: str | None = None
    # The ONNX graph's input and outputs, as exported.
    input_name: str = "input"
    input_dtype: Literal["float32", "float64"] = "float32"
    label_output: str = "label"
    probabilities_output: str | None = "probabilities"
    #: Inputs read from the online feature store when a request names entity ids; the rest
    #: are request-time inputs. Empty (the default, and every signature before it): none.
    feature_views: list[FeatureViewInput] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _consistent(self) -> ModelSignature:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            raise ValueError("feature names must be unique")
        known, fed = set(names), set[str]()
        views = [v.view for v in self.feature_views]
        if len(set(views)) != len(views):
            raise ValueError("a feature view is named once in feature_views")
        for view in self.feature_views:
            for item in view.inputs:
                if item not in known:
                    raise ValueError(
                        f"feature_views: view {view.view} feeds {item!r}, not a signature feature"
                    )
                if item in fed:
                    raise ValueError(f"feature_views: input {item!r} is fed twice")
                fed.add(item)
        if self.task == "classification" and not self.classes:
            raise ValueError("a classification signature lists its classes")
        if self.task == "regression" and self.classes:
            raise ValueError("a regression signature has no classes")
        if self.class_names is not None:
            if len(self.class_names) != len(self.classes or []):
                raise ValueError("class_names name each class once, in the order of classes")
            if len(set(self.class_names)) != len(self.class_names):
                raise ValueError("class_names are unique")
        return self

    @cached_property
    def category_positions(self) -> frozenset[int]:
        """The positions of the category features (their values are names, the graph's codes)."""
        return frozenset(i for i, f in enumerate(self.features) if f.categories is not None)

    @property
    def shown_classes(self) -> list[ClassLabel] | None:
        """The classes as callers see them: the names of a text target, else the classes."""
        return list(self.class_names) if self.class_names is not None else self.classes

    def shown_label(self, label: Any) -> Any:
        """The graph's ``label`` as callers see it (a text target's class name)."""
        if self.class_names is None or self.classes is None:
            return label
        return self.class_names[self.classes.index(label)]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def view_inputs(self) -> set[str]:
        """The inputs some feature view feeds."""
        return {item for view in self.feature_views for item in view.inputs}


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
