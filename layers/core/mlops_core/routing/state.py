"""What the routing of a model holds between requests: the policy in force (with its
revision, who set it and why), the bandit's posterior counts, and per version the plain
totals the routing summary and the rollout guardrails read."""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.routing.bandit import Arm
from mlops_core.routing.policy import DEFAULT_POLICY, RoutingPolicy


class StoredRouting(BaseModel):
    """A model's routing policy as the registry keeps it. Revision 0 is the default policy
    of a model that never had one set (nothing stored)."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    policy: RoutingPolicy = DEFAULT_POLICY
    revision: int = Field(default=0, ge=0, description="Incremented by every change; 0: never set")
    updated_at: str | None = None
    actor: str | None = None
    reason: str = ""


class ArmsState(BaseModel):
    """A model's bandit counts: one arm per version that ever earned a reward, discounted
    when the policy that counted them had a discount. Revision 0: nothing counted yet."""

    model_config = ConfigDict(frozen=True)

    model_name: str
    arms: tuple[Arm, ...] = ()
    revision: int = Field(default=0, ge=0, description="Optimistic lock of the rewards updater")
    updated_at: str | None = None


#: Upper ends (ms) of the latency histogram's buckets; the last one is unbounded. Neighbours
#: are at most 1.5x apart from 2 ms up, so a p99 ratio guardrail of 2 is never tripped by one
#: bucket's step (with 1-2-5 buckets, 20 -> 50 ms was already 2.5x). A superset of the 1-2-5
#: grid the totals were first counted in, so older items read the same.
LATENCY_BUCKETS_MS: tuple[float, ...] = (
    *(1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 120, 150, 200, 250, 300),
    *(400, 500, 600, 800, 1000, 1500, 2000, 3000, 4000, 5000, 7500, 10000),
    math.inf,
)


def latency_bucket(latency_ms: float) -> str:
    """The name of the bucket ``latency_ms`` falls in (``le_5``: at most 5 ms; ``le_inf``)."""
    for bound in LATENCY_BUCKETS_MS:
        if latency_ms <= bound:
            return _bucket_name(bound)
    return _bucket_name(math.inf)


def _bucket_name(bound: float) -> str:
    return "le_inf" if math.isinf(bound) else f"le_{bound:g}"


LATENCY_BUCKET_NAMES: tuple[str, ...] = tuple(_bucket_name(b) for b in LATENCY_BUCKETS_MS)


class VariantTotals(BaseModel):
    """Plain (never discounted) totals of one version of a model, added exactly once per
    capture delivery (traffic) and per feedback (the rest)."""

    model_config = ConfigDict(frozen=True)

    version: int
    calls: int = Field(default=0, description="Prediction calls this version answered or failed")
    errors: int = Field(default=0, description="Calls that failed once this version was chosen")
    latency_ms: dict[str, int] = Field(
        default_factory=dict,
        description="Calls per latency bucket (le_1 … le_10000, le_inf: at most that many ms), "
        "without the time a call spent loading the version",
    )
    model_loads: int = Field(
        default=0, description="Calls that loaded the version first (a container's first call to it)"
    )
    requests: int = Field(default=0, description="Predictions served by this version (rows)")
    shadow_requests: int = Field(default=0, description="Predictions scored by it as a shadow")
    feedback: int = Field(default=0, description="Feedback recorded on its predictions")
    rewarded: int = Field(default=0, description="Feedback that carried a reward")
    reward_sum: float = Field(default=0.0, description="Sum of those rewards")


def latency_quantile_ms(histogram: dict[str, int], q: float) -> float | None:
    """The upper end of the bucket holding the ``q`` quantile of the calls (an upper bound of
    the true quantile, within one bucket); None without calls."""
    total = sum(histogram.values())
    if total == 0:
        return None
    seen = 0
    for bound, name in zip(LATENCY_BUCKETS_MS, LATENCY_BUCKET_NAMES, strict=True):
        seen += histogram.get(name, 0)
        if seen >= q * total:
            return bound
    return math.inf


def minus(after: VariantTotals, before: VariantTotals) -> VariantTotals:
    """What was added between two reads of one version's totals (a rollout step's window)."""
    return VariantTotals(
        version=after.version,
        calls=after.calls - before.calls,
        errors=after.errors - before.errors,
        model_loads=after.model_loads - before.model_loads,
        latency_ms={k: after.latency_ms.get(k, 0) - before.latency_ms.get(k, 0) for k in after.latency_ms},
        requests=after.requests - before.requests,
        shadow_requests=after.shadow_requests - before.shadow_requests,
        feedback=after.feedback - before.feedback,
        rewarded=after.rewarded - before.rewarded,
        reward_sum=after.reward_sum - before.reward_sum,
    )
