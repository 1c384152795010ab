"""A window of captured rows against the reference profile: which features drifted, by how
much, and whether the dataset as a whole did.

Per feature, the test follows its kind in the profile: numeric features get the two-sample
KS test (exact p-values up to ``ks.EXACT_MAX_N`` rows on both sides, asymptotic beyond) and
normalized Wasserstein-1 as the effect size (PSI reported); categorical ones get the
chi-square test of homogeneity on counts (categories expected fewer than
``min_expected_count`` times pooled into one, where the test's approximation would not
hold) and Jensen-Shannon distance as the effect size (total variation and unseen
categories reported). The p-values of the tested features are corrected together (BH by
default); a feature drifts when its corrected p-value is below ``alpha`` and its effect
size reaches its threshold. The dataset drifts when at least ``dataset_drift_share`` of the
tested features (and at least one) drift. The model's output, when the profile and the
caller have it, is tested the same way on its own (not part of the correction).

Window values: numbers (or booleans); ``None``, NaN and infinities count as missing; any
other value makes the feature ``unexpected_type``, reported by name and not tested.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlops_core.data.cdf_summary import FloatArray
from mlops_core.data.profiles import CategoricalProfile, NumericProfile, ReferenceProfile, category_key
from mlops_core.monitoring import categorical
from mlops_core.monitoring.entities import DriftResult, DriftSettings, FeatureDrift
from mlops_core.monitoring.numeric import compare_numeric

WindowColumn = Sequence[Any] | FloatArray


def detect_drift(
    profile: ReferenceProfile,
    window: Mapping[str, WindowColumn],
    *,
    predictions: WindowColumn | None = None,
    settings: DriftSettings | None = None,
) -> DriftResult:
    """Compare every profiled feature's window column with its reference."""
    config = settings or DriftSettings()
    results = [
        compare_feature(name, reference, window.get(name), config)
        for name, reference in profile.features.items()
    ]
    tested = [r for r in results if r.p_value is not None]
    corrected = _correct([r.p_value for r in tested if r.p_value is not None], config)
    for result, p in zip(tested, corrected, strict=True):
        _decide(result, float(p), config)
    results.sort(key=_severity_order)
    drifted = sum(r.drifted for r in results)
    needed = max(1, math.ceil(config.dataset_drift_share * len(tested)))
    dataset_drift = bool(tested) and drifted >= needed
    window_rows = max((len(column) for column in window.values()), default=0)
    prediction = None
    if profile.prediction is not None and predictions is not None:
        prediction = compare_feature("prediction", profile.prediction, predictions, config)
        if prediction.p_value is not None:
            _decide(prediction, prediction.p_value, config)
    return DriftResult(
        status="insufficient_data" if not tested else "drift" if dataset_drift else "no_drift",
        dataset_drift=dataset_drift,
        window_rows=window_rows,
        tested_features=len(tested),
        drifted_features=drifted,
        drift_share=drifted / len(tested) if tested else 0.0,
        features=results,
        prediction=prediction,
        missing_features=[r.feature for r in results if r.status == "missing"],
        unexpected_type_features=[r.feature for r in results if r.status == "unexpected_type"],
        unknown_features=sorted(set(window) - set(profile.features)),
        settings=config,
    )


def compare_feature(
    name: str,
    reference: NumericProfile | CategoricalProfile,
    column: WindowColumn | None,
    settings: DriftSettings,
) -> FeatureDrift:
    """One feature's statistics against its reference, before correction and decision."""
    result = FeatureDrift(
        feature=name, kind=reference.kind, status="no_drift", reference_rows=reference.count
    )
    total = reference.count + reference.nulls
    result.reference_missing_rate = reference.nulls / total if total else None
    if column is None:
        result.status, result.message = "missing", "the window has no such column"
        return result
    values = _as_floats(column)
    if values is None:
        result.status, result.message = "unexpected_type", "the window holds values that are not numbers"
        return result
    present = values[np.isfinite(values)]
    result.window_rows = int(present.size)
    result.window_missing_rate = 1 - present.size / values.size if values.size else None
    if present.size < settings.min_rows:
        result.status = "insufficient_data"
        result.message = f"{present.size} rows with a value; at least {settings.min_rows} needed"
        return result
    if isinstance(reference, NumericProfile):
        _compare_numeric(result, reference, present, settings)
    else:
        _compare_categorical(result, reference, present, settings)
    return result


def _compare_numeric(
    result: FeatureDrift, reference: NumericProfile, present: FloatArray, settings: DriftSettings
) -> None:
    cdf = reference.reference_cdf()
    if cdf is None:
        result.status, result.message = "no_reference", "the profile has no distribution for it"
        return
    histogram = reference.histogram
    comparison = compare_numeric(
        present,
        cdf,
        scale=reference.std or 0.0,
        histogram_edges=histogram.edges if histogram else None,
        histogram_counts=histogram.counts if histogram else None,
        ks_method=settings.ks_method,
    )
    result.test = "ks-exact" if comparison.ks.method == "exact" else "ks-asymptotic"
    result.statistic, result.p_value = comparison.ks.statistic, comparison.ks.p_value
    result.effect_name, result.effect_size = "wasserstein_normalized", comparison.wasserstein_normalized
    result.threshold = settings.thresholds.get(result.feature, settings.numeric_threshold)
    result.wasserstein, result.psi = comparison.wasserstein, comparison.psi
    result.cdf_error_bound = cdf.error_bound


def _compare_categorical(
    result: FeatureDrift, reference: CategoricalProfile, present: FloatArray, settings: DriftSettings
) -> None:
    codes, counts = np.unique(present, return_counts=True)
    window_counts = {category_key(c): int(n) for c, n in zip(codes, counts, strict=True)}
    categories = sorted(set(reference.frequencies) | set(window_counts))
    reference_counts = np.asarray([reference.frequencies.get(c, 0) for c in categories], dtype=np.float64)
    current = np.asarray([window_counts.get(c, 0) for c in categories], dtype=np.float64)
    result.unseen_categories = {c: n for c, n in window_counts.items() if c not in reference.frequencies}
    if reference_counts.sum() == 0:
        result.status, result.message = "no_reference", "the profile counted no values for it"
        return
    table = np.vstack([reference_counts, current])
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    rare = expected.min(axis=0) < settings.min_expected_count
    if rare.any():
        table = np.column_stack([table[:, ~rare], table[:, rare].sum(axis=1)])
        result.pooled_categories = [c for c, r in zip(categories, rare, strict=True) if r]
    test = categorical.chi_square_homogeneity(table)
    result.test, result.statistic, result.dof, result.p_value = (
        "chi-square",
        test.statistic,
        test.dof,
        test.p_value,
    )
    result.effect_name = "jensen_shannon"
    result.effect_size = categorical.jensen_shannon_distance(reference_counts, current)
    result.total_variation = categorical.total_variation(reference_counts, current)
    result.threshold = settings.thresholds.get(result.feature, settings.categorical_threshold)


def _as_floats(column: WindowColumn) -> FloatArray | None:
    if isinstance(column, np.ndarray) and column.dtype.kind in "biuf":
        return column.astype(np.float64)
    converted = np.empty(len(column), dtype=np.float64)
    for i, value in enumerate(column):
        if value is None:
            converted[i] = math.nan
        elif isinstance(value, bool | int | float | np.integer | np.floating):
            converted[i] = float(value)
        else:
            return None
    return converted


def _correct(p_values: list[float], settings: DriftSettings) -> FloatArray:
    if settings.correction == "benjamini-hochberg":
        return categorical.benjamini_hochberg(p_values)
    if settings.correction == "bonferroni":
        return categorical.bonferroni(p_values)
    return np.asarray(p_values, dtype=np.float64)


def _decide(result: FeatureDrift, corrected: float, settings: DriftSettings) -> None:
    result.corrected_p_value = corrected
    effect, threshold = result.effect_size or 0.0, result.threshold or 0.0
    result.severity = effect / threshold if threshold > 0 else effect
    result.drifted = corrected < settings.alpha and effect >= threshold
    result.status = "drift" if result.drifted else "no_drift"


def _severity_order(result: FeatureDrift) -> tuple[int, float, float, str]:
    tested = result.p_value is not None
    return (
        0 if result.drifted else 1 if tested else 2,
        -result.severity,
        result.p_value or 1.0,
        result.feature,
    )
