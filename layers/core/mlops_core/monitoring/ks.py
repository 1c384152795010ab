"""Two-sample Kolmogorov-Smirnov test of a window against a reference CDF summary.

The statistic is sup_t |F_window(t) - F_reference(t)|, from the sorted window and the
reference's ``CdfSummary`` (its CDF is exact when the summary kept every distinct value,
and within ``error_bound`` of the data's otherwise). Ties count as
``scipy.stats.ks_2samp`` counts them: both CDFs right-continuous.

p-values (two-sided), as ``ks_2samp`` computes them:

- **exact** when both samples have at most ``EXACT_MAX_N`` rows (scipy's ``auto`` rule):
  the statistic is rounded to a multiple of 1/lcm(n1, n2), and P(D >= d) is the share of
  lattice paths from (0, 0) to (n1, n2) that leave the band |x/n1 - y/n2| < d (Hodges 1958,
  computed as 1 - p directly, following Viehmann 2021, "Numerically more stable computation
  of the p-values for the two-sample Kolmogorov-Smirnov test"), by anti-diagonals; equal
  sizes use the reflection formula.
- **asymptotic** otherwise: the one-sample distribution of D with n = round(n1 n2 / (n1 + n2))
  (``kolmogorov.ks_sf``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from mlops_core.data.cdf_summary import CdfSummary, FloatArray
from mlops_core.monitoring.kolmogorov import ks_sf

EXACT_MAX_N = 10_000
KsMethod = Literal["auto", "exact", "asymptotic"]
INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class KsResult:
    statistic: float
    p_value: float
    method: Literal["exact", "asymptotic"]


def ks_statistic(sorted_window: FloatArray, reference: CdfSummary) -> float:
    """sup_t |F_window(t) - F_reference(t)| for a sorted, NaN-free, non-empty window.

    Both CDFs are non-decreasing and the window's is flat between its points, so the
    supremum of F_window - F_reference is at a window point (right-continuous values) and
    that of F_reference - F_window just before one (left limits). Within a block of tied
    window points, position k gives (k + 1)/N and k/N, whose extremes are the block's true
    values, so no de-duplication is needed.
    """
    at, before, _ = reference.cdf_at_sorted(sorted_window)
    return statistic_from_cdfs(at, before)


def statistic_from_cdfs(reference_at: FloatArray, reference_before: FloatArray) -> float:
    """The KS statistic from the reference's F(t) and F(t-) at the sorted window's points."""
    size = reference_at.size
    positions = np.arange(size, dtype=np.float64)
    above = (positions + 1) / size - reference_at
    below = reference_before - positions / size
    return float(max(above.max(), below.max(), 0.0))


def ks_test(
    window: npt.ArrayLike, reference: CdfSummary, *, method: KsMethod = "auto", presorted: bool = False
) -> KsResult:
    """The two-sided two-sample KS test of ``window`` against the reference's rows."""
    values = np.asarray(window, dtype=np.float64)
    if not presorted:
        values = np.sort(values)
    if values.size == 0:
        raise ValueError("the window is empty")
    statistic = ks_statistic(values, reference)
    return ks_p_value(statistic, values.size, reference.count, method=method)


def ks_2samp(first: npt.ArrayLike, second: npt.ArrayLike, *, method: KsMethod = "auto") -> KsResult:
    """Two raw samples (``second`` summarized exactly): ``scipy.stats.ks_2samp``'s answer."""
    return ks_test(first, CdfSummary.of_sample(second, max_points=None), method=method)


def ks_p_value(statistic: float, n1: int, n2: int, *, method: KsMethod = "auto") -> KsResult:
    """P(D >= statistic) for samples of n1 and n2 rows (the statistic as the exact test
    rounds it, when it is exact)."""
    gcd = math.gcd(n1, n2)
    chosen = method
    if chosen == "auto":
        chosen = "exact" if max(n1, n2) <= EXACT_MAX_N else "asymptotic"
    if chosen == "exact" and n1 // gcd >= INT32_MAX / (n2 // gcd):
        chosen = "asymptotic"  # lcm beyond what the rounding to 1/lcm can represent (as scipy)
    if chosen == "exact":
        lcm = (n1 // gcd) * n2
        h = round(statistic * lcm)
        rounded = h / lcm
        if h == 0:
            return KsResult(rounded, 1.0, "exact")
        p = _equal_sizes_tail(n1, h) if n1 == n2 else _band_exit_share(n1, n2, gcd, h)
        return KsResult(rounded, min(max(p, 0.0), 1.0), "exact")
    effective = round(n1 * n2 / (n1 + n2))
    return KsResult(statistic, ks_sf(statistic, max(effective, 1)), "asymptotic")


def _equal_sizes_tail(n: int, h: int) -> float:
    """P(D_{n,n} >= h/n) = 2 sum_k (-1)^(k+1) C(2n, n - kh) / C(2n, n)  (reflection)."""
    j = np.arange(n, dtype=np.float64)
    ratios = np.cumprod((n - j) / (n + 1 + j))  # ratios[r-1] = C(2n, n-r) / C(2n, n)
    terms = ratios[np.arange(h, n + 1, h) - 1]
    signs = np.where(np.arange(terms.size) % 2 == 0, 1.0, -1.0)
    return float(2 * (signs * terms)[::-1].sum())


def _band_exit_share(n1: int, n2: int, gcd: int, h: int) -> float:
    """The share of monotone lattice paths (0, 0) -> (m, n) that touch |n' x - m' y| >= h,
    with n' = n/g, m' = m/g: q(x, y) = 1 there, q(0, 0) = 0, and elsewhere
    q(x, y) = (x q(x-1, y) + y q(x, y-1)) / (x + y), the share among paths to (x, y).

    Swept by anti-diagonals s = x + y, each a vector over x restricted to the band (cells
    outside it are 1), so the Python loop runs m + n times.
    """
    m, n = max(n1, n2), min(n1, n2)
    mg, ng = m // gcd, n // gcd
    width = mg + ng
    share = np.ones(m + 2)  # share[x + 1] = q(x, s - x) on the current diagonal s; 1 off the band
    share[1] = 0.0
    band_lo, band_hi = 0, 0
    for s in range(1, m + n + 1):
        lo = max(s - n, (mg * s - h) // width + 1, 0)
        hi = min(s, m, -(-(mg * s + h) // width) - 1)
        if hi < lo:
            return 1.0  # every path crosses this diagonal outside the band
        x = np.arange(lo, hi + 1, dtype=np.float64)
        inside = (x * share[lo : hi + 1] + (s - x) * share[lo + 1 : hi + 2]) / s
        share[band_lo + 1 : band_hi + 2] = 1.0
        share[lo + 1 : hi + 2] = inside
        band_lo, band_hi = lo, hi
    return float(share[m + 1])
