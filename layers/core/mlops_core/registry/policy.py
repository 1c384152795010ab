"""Promotion policies: what a version must meet before it may become production."""

from __future__ import annotations

from mlops_core.errors import Conflict
from mlops_core.registry.entities import ModelVersion, PolicyViolation, PromotionPolicy


def violations(policy: PromotionPolicy, version: ModelVersion) -> list[PolicyViolation]:
    """Every rule of ``policy`` that ``version`` breaks (all of them, not just the first)."""
    found = []
    for metric, bound in policy.thresholds.items():
        value = version.metrics.get(metric)
        if value is None:
            found.append(
                PolicyViolation(
                    rule=f"thresholds.{metric}",
                    value=None,
                    message=f"v{version.version} has no '{metric}' metric recorded",
                )
            )
            continue
        if bound.min is not None and value < bound.min:
            found.append(
                PolicyViolation(
                    rule=f"thresholds.{metric}.min",
                    value=value,
                    limit=bound.min,
                    message=f"{metric} {value:.4f} is below the minimum {bound.min}",
                )
            )
        if bound.max is not None and value > bound.max:
            found.append(
                PolicyViolation(
                    rule=f"thresholds.{metric}.max",
                    value=value,
                    limit=bound.max,
                    message=f"{metric} {value:.4f} is above the maximum {bound.max}",
                )
            )
    if policy.require_staging and version.stage != "Staging":
        found.append(
            PolicyViolation(
                rule="require_staging",
                value=version.stage,
                message=f"v{version.version} must be in Staging first (it is {version.stage})",
            )
        )
    return found


def enforce(model_name: str, policy: PromotionPolicy, version: ModelVersion) -> None:
    """Raise a ``Conflict`` (409) naming every broken rule, if any."""
    broken = violations(policy, version)
    if broken:
        raise Conflict(
            f"promotion policy of '{model_name}': " + "; ".join(v.message for v in broken),
            details=[v.model_dump() for v in broken],
        )
