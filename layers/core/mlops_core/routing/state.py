"""What the routing of a model holds between requests: the policy in force (with its
revision, who set it and why), the bandit's posterior counts, and per version the plain
totals the routing summary and the rollout guardrails read."""

from __future__ import annotations

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


class VariantTotals(BaseModel):
    """Plain (never discounted) totals of one version of a model, added exactly once per
    capture delivery (requests) and per feedback (the rest)."""

    model_config = ConfigDict(frozen=True)

    version: int
    requests: int = Field(default=0, description="Predictions served by this version (rows)")
    shadow_requests: int = Field(default=0, description="Predictions scored by it as a shadow")
    feedback: int = Field(default=0, description="Feedback recorded on its predictions")
    rewarded: int = Field(default=0, description="Feedback that carried a reward")
    reward_sum: float = Field(default=0.0, description="Sum of those rewards")
