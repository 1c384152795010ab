"""One routing decision: a policy (and, for a bandit, its arms' counts) in, what answers out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlops_core.routing import bandit, split
from mlops_core.routing.bandit import Arm
from mlops_core.routing.policy import BanditPolicy, SinglePolicy, SplitPolicy


@dataclass(frozen=True, slots=True)
class Decision:
    """What answers a request: a version, or an alias to resolve (``single`` by alias),
    and the shadow version to score beside it, if any (never returned)."""

    version: int | None
    alias: str | None = None
    shadow: int | None = None


def route(
    policy: SinglePolicy | SplitPolicy | BanditPolicy,
    *,
    model_name: str,
    rng: np.random.Generator,
    key: str | None = None,
    arms: Sequence[Arm] = (),
) -> Decision:
    """Where one request goes under ``policy``.

    ``key`` (a user or session id) makes a split deterministic; a bandit ignores it.
    ``arms`` are a bandit's counts, best as ``bandit.arms_for(policy, counts)`` returns
    them (they are realigned on the policy's versions otherwise; missing ones count zero).
    """
    if isinstance(policy, SplitPolicy):
        return Decision(split.choose(policy, model_name, key, rng), shadow=policy.shadow)
    if isinstance(policy, BanditPolicy):
        if tuple(arm.version for arm in arms) != policy.versions:
            arms = bandit.arms_for(policy, arms)
        return Decision(bandit.choose_for(policy, arms, rng), shadow=policy.shadow)
    return Decision(policy.version, alias=policy.alias, shadow=policy.shadow)
