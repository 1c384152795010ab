"""What a drift comparison is configured with and what it reports: pydantic models, so the
drift function can store them in the registry and write them into reports as they are."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Correction = Literal["benjamini-hochberg", "bonferroni", "none"]
FeatureStatus = Literal[
    "drift", "no_drift", "insufficient_data", "missing", "unexpected_type", "no_reference"
]
TestName = Literal["ks-exact", "ks-asymptotic", "chi-square"]


class DriftSettings(BaseModel):
    """Defaults chosen so that, on the benchmarks in docs/drift.md, 0.1-sd shifts and
    frequency shifts of total variation 0.06 are found and nothing else is: a feature
    drifts only when its corrected p-value is below ``alpha`` **and** its effect size
    reaches the threshold, so a huge window does not flag a negligible shift."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.05, gt=0, lt=1, description="significance level after correction")
    correction: Correction = "benjamini-hochberg"
    min_rows: int = Field(100, ge=1, description="below this many non-null window rows: insufficient data")
    numeric_threshold: float = Field(
        0.05, ge=0, description="normalized Wasserstein-1 (in reference standard deviations)"
    )
    categorical_threshold: float = Field(0.05, ge=0, le=1, description="Jensen-Shannon distance (base 2)")
    thresholds: dict[str, float] = Field(default_factory=dict, description="per-feature effect thresholds")
    ks_method: Literal["auto", "exact", "asymptotic"] = "auto"
    min_expected_count: float = Field(
        5.0, ge=0, description="chi-square: categories expected fewer times are pooled into one"
    )
    dataset_drift_share: float = Field(
        0.2, ge=0, le=1, description="dataset drift when this share of tested features drifts (>= 1)"
    )


class FeatureDrift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    feature: str
    kind: Literal["numeric", "categorical"]
    status: FeatureStatus
    drifted: bool = False
    test: TestName | None = None
    statistic: float | None = Field(None, description="KS D, or the chi-square statistic")
    dof: int | None = None
    p_value: float | None = None
    corrected_p_value: float | None = None
    effect_name: Literal["wasserstein_normalized", "jensen_shannon"] | None = None
    effect_size: float | None = None
    threshold: float | None = None
    severity: float = Field(0.0, description="effect size / threshold (sort key)")
    window_rows: int = 0
    reference_rows: int = 0
    window_missing_rate: float | None = None
    reference_missing_rate: float | None = None
    # numeric
    wasserstein: float | None = None
    psi: float | None = None
    cdf_error_bound: float | None = Field(None, description="bound on the KS statistic from the summary")
    # categorical
    total_variation: float | None = None
    unseen_categories: dict[str, int] = Field(
        default_factory=dict, description="window rows per new category"
    )
    pooled_categories: list[str] = Field(default_factory=list, description="pooled for chi-square")
    message: str | None = None


class DriftResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["drift", "no_drift", "insufficient_data"]
    dataset_drift: bool
    window_rows: int
    tested_features: int
    drifted_features: int
    drift_share: float
    features: list[FeatureDrift] = Field(description="by severity: drifted first, then by effect/threshold")
    prediction: FeatureDrift | None = None
    missing_features: list[str] = Field(default_factory=list)
    unexpected_type_features: list[str] = Field(default_factory=list)
    unknown_features: list[str] = Field(default_factory=list, description="in the window, not in the profile")
    settings: DriftSettings
