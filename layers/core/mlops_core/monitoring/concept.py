"""Concept drift from labelled feedback: streaming detectors over the model's errors, and the
live metric of a window against the training baseline with a confidence interval.

Both detectors are pydantic models holding their whole state, so a Lambda can store them
as JSON between runs (``model_dump_json`` / ``model_validate_json``) and carry on where the
last run stopped. Feed them 1.0 for a wrong prediction and 0.0 for a right one (or any
loss in [0, 1]); they alarm when the mean has risen.

- ``PageHinkley``: the cumulative sum of (x - running mean - delta) against its minimum;
  alarm when it rises more than ``threshold`` above it (Page 1954, Hinkley 1971). Watches
  one direction, so it reacts fastest to a known kind of change (errors going up).
- ``Adwin``: ADWIN2 (Bifet & Gavalda 2007, "Learning from time-changing data with adaptive
  windowing"): a window kept in exponential-histogram buckets, cut where two sub-windows'
  means differ by more than the Hoeffding/Bernstein bound at confidence ``delta``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

from pydantic import BaseModel, Field


class PageHinkley(BaseModel):
    delta: float = Field(0.005, ge=0, description="change in the mean that is tolerated")
    threshold: float = Field(25.0, gt=0, description="rise of the cumulative sum that alarms (lambda)")
    min_samples: int = Field(30, ge=1)
    count: int = 0
    mean: float = 0.0
    cumulative: float = 0.0
    minimum: float = 0.0

    def update(self, value: float) -> bool:
        """Add one observation; True when the mean has risen (the state then restarts)."""
        self.count += 1
        self.mean += (value - self.mean) / self.count
        self.cumulative += value - self.mean - self.delta
        self.minimum = min(self.minimum, self.cumulative)
        if self.count >= self.min_samples and self.cumulative - self.minimum > self.threshold:
            self.reset()
            return True
        return False

    def reset(self) -> None:
        self.count, self.mean, self.cumulative, self.minimum = 0, 0.0, 0.0, 0.0


class Adwin(BaseModel):
    delta: float = Field(0.002, gt=0, lt=1)
    max_buckets: int = Field(5, ge=2, description="buckets per size before two merge")
    clock: int = Field(32, ge=1, description="check for a cut every this many observations")
    min_window: int = Field(10, ge=2)
    # levels[i] holds buckets of 2^i observations, oldest first, as [total, variance sum]
    levels: list[list[list[float]]] = Field(default_factory=list)
    width: int = 0
    total: float = 0.0
    variance: float = 0.0  # sum of squared deviations of the whole window
    since_check: int = 0
    detections: int = 0

    @property
    def estimate(self) -> float:
        return self.total / self.width if self.width else 0.0

    def update(self, value: float) -> bool:
        """Add one observation; True when the window was cut (the distribution changed)."""
        if self.width:
            mean = self.total / self.width
            self.variance += self.width * (value - mean) ** 2 / (self.width + 1)
        self.width += 1
        self.total += value
        if not self.levels:
            self.levels.append([])
        self.levels[0].append([value, 0.0])
        self._compress()
        self.since_check += 1
        if self.since_check < self.clock or self.width < self.min_window:
            return False
        self.since_check = 0
        cut = False
        while self._cut_found():
            self._drop_oldest()
            cut = True
        self.detections += cut
        return cut

    def _compress(self) -> None:
        level = 0
        while level < len(self.levels) and len(self.levels[level]) > self.max_buckets:
            (t1, v1), (t2, v2) = self.levels[level][0], self.levels[level][1]
            del self.levels[level][:2]
            size = 2**level
            merged_var = v1 + v2 + size * size * (t1 / size - t2 / size) ** 2 / (2 * size)
            if level + 1 == len(self.levels):
                self.levels.append([])
            self.levels[level + 1].append([t1 + t2, merged_var])
            level += 1

    def _cut_found(self) -> bool:
        """Any split, oldest buckets | newest, whose means differ beyond the bound."""
        if self.width < self.min_window:
            return False
        log_term = math.log(2 * math.log(self.width) / self.delta)
        variance = self.variance / self.width
        old_n, old_total = 0, 0.0
        for level in range(len(self.levels) - 1, -1, -1):
            for bucket_total, _ in self.levels[level]:
                old_n += 2**level
                old_total += bucket_total
                new_n = self.width - old_n
                if new_n < 1:
                    return False
                if old_n < 5 or new_n < 5:
                    continue
                harmonic = 1 / (1 / old_n + 1 / new_n)
                bound = math.sqrt(2 * variance * log_term / harmonic) + 2 * log_term / (3 * harmonic)
                if abs(old_total / old_n - (self.total - old_total) / new_n) > bound:
                    return True
        return False

    def _drop_oldest(self) -> None:
        level = len(self.levels) - 1
        total, variance = self.levels[level].pop(0)
        size = 2**level
        self.width -= size
        if self.width:
            mean_rest = (self.total - total) / self.width
            self.variance -= variance + size * self.width * (total / size - mean_rest) ** 2 / (
                size + self.width
            )
            self.variance = max(self.variance, 0.0)
        else:
            self.variance = 0.0
        self.total -= total
        if not self.levels[level]:
            self.levels.pop()


class MetricCheck(BaseModel):
    metric: str
    value: float
    lower: float
    upper: float
    rows: int
    confidence: float
    baseline: float | None
    degraded: bool = Field(description="the whole interval is below the baseline")


def wilson_interval(successes: int, rows: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion (sound at 0 or n successes, unlike Wald's)."""
    if rows <= 0 or not 0 <= successes <= rows:
        raise ValueError("need 0 <= successes <= rows and rows > 0")
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / rows
    scale = 1 + z * z / rows
    centre = (p + z * z / (2 * rows)) / scale
    half = z / scale * math.sqrt(p * (1 - p) / rows + z * z / (4 * rows * rows))
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_against_baseline(
    correct: int, rows: int, baseline: float | None, *, confidence: float = 0.95
) -> MetricCheck:
    """The window's accuracy with its Wilson interval; degraded when even the interval's top
    is below the training baseline."""
    lower, upper = wilson_interval(correct, rows, confidence)
    return MetricCheck(
        metric="accuracy",
        value=correct / rows,
        lower=lower,
        upper=upper,
        rows=rows,
        confidence=confidence,
        baseline=baseline,
        degraded=baseline is not None and upper < baseline,
    )
