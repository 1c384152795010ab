"""Splits: shares within 2 points, one key one version, weight changes move the fewest keys."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import numpy as np

from mlops_core.routing import split
from mlops_core.routing.policy import SplitPolicy, parse_policy

KEYS = [f"user-{i}" for i in range(10_000)]


def policy(*pairs: tuple[int, float]) -> SplitPolicy:
    parsed = parse_policy({"type": "split", "weights": [{"version": v, "weight": w} for v, w in pairs]})
    assert isinstance(parsed, SplitPolicy)
    return parsed


def assign(p: SplitPolicy, model: str = "churn") -> list[int]:
    rng = np.random.default_rng(0)  # unused with a key
    return [split.choose(p, model, key, rng) for key in KEYS]


def test_ten_thousand_keys_at_90_10_land_within_two_points() -> None:
    shares = Counter(assign(policy((1, 0.9), (2, 0.1))))
    assert abs(shares[1] / len(KEYS) - 0.9) <= 0.02
    assert abs(shares[2] / len(KEYS) - 0.1) <= 0.02


def test_without_a_key_the_generator_decides_in_the_same_shares() -> None:
    rng = np.random.default_rng(7)
    p = policy((1, 0.9), (2, 0.1))
    shares = Counter(split.choose(p, "churn", None, rng) for _ in range(10_000))
    assert abs(shares[2] / 10_000 - 0.1) <= 0.02


def test_the_same_key_always_gets_the_same_version() -> None:
    p = policy((1, 0.5), (2, 0.3), (3, 0.2))
    first = assign(p)
    assert assign(p) == first
    # Listing the versions in another order, or a new but equal policy, changes nothing.
    assert assign(policy((3, 0.2), (1, 0.5), (2, 0.3))) == first
    # The point is stable across processes and releases (BLAKE2b of "model\0key").
    assert split.key_point("churn", "user-42") == 0.42542100134213967


def test_a_change_from_90_10_to_80_20_moves_only_first_to_second() -> None:
    before = assign(policy((1, 0.9), (2, 0.1)))
    after = assign(policy((1, 0.8), (2, 0.2)))
    moves = Counter((b, a) for b, a in zip(before, after, strict=True) if b != a)
    assert set(moves) == {(1, 2)}
    assert abs(moves[(1, 2)] / len(KEYS) - 0.1) <= 0.02
    # Exactly the keys whose point lies in [0.8, 0.9).
    moved = {k for k, b, a in zip(KEYS, before, after, strict=True) if b != a}
    assert moved == {k for k in KEYS if 0.8 <= split.key_point("churn", k) < 0.9}


def test_a_rollout_step_keeps_everyone_who_saw_the_candidate() -> None:
    # Candidate v7 against production v3: 10 % -> 50 % -> 100 %, production's range shrinks.
    steps = [assign(policy((7, w), (3, 1 - w))) for w in (0.1, 0.5, 1.0)]
    for earlier, later in pairwise(steps):
        assert all(b == 7 for a, b in zip(earlier, later, strict=True) if a == 7)


def test_models_place_the_same_key_independently() -> None:
    a = np.array([split.key_point("churn", k) for k in KEYS])
    b = np.array([split.key_point("fraud", k) for k in KEYS])
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05
    counts, _ = np.histogram(a, bins=10, range=(0.0, 1.0))
    assert counts.min() > 900 and counts.max() < 1100  # uniform


def test_zero_weight_versions_get_nothing_and_rounding_leaves_no_gap() -> None:
    p = policy((1, 0.0), (2, 0.5), (3, 0.0), (4, 0.5), (5, 0.0))
    assert set(assign(p)) == {2, 4}
    assert split.pick(p, 0.0) == 2
    assert split.pick(p, 0.5) == 4
    # Weights that sum to 1 - 1e-10: the last point still has a version.
    q = policy((1, 0.3), (2, 0.7 - 1e-10), (3, 0.0))
    assert split.pick(q, 1.0 - 2**-53) == 2
