"""A numeric column's distribution kept as exact counts at chosen values: what the
reference profile stores so that drift tests (KS, Wasserstein) run without the data.

At each kept value ``v_i`` the summary holds two exact counts, ``below_i = #{x < v_i}``
and ``at_or_below_i = #{x <= v_i}``. Between two kept values the true CDF is unknown but
monotone, so it lies in ``[at_or_below_i / n, below_{i+1} / n]``; the summary's CDF is the
straight line across that band. Hence, everywhere,

    |F_summary(t) - F_data(t)| <= error_bound = max_i (below_{i+1} - at_or_below_i) / n

which is 0 when every distinct value is kept (the summary *is* the empirical CDF) and at
most ``ceil(n / max_points) / n`` (about ``1 / max_points``) otherwise, because the kept
values are order statistics at evenly spaced ranks. The bound carries over to the KS
statistic (a supremum of CDF differences moves by at most the bound) and, in value units,
to Wasserstein-1 (``error_bound * (max - min)``).

Also readable from the equal-mass histogram of profiles written before the summary existed
(``from_histogram``): the same structure with the bin edges as kept values and a bound of
one bin's mass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DEFAULT_MAX_POINTS = 1001  # bound ~0.001 on the CDF; ~25 kB of JSON per feature


@dataclass(frozen=True)
class CdfSummary:
    values: FloatArray  # strictly increasing
    below: IntArray  # #{x < values[i]}
    at_or_below: IntArray  # #{x <= values[i]}
    count: int

    @classmethod
    def of_sample(cls, sample: npt.ArrayLike, max_points: int | None = DEFAULT_MAX_POINTS) -> CdfSummary:
        """The summary of ``sample`` (NaN-free): exact if it has at most ``max_points``
        distinct values (or ``max_points`` is None), else order statistics at even ranks."""
        data = np.sort(np.asarray(sample, dtype=np.float64))
        if data.size == 0:
            raise ValueError("cannot summarize an empty sample")
        if np.isnan(data[-1]):
            raise ValueError("the sample holds NaN")
        distinct = np.flatnonzero(np.r_[True, data[1:] != data[:-1]])
        if max_points is None or distinct.size <= max_points:
            kept = data[distinct]
        else:
            if max_points < 2:
                raise ValueError("max_points must be at least 2")
            ranks = np.round(np.linspace(0, data.size - 1, max_points)).astype(np.int64)
            kept = np.unique(data[ranks])
        return cls(
            values=kept,
            below=np.searchsorted(data, kept, side="left").astype(np.int64),
            at_or_below=np.searchsorted(data, kept, side="right").astype(np.int64),
            count=int(data.size),
        )

    @classmethod
    def from_histogram(cls, edges: list[float], counts: list[int]) -> CdfSummary:
        """The CDF known only at the edges of a histogram whose bins are ``[e_i, e_i+1)`` (the
        last one closed), as ``numpy.histogram`` counts them: profiles written before the summary."""
        edge_values = np.asarray(edges, dtype=np.float64)
        bin_counts = np.asarray(counts, dtype=np.int64)
        total = int(bin_counts.sum())
        if edge_values.size == 1 and bin_counts.size == 1:  # a constant column: one point mass
            return cls(edge_values, np.zeros(1, np.int64), np.full(1, total, np.int64), total)
        if edge_values.size != bin_counts.size + 1 or total <= 0:
            raise ValueError("a histogram needs one more edge than counts, and some counted rows")
        # #{x < e_i} is the sum of the bins before e_i; the mass exactly at an edge is unknown,
        # so the edge's two counts are the same and the bound is one bin's mass.
        cumulative = np.concatenate([[0], np.cumsum(bin_counts)]).astype(np.int64)
        return cls(values=edge_values, below=cumulative, at_or_below=cumulative.copy(), count=total)

    # ---- stored form --------------------------------------------------------------
    def to_document(self) -> dict[str, Any]:
        return {
            "values": [float(v) for v in self.values],
            "below": [int(c) for c in self.below],
            "at_or_below": [int(c) for c in self.at_or_below],
            "count": self.count,
        }

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> CdfSummary:
        summary = cls(
            values=np.asarray(document["values"], dtype=np.float64),
            below=np.asarray(document["below"], dtype=np.int64),
            at_or_below=np.asarray(document["at_or_below"], dtype=np.int64),
            count=int(document["count"]),
        )
        summary.check()
        return summary

    def check(self) -> None:
        """``ValueError`` if the arrays cannot be a CDF (a corrupted or hand-edited profile)."""
        v, lo, hi = self.values, self.below, self.at_or_below
        if not (v.size == lo.size == hi.size) or v.size == 0 or self.count <= 0:
            raise ValueError("a CDF summary needs values and counts of one length and a positive count")
        if not np.all(np.isfinite(v)) or np.any(np.diff(v) <= 0):
            raise ValueError("the summary's values must be finite and strictly increasing")
        if np.any(lo > hi) or np.any(hi[:-1] > lo[1:]) or lo[0] < 0 or hi[-1] != self.count:
            raise ValueError("the summary's counts are not cumulative counts of its values")

    # ---- what the tests read ------------------------------------------------------
    @property
    def exact(self) -> bool:
        return bool(np.all(self.at_or_below[:-1] == self.below[1:])) and self.below[0] == 0

    @property
    def error_bound(self) -> float:
        """The largest possible |F_summary - F_data| anywhere (see the module docstring)."""
        gaps = self.below[1:] - self.at_or_below[:-1]
        largest = max(int(gaps.max()) if gaps.size else 0, int(self.below[0]))
        return largest / self.count

    def cdf(self, points: FloatArray, *, left: bool = False) -> FloatArray:
        """F(t) at ``points`` (right-continuous), or its left limit F(t-) with ``left``."""
        index = np.searchsorted(self.values, points, side="left" if left else "right") - 1
        last = self.values.size - 1
        if last == 0:
            return np.where(index < 0, 0.0, 1.0)
        inner = np.clip(index, 0, last - 1)
        span = self.values[inner + 1] - self.values[inner]
        rise = (self.below[inner + 1] - self.at_or_below[inner]) / self.count
        inside = self.at_or_below[inner] / self.count + (points - self.values[inner]) / span * rise
        return np.where(index < 0, 0.0, np.where(index >= last, 1.0, inside))

    def cdf_at_sorted(self, sorted_points: FloatArray) -> tuple[FloatArray, FloatArray, IntArray]:
        """(F(t), F(t-), #kept values < t) at sorted points, as ``cdf`` gives them, faster: the
        kept values are placed among the points (few searches), not each point among them."""
        size = sorted_points.size
        # Kept values at or below point k: those whose count of points strictly below is <= k.
        at_or_before = np.cumsum(
            np.bincount(np.searchsorted(sorted_points, self.values, side="left"), minlength=size + 1)
        )[:size]
        before = np.cumsum(
            np.bincount(np.searchsorted(sorted_points, self.values, side="right"), minlength=size + 1)
        )[:size]
        base, start, slope = self._pieces()
        right = base[at_or_before] + (sorted_points - start[at_or_before]) * slope[at_or_before]
        left = base[before] + (sorted_points - start[before]) * slope[before]
        return right, left, before

    def _pieces(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per piece p (t in [v_{p-1}, v_p); p = 0 before the first value, p = len after the
        last): F(t) = base[p] + (t - start[p]) * slope[p]."""
        n = self.count
        pieces = self.values.size + 1
        base, start, slope = np.zeros(pieces), np.zeros(pieces), np.zeros(pieces)
        base[1:] = self.at_or_below / n
        start[1:] = self.values
        if self.values.size > 1:
            rise = (self.below[1:] - self.at_or_below[:-1]) / n
            slope[1:-1] = rise / np.diff(self.values)
        return base, start, slope

    def quantile_knots(self) -> tuple[FloatArray, FloatArray]:
        """The quantile function as a continuous broken line: (levels, values).

        Flat at ``v_i`` across the mass it holds (levels below_i/n .. at_or_below_i/n), then a
        straight line to ``v_{i+1}`` (levels at_or_below_i/n .. below_{i+1}/n): the inverse of
        ``cdf``. Levels are non-decreasing; a repeated level is a jump.
        """
        levels = np.empty(2 * self.values.size, dtype=np.float64)
        levels[0::2] = self.below / self.count
        levels[1::2] = self.at_or_below / self.count
        return levels, np.repeat(self.values, 2)

    @property
    def minimum(self) -> float:
        return float(self.values[0])

    @property
    def maximum(self) -> float:
        return float(self.values[-1])
