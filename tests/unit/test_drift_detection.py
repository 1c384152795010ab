"""Drift detection against a reference profile: decisions, bad input, and the false-alarm
rate over 200 seeded undrifted windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_core.data.profiles import ReferenceProfile, profile_column
from mlops_core.monitoring.concept import Adwin, PageHinkley, accuracy_against_baseline, wilson_interval
from mlops_core.monitoring.detect import detect_drift
from mlops_core.monitoring.entities import DriftSettings
from mlops_core.monitoring.ks import ks_2samp

CATEGORIES = np.asarray([0.3, 0.25, 0.2, 0.15, 0.1])


def _rows(
    rng: np.random.Generator, size: int, *, shift: float = 0.0, tilt: float = 0.0
) -> dict[str, np.ndarray]:
    """Five numeric features (normal, lognormal, t, uniform, integers) and three categorical."""
    probabilities = CATEGORIES + tilt * np.asarray([-1, 0, 0, 0, 1])
    return {
        "normal": rng.normal(shift, 1, size),
        "lognormal": rng.lognormal(0, 0.5, size),
        "t3": rng.standard_t(3, size),
        "uniform": rng.uniform(0, 1, size),
        "count": rng.poisson(4, size).astype(float),
        "colour": rng.choice(5, size, p=probabilities).astype(float),
        "size": rng.choice(3, size, p=[0.5, 0.3, 0.2]).astype(float),
        "flag": (rng.random(size) < 0.3).astype(float),
    }


def _profile(rows: dict[str, np.ndarray]) -> ReferenceProfile:
    categorical = {"colour", "size", "flag"}
    features = {
        name: profile_column(values, categorical=name in categorical) for name, values in rows.items()
    }
    return ReferenceProfile(format=2, rows=len(rows["normal"]), features=features)


@pytest.fixture(scope="module")
def reference() -> ReferenceProfile:
    return _profile(_rows(np.random.default_rng(12345), 20_000))


def test_a_shifted_numeric_and_a_tilted_categorical_feature_are_found(reference: ReferenceProfile) -> None:
    window = _rows(np.random.default_rng(1), 20_000, shift=0.1, tilt=0.05)
    result = detect_drift(reference, window)
    assert {f.feature for f in result.features if f.drifted} == {"normal", "colour"}
    assert [f.feature for f in result.features[:2]] in (["normal", "colour"], ["colour", "normal"])
    normal = next(f for f in result.features if f.feature == "normal")
    assert normal.test == "ks-asymptotic" and normal.effect_size == pytest.approx(0.1, abs=0.02)
    assert normal.corrected_p_value is not None and normal.corrected_p_value < 0.05
    assert result.dataset_drift is True  # 2 of 8 >= 20 %


def test_a_huge_window_does_not_flag_a_negligible_shift() -> None:
    """0.03 sd with 400,000 rows on each side is significant (p << 0.05) but below the effect
    threshold: not drift."""
    rng = np.random.default_rng(2)
    big = ReferenceProfile(
        rows=400_000, features={"x": profile_column(rng.normal(size=400_000), categorical=False)}
    )
    x = detect_drift(big, {"x": rng.normal(0.03, 1, 400_000)}).features[0]
    assert x.corrected_p_value is not None and x.corrected_p_value < 1e-6
    assert x.effect_size is not None and x.effect_size < x.threshold  # type: ignore[operator]
    assert x.drifted is False


def test_a_small_window_is_insufficient_data_not_drift(reference: ReferenceProfile) -> None:
    window = _rows(np.random.default_rng(3), 40, shift=3.0)
    result = detect_drift(reference, window)
    assert result.status == "insufficient_data" and result.dataset_drift is False
    assert {f.status for f in result.features} == {"insufficient_data"}


def test_missing_features_and_unexpected_types_are_reported_by_name(reference: ReferenceProfile) -> None:
    window: dict[str, object] = dict(_rows(np.random.default_rng(4), 500))
    del window["t3"]
    window["uniform"] = ["high"] * 500
    window["surprise"] = [1.0] * 500
    result = detect_drift(reference, window)  # type: ignore[arg-type]
    assert result.missing_features == ["t3"]
    assert result.unexpected_type_features == ["uniform"]
    assert result.unknown_features == ["surprise"]
    assert result.tested_features == 6


def test_unseen_categories_are_counted_and_small_ones_pooled(reference: ReferenceProfile) -> None:
    window = _rows(np.random.default_rng(5), 2_000)
    window["colour"][:3] = 9.0
    colour = next(f for f in detect_drift(reference, window).features if f.feature == "colour")
    assert colour.unseen_categories == {"9": 3}
    assert colour.pooled_categories == ["9"]  # expected < 5 times: pooled for chi-square


def test_small_samples_get_exact_p_values() -> None:
    rng = np.random.default_rng(6)
    small = _profile(_rows(rng, 3_000))
    result = detect_drift(small, _rows(rng, 200), settings=DriftSettings())
    normal = next(f for f in result.features if f.feature == "normal")
    assert normal.test == "ks-exact"


def _binomial_upper(trials: int, rate: float, tail: float) -> int:
    """The smallest k with P(X > k) < tail for X ~ Binomial(trials, rate)."""
    cumulative = 0.0
    for k in range(trials + 1):
        cumulative += math.comb(trials, k) * rate**k * (1 - rate) ** (trials - k)
        if 1 - cumulative < tail:
            return k
    return trials


def _binomial_lower(trials: int, rate: float, tail: float) -> int:
    """The largest k with P(X < k) < tail."""
    cumulative = 0.0
    for k in range(trials + 1):
        probability = math.comb(trials, k) * rate**k * (1 - rate) ** (trials - k)
        if cumulative + probability >= tail:
            return k
        cumulative += probability
    return trials


@pytest.fixture(scope="module")
def undrifted_results(reference: ReferenceProfile) -> list[tuple[bool, bool]]:
    """200 seeded windows of 1,000 rows from the reference's own distribution: whether the
    defaults flag the dataset, and whether p-values alone (no effect threshold, any feature)
    would."""
    p_only = DriftSettings(numeric_threshold=0, categorical_threshold=0, dataset_drift_share=0)
    outcomes = []
    for seed in range(200):
        window = _rows(np.random.default_rng(10_000 + seed), 1_000)
        outcomes.append(
            (
                detect_drift(reference, window).dataset_drift,
                detect_drift(reference, window, settings=p_only).dataset_drift,
            )
        )
    return outcomes


def test_the_corrected_p_values_alone_alarm_at_the_configured_level(
    undrifted_results: list[tuple[bool, bool]],
) -> None:
    """Any feature after BH at alpha 0.05: the dataset-level false-alarm rate is 0.05 within
    the binomial range (0.1 % each side)."""
    alarms = sum(p_only for _, p_only in undrifted_results)
    assert _binomial_lower(200, 0.05, 0.001) <= alarms <= _binomial_upper(200, 0.05, 0.001)


def test_the_defaults_do_not_alarm_above_the_configured_level(
    undrifted_results: list[tuple[bool, bool]],
) -> None:
    alarms = sum(default for default, _ in undrifted_results)
    assert alarms <= _binomial_upper(200, 0.05, 0.001)


def test_exact_ks_p_values_are_valid_under_the_null() -> None:
    """P(p <= alpha) <= alpha for the exact test (discrete, so at most alpha), 400 draws."""
    rng = np.random.default_rng(7)
    rejections = sum(ks_2samp(rng.normal(size=30), rng.normal(size=45)).p_value <= 0.05 for _ in range(400))
    assert rejections <= _binomial_upper(400, 0.05, 0.001)


def test_page_hinkley_and_adwin_alarm_after_an_error_rate_rise_and_resume_from_json() -> None:
    rng = np.random.default_rng(8)
    errors = np.r_[rng.random(4_000) < 0.1, rng.random(4_000) < 0.25].astype(float)
    for detector in (PageHinkley(threshold=40), Adwin()):
        first_half = [i for i, e in enumerate(errors[:4_000]) if detector.update(float(e))]
        resumed = type(detector).model_validate_json(detector.model_dump_json())
        alarms = [4_000 + i for i, e in enumerate(errors[4_000:]) if resumed.update(float(e))]
        assert first_half == [] and alarms and alarms[0] < 5_000


def test_wilson_interval_and_the_baseline_check() -> None:
    lower, upper = wilson_interval(0, 10)
    assert lower == pytest.approx(0.0, abs=1e-12) and upper == pytest.approx(
        0.27753, abs=1e-5
    )  # no zero-width interval at 0/n
    assert accuracy_against_baseline(850, 1_000, 0.9).degraded is True
    assert accuracy_against_baseline(890, 1_000, 0.9).degraded is False  # within the noise
