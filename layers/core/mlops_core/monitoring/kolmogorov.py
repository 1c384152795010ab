"""The distribution of the two-sided one-sample Kolmogorov-Smirnov statistic D_n, in numpy.

``ks_sf(d, n) = P(D_n >= d)``, which the two-sample test's large-sample p-value evaluates
at ``n = round(n1 n2 / (n1 + n2))`` (as ``scipy.stats.ks_2samp(method="asymp")`` does with
``scipy.stats.kstwo``). The regimes follow Simard & L'Ecuyer (2011), "Computing the
two-sided Kolmogorov-Smirnov distribution", J. Stat. Software 39(11), with scipy's cut-offs,
so that the answers agree with scipy to 1e-9 (``tests/unit/test_drift_statistics.py``):

- closed forms of Ruben & Gambino at the ends (n d <= 1, n d >= n - 1);
- ``2 * smirnov(n, d)`` (the one-sided tail, Birnbaum & Tingey's sum) where the two tails
  cannot both be crossed (d >= 1/2) or where doing so is negligible (n d^2 >= 2.2, or >= 4
  for n <= 140);
- the Durbin matrix (Marsaglia, Tsang & Wang 2003), exact, for the lower tail elsewhere
  (scipy uses Pomeranz's recursion for n <= 140, 0.754693 < n d^2 <= 4: also exact, so the
  values agree to rounding);
- the Pelz & Good (1976) expansion where the matrix would be too large.
"""

from __future__ import annotations

import math

import numpy as np

from mlops_core.data.cdf_summary import FloatArray

SMALL_N = 140  # up to here every regime is exact (matrix or sum)
MATRIX_MAX_N = 100_000
SMIRNOV_MAX_N = 1_000_000  # beyond: the one-sided tail's exponential approximation
LOWEST_EXPONENT = -708.0  # exp() below this is 0 in float64


def ks_sf(d: float, n: int) -> float:  # noqa: PLR0911 (one return per regime, as listed above)
    """P(D_n >= d) for the two-sided one-sample KS statistic with n observations."""
    if n <= 0:
        raise ValueError("n must be positive")
    if d >= 1.0:
        return 0.0
    if d <= 0.0:
        return 1.0
    t = n * d
    if t <= 1.0:
        if t <= 0.5:
            return 1.0
        log_lower = _log_factorial_over_power(n) + n * math.log(2 * t - 1)
        return _clip(1.0 - math.exp(log_lower))
    if t >= n - 1:
        return _clip(2 * (1.0 - d) ** n)
    if d >= 0.5:
        return _clip(2 * smirnov_sf(n, d))
    n_d_squared = t * d
    if n <= SMALL_N:
        if n_d_squared <= 4:
            return _clip(1.0 - _durbin_matrix_cdf(n, d))
        return _clip(2 * smirnov_sf(n, d))
    if n_d_squared >= 370.0:
        return 0.0
    if n_d_squared >= 2.2:
        return _clip(2 * smirnov_sf(n, d))
    if n <= MATRIX_MAX_N and n * d**1.5 <= 1.4:
        return _clip(1.0 - _durbin_matrix_cdf(n, d))
    return _clip(1.0 - _pelz_good_cdf(n, d))


def smirnov_sf(n: int, d: float) -> float:
    """P(D_n^+ >= d), the one-sided tail: Birnbaum & Tingey's finite sum, in logs.

    ``d * sum_j C(n, j) (1 - d - j/n)^(n-j) (d + j/n)^(j-1)`` over ``0 <= j < n (1 - d)``.
    """
    if d <= 0.0:
        return 1.0
    if d >= 1.0:
        return 0.0
    if n * d <= 1.0:
        return 1.0 - d * (1.0 + d) ** (n - 1)
    if n > SMIRNOV_MAX_N:
        return math.exp(-((6.0 * n * d + 1) ** 2) / 18.0 / n)
    j = np.arange(0, math.floor(n * (1.0 - d)) + 1, dtype=np.float64)
    low = 1.0 - d - j / n
    j, low = j[low > 0], low[low > 0]  # the last term is 0 when n (1 - d) is a whole number
    # The running sum's rounding grows with n: relative error ~1e-9 at n = 3e5, where the
    # two-sided test calls this only for tails below 0.025 (absolute error < 3e-11).
    log_binomial = np.concatenate([[0.0], np.cumsum(np.log((n - j[:-1]) / (j[:-1] + 1)))])
    log_terms = log_binomial + (n - j) * np.log(low) + (j - 1) * np.log(d + j / n)
    top = float(log_terms.max())
    return d * math.exp(top) * float(np.exp(log_terms - top).sum())


def _clip(p: float) -> float:
    return min(max(p, 0.0), 1.0)


def _log_factorial_over_power(n: int) -> float:
    """log(n! / n^n), without the cancellation of two large logarithms."""
    if n <= SMALL_N:
        return float(np.log(np.arange(1, n + 1) / n).sum())
    # Stirling: log n! = n log n - n + log(2 pi n)/2 + 1/(12n) - 1/(360n^3) + 1/(1260n^5)
    return -n + 0.5 * math.log(2 * math.pi * n) + 1 / (12 * n) - 1 / (360 * n**3) + 1 / (1260 * n**5)


def _durbin_matrix_cdf(n: int, d: float) -> float:
    """P(D_n < d), exactly: Durbin's matrix H, the (k, k) entry of H^n, times n!/n^n."""
    k = math.ceil(n * d)
    h = k - n * d
    size = 2 * k - 1
    rows, cols = np.indices((size, size))
    gap = rows - cols + 1
    factorials = np.cumprod(np.r_[1.0, np.arange(1, size + 1, dtype=np.float64)])
    matrix = np.where(gap >= 0, 1.0 / factorials[np.clip(gap, 0, size)], 0.0)
    powers = h ** np.arange(1, size + 1)
    matrix[:, 0] -= powers / factorials[1 : size + 1]
    matrix[-1, :] -= powers[::-1] / factorials[size:0:-1]
    if 2 * h - 1 > 0:
        matrix[-1, 0] += (2 * h - 1) ** size / factorials[size]
    entry, exponent = _matrix_power_entry(matrix, n, k - 1)
    if entry <= 0.0:
        return 0.0
    return math.exp(math.log(entry) + exponent * math.log(2.0) + _log_factorial_over_power(n))


def _matrix_power_entry(matrix: FloatArray, power: int, index: int) -> tuple[float, int]:
    """(m, e) with (matrix^power)[index, index] = m * 2^e: squaring with rescaling, since the
    entries grow like e^power."""
    result = np.eye(matrix.shape[0])
    result_exponent = 0
    base, base_exponent = matrix.copy(), 0
    while power:
        if power & 1:
            result = result @ base
            result_exponent += base_exponent
            result, shift = _rescaled(result)
            result_exponent += shift
        power >>= 1
        if power:
            base = base @ base
            base_exponent *= 2
            base, shift = _rescaled(base)
            base_exponent += shift
    return float(result[index, index]), result_exponent


def _rescaled(matrix: FloatArray) -> tuple[FloatArray, int]:
    largest = float(np.abs(matrix).max())
    if largest == 0.0:
        return matrix, 0
    _, exponent = math.frexp(largest)
    return np.ldexp(matrix, -exponent), exponent


def _pelz_good_cdf(n: int, d: float) -> float:
    """P(D_n <= d) ~ K0(z) + K1(z)/sqrt(n) + K2(z)/n + K3(z)/n^1.5 with z = d sqrt(n), each K
    written with Jacobi's theta transformation so that it converges fast for small z."""
    z = math.sqrt(n) * d
    z2 = z * z
    if -(math.pi**2) / 8 / z2 < LOWEST_EXPONENT:
        return 0.0
    pi2 = math.pi**2
    terms = math.ceil(16 * z / math.pi)
    odd = 2.0 * np.arange(1, terms + 1) - 1  # 1, 3, 5, ...
    o2 = odd**2
    weight = np.exp(-o2 * pi2 / (8 * z2))
    k0 = float(weight.sum())
    k1 = float(((pi2 / 4) * o2 - z2) @ weight)
    k2 = float(
        (6 * z**6 + 2 * z**4 + (2 * z**4 - 5 * z2) * pi2 / 4 * o2 + pi2**2 * (1 - 2 * z2) / 16 * o2**2)
        @ weight
    )
    k3 = float(
        (
            -30 * z**6
            - 90 * z**8
            + pi2 * (135 * z**4 - 96 * z**6) / 4 * o2
            + pi2**2 * (212 * z**4 - 60 * z2) / 16 * o2**2
            + pi2**3 * (5 - 30 * z2) / 64 * o2**3
        )
        @ weight
    )
    whole = np.arange(1, terms + 1, dtype=np.float64)
    w2 = whole**2
    whole_weight = np.exp(-w2 * pi2 / (2 * z2))
    k2_extra = float(w2 @ whole_weight) * pi2 / (-36 * z**3)
    k3_extra = float(((3 * z2 - pi2 * w2) * w2) @ whole_weight) * pi2 / (216 * z**6)
    root = math.sqrt(2 * math.pi)
    k0 *= root / z
    k1 *= root / (6 * z**4)
    k2 = k2 * root / (72 * z**7) + k2_extra * root
    k3 = k3 * root / (6480 * z**10) + k3_extra * root
    return float(k0 + k1 / math.sqrt(n) + k2 / n + k3 / n**1.5)
