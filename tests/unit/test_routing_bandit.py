"""Thompson sampling: decisions follow the posteriors, discounting is Raj & Kalyani's, and the
summary's numpy-only Monte Carlo agrees with scipy's exact Beta quantiles."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import integrate, stats

from mlops_core.routing import bandit
from mlops_core.routing.bandit import Arm
from mlops_core.routing.policy import BanditPolicy


def test_a_clearly_better_arm_is_always_chosen() -> None:
    rng = np.random.default_rng(0)
    arms = (Arm(1, 0.0, 1000.0), Arm(2, 1000.0, 0.0), Arm(3, 10.0, 990.0))
    assert {bandit.choose(arms, rng) for _ in range(1000)} == {2}


def test_decisions_are_reproducible_from_the_generator() -> None:
    arms = (Arm(1, 5.0, 95.0), Arm(2, 6.0, 94.0), Arm(3, 8.0, 92.0))
    first = [bandit.choose(arms, np.random.default_rng(3)) for _ in range(5)]
    rng = np.random.default_rng(3)
    run = [bandit.choose(arms, rng) for _ in range(200)]
    assert first == [run[0]] * 5
    rng = np.random.default_rng(3)
    assert [bandit.choose(arms, rng) for _ in range(200)] == run


def test_decision_shares_are_the_posterior_probabilities_of_being_best() -> None:
    arms = (Arm(1, 5.0, 95.0), Arm(2, 6.0, 94.0), Arm(3, 8.0, 92.0))
    rng = np.random.default_rng(1)
    shares = Counter(bandit.choose(arms, rng) for _ in range(20_000))
    for summary in bandit.posterior_summary(arms):
        assert shares[summary.version] / 20_000 == pytest.approx(summary.p_best, abs=0.015)


def test_min_exploration_is_spread_over_the_arms() -> None:
    arms = (Arm(1, 1000.0, 0.0), Arm(2, 0.0, 1000.0), Arm(3, 0.0, 1000.0))
    rng = np.random.default_rng(2)
    shares = Counter(bandit.choose(arms, rng, min_exploration=0.3) for _ in range(20_000))
    assert shares[2] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert shares[3] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert shares[1] / 20_000 == pytest.approx(0.8, abs=0.01)


def test_batched_decisions_have_the_same_distribution() -> None:
    arms = (Arm(1, 5.0, 95.0), Arm(2, 6.0, 94.0), Arm(3, 8.0, 92.0))
    rng = np.random.default_rng(5)
    one_by_one = Counter(bandit.choose(arms, rng) for _ in range(20_000))
    batched = Counter(bandit.choose_many(arms, rng, 20_000).tolist())
    for version in (1, 2, 3):
        assert batched[version] / 20_000 == pytest.approx(one_by_one[version] / 20_000, abs=0.02)
    dominated = (Arm(1, 1000.0, 0.0), Arm(2, 0.0, 1000.0))
    shares = Counter(bandit.choose_many(dominated, rng, 20_000, min_exploration=0.2).tolist())
    assert shares[2] / 20_000 == pytest.approx(0.1, abs=0.01)
    assert bandit.choose_many(arms, rng, 0).shape == (0,)
    with pytest.raises(ValueError, match="at least one arm"):
        bandit.choose_many((), rng, 3)


def test_choose_for_uses_the_policys_priors() -> None:
    # A strong prior for failures on both: the first arm's single success decides nothing...
    policy = BanditPolicy(versions=(1, 2), alpha0=1.0, beta0=1e5)
    arms = bandit.arms_for(policy, [Arm(1, 1.0, 0.0)])
    assert arms == (Arm(1, 1.0, 0.0), Arm(2, 0.0, 0.0))
    rng = np.random.default_rng(4)
    shares = Counter(bandit.choose_for(policy, arms, rng) for _ in range(4000))
    assert 0.6 < shares[1] / 4000 < 0.8
    # ...while under a flat prior it nearly always does.
    shares = Counter(bandit.choose(arms, rng) for _ in range(4000))
    assert shares[1] / 4000 > 0.6
    with pytest.raises(ValueError, match="at least one arm"):
        bandit.choose((), rng)


def test_update_without_discount_adds_the_counts() -> None:
    arms = (Arm(1, 2.0, 3.0), Arm(2))
    assert bandit.update(arms, 2, [1, 0, 1, 1]) == (Arm(1, 2.0, 3.0), Arm(2, 3.0, 1.0))
    assert bandit.update(arms, 2, [1.0], discount=1.0) == (Arm(1, 2.0, 3.0), Arm(2, 1.0, 0.0))
    assert bandit.update(arms, 1, []) == arms
    # A version no longer (or not yet) among the arms is credited all the same.
    assert bandit.update(arms, 9, [1, 0.25]) == (*arms, Arm(9, 1.25, 0.75))


def _discounted_reference(arms: dict[int, list[float]], steps: list[tuple[int, float]], gamma: float):
    """Raj & Kalyani (2017), Algorithm 2, one time step per reward: decay every arm, then add."""
    for version, reward in steps:
        for counts in arms.values():
            counts[0] *= gamma
            counts[1] *= gamma
        arms.setdefault(version, [0.0, 0.0])
        arms[version][0] += reward
        arms[version][1] += 1 - reward
    return arms


def test_update_with_discount_is_discounted_thompson_sampling() -> None:
    gamma = 0.9
    arms = (Arm(1, 4.0, 6.0), Arm(2, 1.0, 1.0), Arm(3, 0.5, 0.0))
    rewards = [1, 0, 0, 1, 1]
    updated = bandit.update(arms, 2, rewards, discount=gamma)
    expected = _discounted_reference(
        {a.version: [a.successes, a.failures] for a in arms}, [(2, r) for r in rewards], gamma
    )
    for arm in updated:
        assert [arm.successes, arm.failures] == pytest.approx(expected[arm.version], rel=1e-12)
    # The order inside a batch matters: later rewards weigh more.
    assert (
        bandit.update(arms, 2, [1, 0], discount=gamma)[1].successes
        < bandit.update(arms, 2, [0, 1], discount=gamma)[1].successes
    )
    # A sequence of per-arm batches is the reference applied to the rewards arm by arm.
    batches = [(1, [1, 0, 0]), (3, [0, 1]), (1, [1])]
    state: tuple[Arm, ...] = arms
    for version, batch in batches:
        state = bandit.update(state, version, batch, discount=gamma)
    expected = _discounted_reference(
        {a.version: [a.successes, a.failures] for a in arms}, [(v, r) for v, b in batches for r in b], gamma
    )
    assert {a.version: pytest.approx([a.successes, a.failures]) for a in state} == expected


@pytest.mark.parametrize("reward", [-0.1, 1.5, float("nan")])
def test_update_refuses_rewards_outside_zero_one(reward: float) -> None:
    with pytest.raises(ValueError, match=r"a reward is in \[0, 1\]"):
        bandit.update((Arm(1),), 1, [1, reward])


@pytest.mark.parametrize("discount", [0.0, -0.5, 1.01])
def test_update_refuses_a_discount_outside_zero_one(discount: float) -> None:
    with pytest.raises(ValueError, match=r"discount must be in \(0, 1\]"):
        bandit.update((Arm(1),), 1, [1], discount=discount)


@pytest.mark.parametrize(
    ("successes", "failures", "alpha0", "beta0"),
    [
        (0.0, 0.0, 1.0, 1.0),
        (3.0, 40.0, 1.0, 1.0),
        (120.0, 1880.0, 1.0, 1.0),
        (0.0, 5.0, 0.5, 0.5),
        (9500.0, 500.0, 1.0, 1.0),
        (2.3, 7.9, 2.0, 3.0),
    ],
)
def test_credible_interval_ends_sit_at_their_tail_probabilities(
    successes: float, failures: float, alpha0: float, beta0: float
) -> None:
    (summary,) = bandit.posterior_summary([Arm(1, successes, failures)], alpha0=alpha0, beta0=beta0)
    exact = stats.beta(alpha0 + successes, beta0 + failures)
    assert summary.mean == pytest.approx(exact.mean(), rel=1e-12)
    # One standard error of a sample 2.5 % quantile of 20,000 draws is 0.0011 in probability.
    assert abs(exact.cdf(summary.lower) - 0.025) < 0.004
    assert abs(exact.cdf(summary.upper) - 0.975) < 0.004
    # In value: within 0.1 posterior standard deviations (skewed posteriors are the worst).
    assert abs(summary.lower - exact.ppf(0.025)) < 0.1 * exact.std()
    assert abs(summary.upper - exact.ppf(0.975)) < 0.1 * exact.std()
    assert (summary.successes, summary.failures) == (successes, failures)


def test_probability_of_being_best_matches_numerical_integration() -> None:
    arms = [Arm(1, 5.0, 95.0), Arm(2, 8.0, 92.0)]
    a, b = stats.beta(6, 96), stats.beta(9, 93)
    # P(B > A) = integral of pdf_B(x) * cdf_A(x)
    exact, _ = integrate.quad(lambda x: b.pdf(x) * a.cdf(x), 0, 1)
    one, two = bandit.posterior_summary(arms)
    assert two.p_best == pytest.approx(exact, abs=0.011)  # 3 standard errors of 20,000 draws
    assert one.p_best + two.p_best == pytest.approx(1.0)


def test_the_summary_is_deterministic_and_follows_the_level() -> None:
    arms = [Arm(1, 5.0, 95.0), Arm(2, 6.0, 94.0), Arm(3, 8.0, 92.0)]
    assert bandit.posterior_summary(arms) == bandit.posterior_summary(arms)
    wide, narrow = bandit.posterior_summary(arms[:1], level=0.99)[0], bandit.posterior_summary(arms[:1])[0]
    assert wide.lower < narrow.lower < narrow.mean < narrow.upper < wide.upper
    assert sum(s.p_best for s in bandit.posterior_summary(arms)) == pytest.approx(1.0)
    assert bandit.posterior_summary([]) == ()
    with pytest.raises(ValueError, match="level"):
        bandit.posterior_summary(arms, level=1.0)


def test_summary_for_covers_the_policys_arms() -> None:
    policy = BanditPolicy(versions=(4, 5), alpha0=2.0, beta0=2.0)
    four, five = bandit.summary_for(policy, [Arm(4, 2.0, 0.0), Arm(9, 1.0, 1.0)])
    assert (four.version, five.version) == (4, 5)
    assert four.mean == pytest.approx(4 / 6)
    assert five.mean == pytest.approx(0.5)
