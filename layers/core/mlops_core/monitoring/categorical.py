"""Categorical comparisons from counts: the chi-square test of homogeneity, Jensen-Shannon
distance, total variation, and multiple-testing corrections, in numpy.

The chi-square p-value is the regularized upper incomplete gamma function
Q(dof/2, statistic/2), by its power series below a + 1 and by Lentz's continued fraction
above (Numerical Recipes' split, where each converges fast): agreement with
``scipy.stats.chi2_contingency(correction=False)`` to 1e-9 is tested.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlops_core.data.cdf_summary import FloatArray

MAX_ITERATIONS = 100_000
TOLERANCE = 1e-16
TINY = 1e-300


@dataclass(frozen=True)
class ChiSquareResult:
    statistic: float
    dof: int
    p_value: float


def regularized_upper_gamma(a: float, x: float) -> float:
    """Q(a, x) = Gamma(a, x) / Gamma(a), for a > 0 and x >= 0."""
    if a <= 0 or x < 0 or math.isnan(x):
        raise ValueError("Q(a, x) needs a > 0 and x >= 0")
    if x == 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_prefactor = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        return 1.0 - math.exp(log_prefactor) * _lower_series(a, x)
    return math.exp(log_prefactor) * _upper_continued_fraction(a, x)


def _lower_series(a: float, x: float) -> float:
    """sum_k x^k / (a (a+1) ... (a+k)), so that P(a, x) = e^-x x^a / Gamma(a) times it."""
    term = total = 1.0 / a
    denominator = a
    for _ in range(MAX_ITERATIONS):
        denominator += 1
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * TOLERANCE:
            return total
    raise ArithmeticError(f"the incomplete gamma series did not converge (a={a}, x={x})")


def _upper_continued_fraction(a: float, x: float) -> float:
    """1 / (x + 1 - a - 1 (1 - a) / (x + 3 - a - ...)), by the modified Lentz method."""
    b = x + 1 - a
    c = 1 / TINY
    d = 1 / b
    fraction = d
    for i in range(1, MAX_ITERATIONS):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = TINY if abs(d) < TINY else d
        c = b + an / c
        c = TINY if abs(c) < TINY else c
        d = 1 / d
        step = d * c
        fraction *= step
        if abs(step - 1) < TOLERANCE:
            return fraction
    raise ArithmeticError(f"the incomplete gamma fraction did not converge (a={a}, x={x})")


def chi_square_homogeneity(table: npt.ArrayLike) -> ChiSquareResult:
    """Pearson's chi-square test that the rows of a contingency table (counts) share one
    distribution over the columns; columns with no counts are dropped (they carry no
    information, and scipy refuses their zero expected frequencies)."""
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] < 2 or np.any(counts < 0):
        raise ValueError("a contingency table needs two or more rows of non-negative counts")
    counts = counts[:, counts.sum(axis=0) > 0]
    counts = counts[counts.sum(axis=1) > 0]
    rows, columns = counts.shape
    dof = (rows - 1) * (columns - 1)
    if dof == 0:
        return ChiSquareResult(0.0, 0, 1.0)
    expected = np.outer(counts.sum(axis=1), counts.sum(axis=0)) / counts.sum()
    statistic = float(((counts - expected) ** 2 / expected).sum())
    return ChiSquareResult(statistic, dof, regularized_upper_gamma(dof / 2, statistic / 2))


def proportions(counts: npt.ArrayLike) -> FloatArray:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    if total <= 0:
        raise ValueError("no counts")
    return np.asarray(values / total, dtype=np.float64)


def jensen_shannon_distance(first: npt.ArrayLike, second: npt.ArrayLike) -> float:
    """sqrt of the Jensen-Shannon divergence in bits (0 = same, 1 = disjoint supports)."""
    p, q = proportions(first), proportions(second)
    middle = (p + q) / 2
    divergence = (_bits(p, middle) + _bits(q, middle)) / 2
    return math.sqrt(max(divergence, 0.0))


def _bits(p: FloatArray, q: FloatArray) -> float:
    present = p > 0
    return float((p[present] * np.log2(p[present] / q[present])).sum())


def total_variation(first: npt.ArrayLike, second: npt.ArrayLike) -> float:
    """Half the L1 distance between the two distributions: the largest difference in the
    probability of any set of categories."""
    return float(np.abs(proportions(first) - proportions(second)).sum() / 2)


def benjamini_hochberg(p_values: npt.ArrayLike) -> FloatArray:
    """BH-adjusted p-values (false discovery rate): min over j >= i of m p_(j) / j, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    order = np.argsort(p)
    ranked = p[order] * p.size / np.arange(1, p.size + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def bonferroni(p_values: npt.ArrayLike) -> FloatArray:
    """Bonferroni-adjusted p-values (family-wise error): m p, capped at 1."""
    p = np.asarray(p_values, dtype=np.float64)
    return np.asarray(np.minimum(p * p.size, 1.0), dtype=np.float64)
