"""The drift statistics agree with scipy to 1e-9 (property-based), and PSI with a hand
computation. scipy is a test dependency only: the deployed statistics are numpy."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon
from scipy.special import gammaincc

from mlops_core.monitoring import categorical
from mlops_core.monitoring.kolmogorov import ks_sf
from mlops_core.monitoring.ks import ks_2samp
from mlops_core.monitoring.numeric import population_stability_index, wasserstein_distance
from tests.unit import kolmogorov_reference

TOLERANCE = 1e-9
# Samples with many ties (small integers, rounded values) and without.
_values = st.one_of(
    st.lists(st.integers(-6, 6).map(float), min_size=1, max_size=120),
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False), min_size=1, max_size=120),
    st.lists(st.integers(-300, 300).map(lambda v: v / 10), min_size=1, max_size=120),
)


def _scipy_ks(first: np.ndarray, second: np.ndarray, method: str) -> stats._stats_py.KstestResult:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result = stats.ks_2samp(first, second, method=method)
    # scipy abandons its exact answer when rounding puts it a hair outside [0, 1] (e.g. 7 vs
    # 7 rows, D = 1/7: the exact p is 1) and answers asymptotically instead; ours stays exact.
    assume(not any("Switching to method=asymp" in str(w.message) for w in caught))
    # One row each: n1 n2 / (n1 + n2) rounds to 0 and scipy answers NaN; ours answers 1.
    assume(not math.isnan(result.pvalue))
    return result


@settings(max_examples=300, deadline=None)
@given(first=_values, second=_values)
def test_exact_ks_agrees_with_scipy(first: list[float], second: list[float]) -> None:
    a, b = np.asarray(first), np.asarray(second)
    ours, theirs = ks_2samp(a, b, method="exact"), _scipy_ks(a, b, "exact")
    assert abs(ours.statistic - theirs.statistic) <= TOLERANCE
    assert abs(ours.p_value - theirs.pvalue) <= TOLERANCE


@settings(max_examples=300, deadline=None)
@given(first=_values, second=_values)
def test_asymptotic_ks_agrees_with_scipy(first: list[float], second: list[float]) -> None:
    a, b = np.asarray(first), np.asarray(second)
    ours, theirs = ks_2samp(a, b, method="asymptotic"), _scipy_ks(a, b, "asymp")
    assert abs(ours.statistic - theirs.statistic) <= TOLERANCE
    assert abs(ours.p_value - theirs.pvalue) <= TOLERANCE


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    sizes=st.tuples(st.integers(200, 30_000), st.integers(200, 30_000)),
    shift=st.floats(0, 0.3),
    ties=st.booleans(),
)
def test_large_sample_ks_agrees_with_scipy(
    seed: int, sizes: tuple[int, int], shift: float, ties: bool
) -> None:
    """Sizes where scipy's 'auto' is asymptotic (and the Kolmogorov regimes all occur)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=sizes[0]), rng.normal(shift, size=sizes[1])
    if ties:
        a, b = np.round(a, 1), np.round(b, 1)
    ours, theirs = ks_2samp(a, b, method="asymptotic"), _scipy_ks(a, b, "asymp")
    assert abs(ours.statistic - theirs.statistic) <= TOLERANCE
    assert abs(ours.p_value - theirs.pvalue) <= TOLERANCE


@pytest.mark.parametrize("n", [1, 2, 7, 60, 140, 141, 500, 5_000, 99_999, 100_001, 400_000, 2_000_000])
def test_kolmogorov_tail_agrees_with_scipy_in_every_regime(n: int) -> None:
    """At the n where scipy takes seconds, against scipy's values recorded by
    tests/unit/kolmogorov_reference.py (checked against the installed scipy below)."""
    points = kolmogorov_reference.reference_points(n)
    if n in kolmogorov_reference.RECORDED_N:
        recorded = kolmogorov_reference.load()["values"][str(n)]
        assert [d for d, _ in recorded] == points, f"regenerate: {kolmogorov_reference.COMMAND}"
        theirs = [sf for _, sf in recorded]
    else:
        theirs = [float(stats.kstwo.sf(d, n)) for d in points]
    worst = max(abs(ks_sf(d, n) - sf) for d, sf in zip(points, theirs, strict=True))
    assert worst <= TOLERANCE


@pytest.mark.parametrize("n", kolmogorov_reference.RECORDED_N)
def test_recorded_kolmogorov_tails_are_what_the_installed_scipy_answers(n: int) -> None:
    """The first recorded point of each of scipy's regimes, recomputed by scipy now."""
    recorded = kolmogorov_reference.load()["values"][str(n)]
    first_of_each: dict[str, tuple[float, float]] = {}
    for d, sf in recorded:
        first_of_each.setdefault(kolmogorov_reference.regime(d, n), (d, sf))
    assert {"zero", "one-sided sum", "lower end", "upper end"} <= first_of_each.keys()
    assert any(regime.startswith("lower tail") for regime in first_of_each)
    for d, sf in first_of_each.values():
        assert float(stats.kstwo.sf(d, n)) == pytest.approx(sf, rel=1e-12, abs=1e-15), (
            f"scipy now answers otherwise at d={d}: {kolmogorov_reference.COMMAND}"
        )


@settings(max_examples=300, deadline=None)
@given(first=_values, second=_values)
def test_wasserstein_agrees_with_scipy(first: list[float], second: list[float]) -> None:
    theirs = stats.wasserstein_distance(first, second)
    assert abs(wasserstein_distance(first, second) - theirs) <= TOLERANCE * max(1.0, theirs)


_tables = st.integers(2, 25).flatmap(
    lambda columns: st.lists(
        st.lists(st.integers(0, 400), min_size=columns, max_size=columns), min_size=2, max_size=4
    )
)


@settings(max_examples=300, deadline=None)
@given(rows=_tables)
def test_chi_square_agrees_with_scipy(rows: list[list[int]]) -> None:
    table = np.asarray(rows, dtype=float)
    table = table[:, table.sum(axis=0) > 0]
    table = table[table.sum(axis=1) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return  # scipy refuses it; ours answers statistic 0, p 1 (tested below)
    theirs = stats.chi2_contingency(table, correction=False)
    ours = categorical.chi_square_homogeneity(table)
    assert ours.dof == theirs.dof
    assert abs(ours.statistic - theirs.statistic) <= TOLERANCE * max(1.0, theirs.statistic)
    assert abs(ours.p_value - theirs.pvalue) <= TOLERANCE


def test_chi_square_of_one_shared_category_is_no_evidence() -> None:
    assert categorical.chi_square_homogeneity([[5, 0], [7, 0]]) == categorical.ChiSquareResult(0.0, 0, 1.0)


@settings(max_examples=300, deadline=None)
@given(a=st.floats(0.5, 600), x=st.floats(0, 2000))
def test_upper_incomplete_gamma_agrees_with_scipy(a: float, x: float) -> None:
    assert abs(categorical.regularized_upper_gamma(a, x) - gammaincc(a, x)) <= TOLERANCE


@settings(max_examples=300, deadline=None)
@given(rows=_tables)
def test_jensen_shannon_distance_agrees_with_scipy(rows: list[list[int]]) -> None:
    first, second = np.asarray(rows[0], float), np.asarray(rows[1], float)
    if first.sum() == 0 or second.sum() == 0:
        return
    theirs = jensenshannon(first, second, base=2)
    assert abs(categorical.jensen_shannon_distance(first, second) - theirs) <= TOLERANCE


@settings(max_examples=200, deadline=None)
@given(p=st.lists(st.floats(0, 1), min_size=1, max_size=60))
def test_benjamini_hochberg_agrees_with_scipy(p: list[float]) -> None:
    assert np.abs(categorical.benjamini_hochberg(p) - stats.false_discovery_control(p)).max() <= TOLERANCE


def test_bonferroni_multiplies_by_the_number_of_tests_capped_at_one() -> None:
    assert categorical.bonferroni([0.01, 0.2, 0.5]).tolist() == pytest.approx([0.03, 0.6, 1.0])


def test_psi_matches_a_hand_computation() -> None:
    """Reference 50/30/20 %, window 40/30/30 %, and an empty bin floored at 1e-4."""
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + 0 + (0.3 - 0.2) * math.log(0.3 / 0.2)
    assert population_stability_index([500, 300, 200], [40, 30, 30]) == pytest.approx(by_hand, abs=1e-12)
    empty = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + (0.5 - 0.5) * 0 + (0.5 - 1e-4) * math.log(0.5 / 1e-4)
    assert population_stability_index([5, 5, 0], [0, 5, 5]) == pytest.approx(empty, abs=1e-12)
