"""Thompson sampling over Beta posteriors: the decision, the reward update, the summary.

An arm is a version with its reward counts, ``(successes, failures)``, kept as floats
because discounting makes them fractional. Its posterior is
Beta(alpha0 + successes, beta0 + failures).

Discounting follows discounted Thompson sampling (V. Raj and S. Kalyani, "Taming
Non-stationary Bandits: A Bayesian Approach", arXiv:1707.09727, 2017, Algorithm 2): at
every time step each arm's counts are multiplied by the discount gamma, then the step's
reward is added to the arm that earned it. One reward is one time step here, so a batch
of n rewards multiplies every arm's counts by gamma**n, and the rewards inside it weigh
gamma**(n - j) in their order. (In the paper a time step is a round and every round has a
reward; where feedback is partial, only rounds with a reward age the counts.) With
gamma = 1 it is plain Thompson sampling with a Beta(alpha0, beta0) prior (Agrawal and
Goyal, 2012).

The decision draws one sample per arm with ``numpy.random.Generator.beta`` called on
scalars: for the up to ``MAX_VARIANTS`` arms a policy may have, that is faster than one
vectorized call (whose per-call overhead is several times one scalar draw) and than the
standard library's ``random.betavariate`` (see docs/benchmarks.md, "Bandit").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlops_core.routing.policy import BanditPolicy

#: Monte Carlo draws per arm in ``posterior_summary``. The interval's ends then sit at
#: tail probabilities within 0.0011 (one standard error) of 2.5 % and 97.5 %: about 0.02
#: posterior standard deviations for a bell-shaped posterior, up to 0.07 for a skewed one
#: with few counts (checked against scipy's Beta quantiles in the unit tests). P(best) is
#: within 0.0036 (one standard error at 0.5).
SUMMARY_SAMPLES = 20_000
SUMMARY_SEED = 20171  # fixed: the same counts always give the same summary


class Arm(NamedTuple):
    """One version and its (discounted) reward counts."""

    version: int
    successes: float = 0.0
    failures: float = 0.0


class ArmSummary(BaseModel):
    """What the posterior of one arm says."""

    model_config = ConfigDict(frozen=True)

    version: int
    successes: float = Field(description="Rewards counted (discounted), without the prior")
    failures: float = Field(description="Failures counted (discounted), without the prior")
    mean: float = Field(description="Posterior mean of the reward rate (exact)")
    lower: float = Field(description="Lower end of the central credible interval (Monte Carlo)")
    upper: float = Field(description="Upper end of the central credible interval (Monte Carlo)")
    p_best: float = Field(
        description="Posterior probability that this arm has the highest rate (Monte Carlo)"
    )


def arms_for(policy: BanditPolicy, known: Iterable[Arm] = ()) -> tuple[Arm, ...]:
    """The policy's arms in its order, with the counts of ``known`` (zero for a new version;
    counts of versions the policy no longer lists are left out)."""
    counts = {arm.version: arm for arm in known}
    return tuple(counts.get(version) or Arm(version) for version in policy.versions)


def choose(
    arms: Sequence[Arm],
    rng: np.random.Generator,
    *,
    alpha0: float = 1.0,
    beta0: float = 1.0,
    min_exploration: float = 0.0,
) -> int:
    """The version that answers: the arm with the highest posterior sample.

    With ``min_exploration`` > 0, that share of the decisions goes to an arm drawn
    uniformly instead, so every arm gets at least ``min_exploration / len(arms)`` of the
    traffic whatever its posterior.
    """
    if not arms:
        raise ValueError("a bandit decision needs at least one arm")
    if min_exploration > 0.0 and rng.random() < min_exploration:
        return arms[int(rng.random() * len(arms))].version
    beta = rng.beta
    best_version, best = arms[0].version, -1.0
    for version, successes, failures in arms:
        sample = beta(alpha0 + successes, beta0 + failures)
        if sample > best:
            best_version, best = version, sample
    return best_version


def choose_many(
    arms: Sequence[Arm],
    rng: np.random.Generator,
    size: int,
    *,
    alpha0: float = 1.0,
    beta0: float = 1.0,
    min_exploration: float = 0.0,
) -> np.ndarray:
    """``size`` decisions from the same posteriors at once (a batch of requests), vectorized:
    the versions, as ``choose`` would pick them one by one (not the same draws)."""
    if not arms:
        raise ValueError("a bandit decision needs at least one arm")
    alpha = np.array([alpha0 + arm.successes for arm in arms])
    beta = np.array([beta0 + arm.failures for arm in arms])
    picks = rng.beta(alpha[:, None], beta[:, None], size=(len(arms), size)).argmax(axis=0)
    if min_exploration > 0.0:
        explore = rng.random(size) < min_exploration
        picks[explore] = rng.integers(0, len(arms), int(explore.sum()))
    versions: np.ndarray = np.array([arm.version for arm in arms], dtype=np.int64)[picks]
    return versions


def choose_for(policy: BanditPolicy, arms: Sequence[Arm], rng: np.random.Generator) -> int:
    """``choose`` with the policy's priors and exploration share."""
    return choose(arms, rng, alpha0=policy.alpha0, beta0=policy.beta0, min_exploration=policy.min_exploration)


def update(
    arms: Sequence[Arm], version: int, rewards: Iterable[float], *, discount: float | None = None
) -> tuple[Arm, ...]:
    """The arms after ``rewards`` (each in [0, 1], in the order they were earned) for ``version``.

    Without a discount (None or 1) the rewards are added to the version's counts. With a
    discount gamma, each reward is one time step: every arm's counts are multiplied by
    gamma, then the reward is added (``r`` to successes, ``1 - r`` to failures). A version
    not among ``arms`` is appended as a new arm: a reward is credited to the version that
    served the prediction, whether or not the policy still lists it.
    """
    gamma = 1.0 if discount is None else discount
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"discount must be in (0, 1], not {discount}")
    by_version = {arm.version: arm for arm in arms}
    target = by_version.get(version) or Arm(version)
    successes, failures, steps = target.successes, target.failures, 0
    for reward in rewards:
        if not 0.0 <= reward <= 1.0:  # also refuses NaN
            raise ValueError(f"a reward is in [0, 1], not {reward!r}")
        successes = gamma * successes + reward
        failures = gamma * failures + (1.0 - reward)
        steps += 1
    updated = Arm(version, successes, failures)
    if gamma == 1.0 or steps == 0:
        others = list(arms)
    else:
        decay = gamma**steps
        others = [Arm(a.version, a.successes * decay, a.failures * decay) for a in arms]
    result = [updated if arm.version == version else arm for arm in others]
    if version not in by_version:
        result.append(updated)
    return tuple(result)


def posterior_summary(
    arms: Sequence[Arm],
    *,
    alpha0: float = 1.0,
    beta0: float = 1.0,
    level: float = 0.95,
    samples: int = SUMMARY_SAMPLES,
    seed: int = SUMMARY_SEED,
) -> tuple[ArmSummary, ...]:
    """Per arm: the posterior mean (exact), the central ``level`` credible interval and the
    probability of being the best arm (both Monte Carlo: ``samples`` draws per arm from a
    generator seeded with ``seed``, so the same counts always give the same numbers).

    numpy only (no scipy in the core layer): the interval's ends are sample quantiles (see
    ``SUMMARY_SAMPLES`` for their error).
    """
    if not arms:
        return ()
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    alpha = np.array([alpha0 + arm.successes for arm in arms])
    beta = np.array([beta0 + arm.failures for arm in arms])
    draws = np.random.default_rng(seed).beta(alpha[:, None], beta[:, None], size=(len(arms), samples))
    lower, upper = np.quantile(draws, [(1.0 - level) / 2.0, (1.0 + level) / 2.0], axis=1)
    p_best = np.bincount(np.argmax(draws, axis=0), minlength=len(arms)) / samples
    return tuple(
        ArmSummary(
            version=arm.version,
            successes=arm.successes,
            failures=arm.failures,
            mean=float(alpha[i] / (alpha[i] + beta[i])),
            lower=float(lower[i]),
            upper=float(upper[i]),
            p_best=float(p_best[i]),
        )
        for i, arm in enumerate(arms)
    )


def summary_for(policy: BanditPolicy, arms: Sequence[Arm]) -> tuple[ArmSummary, ...]:
    """``posterior_summary`` of the policy's arms with its priors."""
    return posterior_summary(arms_for(policy, arms), alpha0=policy.alpha0, beta0=policy.beta0)
