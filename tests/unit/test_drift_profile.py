"""The reference profile's CDF summary: exact when it can be, within its stated bound
otherwise (and so KS and Wasserstein from it), and profiles written before it still read."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mlops_core.data.cdf_summary import CdfSummary
from mlops_core.data.profiles import MetricBaseline, ReferenceProfile, profile_column, with_outputs
from mlops_core.monitoring.ks import ks_test
from mlops_core.monitoring.numeric import compare_numeric


def _ecdf(data: np.ndarray, points: np.ndarray) -> np.ndarray:
    return np.searchsorted(np.sort(data), points, side="right") / data.size


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(2, 20_000),
    max_points=st.integers(2, 400),
    rounding=st.sampled_from([None, 0, 1, 2]),
)
def test_summary_cdf_is_within_its_bound_everywhere(
    seed: int, rows: int, max_points: int, rounding: int | None
) -> None:
    rng = np.random.default_rng(seed)
    data = rng.standard_t(3, size=rows)
    if rounding is not None:
        data = np.round(data, rounding)
    summary = CdfSummary.of_sample(data, max_points=max_points)
    probes = np.sort(np.r_[data, rng.uniform(data.min() - 1, data.max() + 1, 500)])
    error = np.abs(summary.cdf(probes) - _ecdf(data, probes)).max()
    assert error <= summary.error_bound + 1e-12
    assert summary.error_bound <= np.ceil(rows / (max_points - 1)) / rows
    right, left, _ = summary.cdf_at_sorted(probes)
    assert np.allclose(right, summary.cdf(probes), rtol=0, atol=1e-12)  # the same CDF, two ways
    assert np.allclose(left, summary.cdf(probes, left=True), rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(2_000, 60_000), window=st.integers(50, 20_000))
def test_ks_and_wasserstein_from_a_sketch_are_within_the_bound_of_the_full_data(
    seed: int, rows: int, window: int
) -> None:
    rng = np.random.default_rng(seed)
    reference, current = rng.lognormal(size=rows), rng.lognormal(0.05, size=window)
    sketch = CdfSummary.of_sample(reference)  # 1,001 points: bound ~1/1000
    assert not sketch.exact
    full = stats.ks_2samp(current, reference, method="asymp")
    ours = ks_test(current, sketch, method="asymptotic")
    assert abs(ours.statistic - full.statistic) <= sketch.error_bound + 1e-12
    distance = compare_numeric(current, sketch, scale=1.0).wasserstein
    bound = sketch.error_bound * (reference.max() - reference.min())
    assert abs(distance - stats.wasserstein_distance(current, reference)) <= bound + 1e-12


def test_a_column_with_few_distinct_values_is_kept_exactly() -> None:
    data = np.random.default_rng(0).integers(0, 50, 100_000).astype(float)
    summary = CdfSummary.from_document(profile_column(data, categorical=False).cdf or {})
    assert summary.exact and summary.error_bound == 0.0
    window = np.random.default_rng(1).integers(0, 51, 3_000).astype(float)
    theirs = stats.ks_2samp(window, data, method="asymp")
    assert ks_test(window, summary, method="asymptotic").p_value == pytest.approx(theirs.pvalue, abs=1e-9)


def test_a_format_1_profile_is_read_with_the_histogram_as_its_cdf() -> None:
    """As ValidateData wrote it before format 2: deciles and a 10-bin histogram, no cdf."""
    old = {
        "rows": 1000,
        "target": "y",
        "features": {
            "x": {
                "type": "double",
                "count": 1000,
                "nulls": 0,
                "kind": "numeric",
                "mean": 0.0,
                "std": 1.0,
                "min": -3.0,
                "max": 3.0,
                "quantiles": [-3.0, 3.0],
                "histogram": {"edges": [-3.0, -1.0, 0.0, 1.0, 3.0], "counts": [160, 340, 340, 160]},
            },
            "c": {
                "type": "integer",
                "count": 10,
                "nulls": 2,
                "kind": "categorical",
                "frequencies": {"1": 10},
            },
        },
    }
    loaded = ReferenceProfile.model_validate(old)
    assert loaded.format == 1
    cdf = loaded.features["x"].reference_cdf()  # type: ignore[union-attr]
    assert cdf is not None and cdf.error_bound == pytest.approx(0.34)
    assert cdf.cdf(np.asarray([-1.0, 0.0, 2.0])).tolist() == pytest.approx([0.16, 0.5, 0.92])


def test_outputs_and_metric_baseline_are_added_to_a_written_profile() -> None:
    base = ReferenceProfile(rows=3, features={}).model_dump(mode="json")
    document = with_outputs(
        base,
        [0, 1, 1, 1],
        task="classification",
        baseline=MetricBaseline(metric="accuracy", value=0.9, rows=4),
    )
    loaded = ReferenceProfile.model_validate(document)
    assert loaded.prediction is not None and loaded.prediction.kind == "categorical"
    assert loaded.prediction.frequencies == {"0": 1, "1": 3}  # type: ignore[union-attr]
    assert loaded.metric_baseline == MetricBaseline(metric="accuracy", value=0.9, rows=4)


def test_a_corrupted_summary_is_refused() -> None:
    good = CdfSummary.of_sample([1.0, 2.0, 2.0, 3.0]).to_document()
    with pytest.raises(ValueError, match="cumulative"):
        CdfSummary.from_document(good | {"at_or_below": [1, 4, 4]})
    with pytest.raises(ValueError, match="increasing"):
        CdfSummary.from_document(good | {"values": [1.0, 3.0, 2.0]})
