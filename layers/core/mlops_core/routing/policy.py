"""Routing policies: the data a model's routing is (kept in the registry, changed without
a redeploy), and its validation.

- ``single``: one alias (resolved at request time) or one pinned version.
- ``split``: fixed weights over versions, deterministic by a request key when there is one.
- ``bandit``: Thompson sampling over versions from Beta posteriors of their rewards.

Any of them may name a ``shadow`` version: scored and logged for every request, never
returned. Validation errors carry the field's location and say what is wrong with it; a
service maps them to 422.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mlops_core.errors import Invalid, detail
from mlops_core.registry.entities import ALIAS_PATTERN

#: How far the weights of a split may be from summing to 1.
WEIGHT_TOLERANCE = 1e-9
#: The most versions a split or a bandit may route to: each one is a model loaded in the
#: inference function, and a bandit's decision draws one sample per version.
MAX_VARIANTS = 10

Version = Annotated[int, Field(ge=1, description="A registered version number")]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class _Policy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @property
    def served_versions(self) -> tuple[int, ...]:
        """The versions this policy can answer with (none known for an alias)."""
        raise NotImplementedError

    @property
    def named_versions(self) -> tuple[int, ...]:
        """Every version the policy names: the served ones, then the shadow if any (what a
        registry checks exists and is not archived)."""
        shadow: int | None = getattr(self, "shadow", None)
        return (*self.served_versions, *(() if shadow is None else (shadow,)))


def _check_shadow(shadow: int | None, served: tuple[int, ...]) -> int | None:
    if shadow is not None and shadow in served:
        raise ValueError(
            f"version {shadow} is served by this policy, so it cannot also be its shadow "
            "(a shadow is scored beside the served variant, never instead of it)"
        )
    return shadow


class SinglePolicy(_Policy):
    """Every request goes to one alias (resolved at request time) or one pinned version. A
    model without a routing policy routes as ``DEFAULT_POLICY``, its ``production`` alias."""

    type: Literal["single"] = "single"
    alias: Annotated[str, StringConstraints(pattern=ALIAS_PATTERN)] | None = Field(
        default=None, description="Resolved at request time (the alias may move)"
    )
    version: Version | None = Field(default=None, description="A pinned version")
    shadow: Version | None = Field(default=None, description="Scored and logged, never returned")

    @field_validator("shadow")
    @classmethod
    def _shadow(cls, shadow: int | None, info: ValidationInfo) -> int | None:
        version = info.data.get("version")
        return _check_shadow(shadow, () if version is None else (version,))

    @model_validator(mode="after")
    def _one_target(self) -> SinglePolicy:
        if (self.alias is None) == (self.version is None):
            raise ValueError("a single policy names exactly one of alias or version")
        return self

    @property
    def served_versions(self) -> tuple[int, ...]:
        return () if self.version is None else (self.version,)


class WeightedVersion(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Version
    weight: Probability = Field(description="Share of the traffic, in [0, 1]; a split's weights sum to 1")


class SplitPolicy(_Policy):
    """Fixed shares of the traffic per version (A/B tests, canaries, rollout steps).

    With a request key (a user id, say) the version is a function of the model name and
    the key, so one key always sees one version, and a change of weights moves only the
    keys it must (see ``mlops_core.routing.split``).
    """

    type: Literal["split"] = "split"
    # No min_length on tuples: pydantic reports a tuple whose only item is invalid as
    # "too short" as well; the validators check the length once the items are valid.
    weights: tuple[WeightedVersion, ...] = Field(
        max_length=MAX_VARIANTS,
        json_schema_extra={"minItems": 1},
        description="Each version once; the weights sum to 1 (within 1e-9)",
    )
    shadow: Version | None = Field(default=None, description="Scored and logged, never returned")

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: tuple[WeightedVersion, ...]) -> tuple[WeightedVersion, ...]:
        if not weights:
            raise ValueError("a split names at least one version")
        _check_unique([w.version for w in weights], "weights", ".version")
        total = math.fsum(w.weight for w in weights)
        if abs(total - 1.0) > WEIGHT_TOLERANCE:
            raise ValueError(f"the weights sum to {total:.12g}, not 1 (within {WEIGHT_TOLERANCE:g})")
        return weights

    @field_validator("shadow")
    @classmethod
    def _shadow(cls, shadow: int | None, info: ValidationInfo) -> int | None:
        weights = info.data.get("weights", ())  # absent when the weights failed validation
        return _check_shadow(shadow, tuple(w.version for w in weights))

    @property
    def served_versions(self) -> tuple[int, ...]:
        return tuple(w.version for w in self.weights if w.weight > 0)

    @property
    def named_versions(self) -> tuple[int, ...]:
        listed = tuple(w.version for w in self.weights)  # with weight 0 too
        return (*listed, *(() if self.shadow is None else (self.shadow,)))

    @cached_property
    def table(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The versions in ascending order and the upper ends of their cumulative ranges
        over [0, 1), computed once per policy (``split.pick`` reads it).

        The order is the versions', not the order they are listed in, so that listing
        them differently moves no one. The last version with a positive weight takes
        the range up to 1 whatever the rounding of the sum (weights summing to
        1 - 1e-9 leave no point unassigned); a version of weight 0 has an empty range.
        """
        ordered = sorted(self.weights, key=lambda w: w.version)
        last = max(i for i, w in enumerate(ordered) if w.weight > 0)
        bounds, total = [], 0.0
        for i, w in enumerate(ordered):
            total += w.weight
            bounds.append(math.inf if i >= last else total)
        return tuple(w.version for w in ordered), tuple(bounds)


class BanditPolicy(_Policy):
    """Thompson sampling over versions: each request goes to the version whose sample from
    its Beta(alpha0 + successes, beta0 + failures) posterior is the highest.

    ``discount`` < 1 forgets old rewards geometrically (discounted Thompson sampling, for
    rewards that change over time); ``min_exploration`` sends that share of the requests
    to a version drawn uniformly, whatever the posteriors say.
    """

    type: Literal["bandit"] = "bandit"
    versions: tuple[Version, ...] = Field(
        max_length=MAX_VARIANTS,
        json_schema_extra={"minItems": 2},
        description="The arms, each version once (at least two: one version is a single policy)",
    )
    alpha0: float = Field(default=1.0, gt=0.0, le=1e6, allow_inf_nan=False, description="Prior successes")
    beta0: float = Field(default=1.0, gt=0.0, le=1e6, allow_inf_nan=False, description="Prior failures")
    discount: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="Per reward, every arm's counts are multiplied by it (None or 1: no forgetting)",
    )
    min_exploration: float = Field(
        default=0.0,
        ge=0.0,
        lt=0.5,
        allow_inf_nan=False,
        description="Share of requests routed uniformly over the arms, in [0, 0.5)",
    )
    shadow: Version | None = Field(default=None, description="Scored and logged, never returned")

    @field_validator("versions")
    @classmethod
    def _unique(cls, versions: tuple[int, ...]) -> tuple[int, ...]:
        if len(versions) < 2:
            raise ValueError("a bandit needs at least two versions (one version is a single policy)")
        _check_unique(list(versions), "versions", "")
        return versions

    @field_validator("shadow")
    @classmethod
    def _shadow(cls, shadow: int | None, info: ValidationInfo) -> int | None:
        return _check_shadow(shadow, tuple(info.data.get("versions", ())))

    @property
    def served_versions(self) -> tuple[int, ...]:
        return self.versions


def _check_unique(versions: list[int], field: str, suffix: str) -> None:
    first: dict[int, int] = {}
    for index, version in enumerate(versions):
        if version in first:
            raise ValueError(
                f"version {version} is listed twice ({field}[{first[version]}]{suffix} and "
                f"{field}[{index}]{suffix}); list each version once"
            )
        first[version] = index


RoutingPolicy = Annotated[SinglePolicy | SplitPolicy | BanditPolicy, Field(discriminator="type")]
ROUTING_POLICY: TypeAdapter[SinglePolicy | SplitPolicy | BanditPolicy] = TypeAdapter(RoutingPolicy)
DEFAULT_POLICY = SinglePolicy(alias="production")


def parse_policy(data: Any) -> SinglePolicy | SplitPolicy | BanditPolicy:
    """A routing policy from JSON-like data, or ``Invalid`` with one detail per problem.

    Each detail's ``loc`` is the field's path inside the policy (``["weights", 1, "weight"]``),
    without pydantic's union tag.
    """
    try:
        return ROUTING_POLICY.validate_python(data)
    except ValidationError as error:
        details = [
            detail(_location(e["loc"]), e["msg"].removeprefix("Value error, "), e["type"])
            for e in error.errors(include_url=False)
        ]
        raise Invalid(
            "invalid routing policy: " + "; ".join(f"{_dotted(d['loc'])}: {d['msg']}" for d in details),
            details=details,
        ) from None


def _location(loc: tuple[int | str, ...]) -> list[str | int]:
    # A discriminated union puts the tag first ("split", "weights", 0, ...).
    if loc and loc[0] in ("single", "split", "bandit"):
        loc = loc[1:]
    return list(loc)


def _dotted(loc: list[str | int]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text or "policy"
