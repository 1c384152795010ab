"""A numeric window against the reference's CDF summary: KS, Wasserstein-1 and PSI from one
sort of the window.

- **KS**: ``ks.ks_statistic`` and ``ks.ks_p_value`` (n2 = the reference's row count).
- **Wasserstein-1** = integral of |F_window - F_reference| dt, exact for the two broken-line
  CDFs: between consecutive points of either, the window's CDF is flat and the reference's
  a straight line. Equal to ``scipy.stats.wasserstein_distance`` when the summary is exact;
  within ``error_bound * (max - min)`` of the data's value otherwise (the CDF bound,
  integrated over the reference's range). **Normalized** by the reference's standard
  deviation (population, ddof=0; as Evidently's ``wasserstein_distance_norm``): a pure
  mean shift of s standard deviations scores s. A constant reference has no scale: the
  distance is then left in the feature's units.
- **PSI** on the reference's equal-mass histogram bins, the outer bins open-ended so every
  window value has a bin; proportions below ``PSI_EPSILON`` are raised to it (no
  renormalization) so an empty bin costs a finite amount:
  ``sum (w - r) ln(w / r)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from mlops_core.data.cdf_summary import CdfSummary, FloatArray, IntArray
from mlops_core.monitoring.ks import KsMethod, KsResult, ks_p_value, statistic_from_cdfs

PSI_EPSILON = 1e-4


@dataclass(frozen=True)
class NumericComparison:
    ks: KsResult
    wasserstein: float
    wasserstein_normalized: float
    psi: float | None


def compare_numeric(
    window: npt.ArrayLike,
    reference: CdfSummary,
    *,
    scale: float,
    histogram_edges: list[float] | None = None,
    histogram_counts: list[int] | None = None,
    ks_method: KsMethod = "auto",
) -> NumericComparison:
    """Every numeric statistic of a NaN-free, non-empty window against the reference."""
    values = np.sort(np.asarray(window, dtype=np.float64))
    if values.size == 0:
        raise ValueError("the window is empty")
    placement = reference.cdf_at_sorted(values)  # shared by KS and Wasserstein
    ks = ks_p_value(statistic_from_cdfs(*placement[:2]), values.size, reference.count, method=ks_method)
    distance = wasserstein_sorted(values, reference, placement)
    psi = None
    if histogram_edges is not None and histogram_counts is not None and len(histogram_counts) > 1:
        psi = population_stability_index(
            np.asarray(histogram_counts, dtype=np.float64), binned_counts(values, histogram_edges)
        )
    normalized = distance / scale if scale > 0 else distance
    return NumericComparison(ks=ks, wasserstein=distance, wasserstein_normalized=normalized, psi=psi)


def wasserstein_sorted(
    sorted_window: FloatArray,
    reference: CdfSummary,
    placement: tuple[FloatArray, FloatArray, IntArray] | None = None,
) -> float:
    """Integral of |F_window - F_reference| over t (see the module docstring); ``placement``
    is ``reference.cdf_at_sorted(sorted_window)`` if already computed."""
    size, kept = sorted_window.size, reference.values.size
    at_window, before_window, kept_before = placement or reference.cdf_at_sorted(sorted_window)
    # The reference's kept values join the window's points, each after any equal window
    # values (a tie adds a zero-length piece): merged by computed positions, no second sort.
    slots = np.searchsorted(sorted_window, reference.values, side="right")
    window_at = np.arange(size) + kept_before
    kept_at = slots + np.arange(kept)
    points, window_level, start, end = (np.empty(size + kept) for _ in range(4))
    points[window_at], points[kept_at] = sorted_window, reference.values
    window_level[window_at] = np.arange(1, size + 1) / size
    window_level[kept_at] = slots / size
    start[window_at], start[kept_at] = at_window, reference.at_or_below / reference.count
    end[window_at], end[kept_at] = before_window, reference.below / reference.count
    lengths = np.diff(points)
    rise_start = start[:-1] - window_level[:-1]
    rise_end = end[1:] - window_level[:-1]
    same_side = rise_start * rise_end >= 0
    magnitude = np.abs(rise_start) + np.abs(rise_end)
    crossing = np.divide(
        rise_start**2 + rise_end**2, 2 * magnitude, out=np.zeros_like(magnitude), where=magnitude > 0
    )
    area = np.where(same_side, np.abs(rise_start + rise_end) / 2, crossing)
    return float((lengths * area).sum())  # not `@`: a threaded BLAS dot costs ms on a busy machine


def wasserstein_distance(first: npt.ArrayLike, second: npt.ArrayLike) -> float:
    """W1 between two raw samples (``second`` summarized exactly): scipy's value."""
    return wasserstein_sorted(
        np.sort(np.asarray(first, dtype=np.float64)), CdfSummary.of_sample(second, max_points=None)
    )


def binned_counts(sorted_window: FloatArray, edges: list[float]) -> FloatArray:
    """Window counts in the bins [e_i, e_i+1) of ``edges`` (numpy.histogram's bins, with the
    first and last opened to -inf and +inf)."""
    inner = np.asarray(edges[1:-1], dtype=np.float64)
    cuts = np.searchsorted(sorted_window, inner, side="left")
    return np.diff(np.concatenate([[0], cuts, [sorted_window.size]])).astype(np.float64)


def population_stability_index(
    reference_counts: npt.ArrayLike, window_counts: npt.ArrayLike, *, epsilon: float = PSI_EPSILON
) -> float:
    """PSI = sum (w - r) ln(w / r) over bins, proportions floored at ``epsilon``."""
    reference = np.asarray(reference_counts, dtype=np.float64)
    window = np.asarray(window_counts, dtype=np.float64)
    if reference.shape != window.shape or reference.sum() <= 0 or window.sum() <= 0:
        raise ValueError("PSI needs two non-empty count vectors over the same bins")
    r = np.maximum(reference / reference.sum(), epsilon)
    w = np.maximum(window / window.sum(), epsilon)
    return float(((w - r) * np.log(w / r)).sum())
