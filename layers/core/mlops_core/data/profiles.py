"""The reference profile written at training, which drift monitoring compares live traffic with.

Per numeric feature: count, nulls, mean, std, min, max, deciles, an equal-mass histogram
(10 bins on quantile edges: PSI's bins) and, since format 2, a ``cdf`` summary
(``cdf_summary.CdfSummary``: exact counts at up to ``DEFAULT_MAX_POINTS`` values) from
which KS and Wasserstein are computed within a stated bound (``cdf.error_bound``; 0 when the
column has at most that many distinct values). Per categorical feature (declared
categories, booleans, text categories by code): counts per category, count and nulls.
Optionally the model's output
distribution on held-out rows (``prediction``) and the training metric it scored
(``metric_baseline``), added once the model exists (``with_outputs``).

Profiles written before format 2 (no ``format``, no ``cdf``) still load: drift monitoring
then reads the CDF from the histogram, with a bound of one bin's mass (``reference_cdf``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from mlops_core.data.cdf_summary import DEFAULT_MAX_POINTS, CdfSummary
from mlops_core.data.schema import DatasetSchema, Table
from mlops_core.data.types import FeatureType

PROFILE_FORMAT = 2


class Histogram(BaseModel):
    model_config = ConfigDict(extra="forbid")

    edges: list[float]
    counts: list[int]


class NumericProfile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: Literal["numeric"] = "numeric"
    type: FeatureType = "double"
    count: int
    nulls: int = 0
    mean: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    quantiles: list[float] | None = None
    histogram: Histogram | None = None
    cdf: dict[str, Any] | None = Field(default=None, description="CdfSummary.to_document()")

    def reference_cdf(self) -> CdfSummary | None:
        """The CDF the tests compare with: the summary, else (older profiles) the histogram's."""
        if self.cdf is not None:
            return CdfSummary.from_document(self.cdf)
        if self.histogram is not None and self.count > 0:
            return CdfSummary.from_histogram(self.histogram.edges, self.histogram.counts)
        return None


class CategoricalProfile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    kind: Literal["categorical"] = "categorical"
    type: FeatureType = "double"
    count: int
    nulls: int = 0
    frequencies: dict[str, int] = Field(description="rows per category, keyed by category_key")


ColumnProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class MetricBaseline(BaseModel):
    """What the model scored on the held-out rows at training (Evaluate writes it).

    ``metric``/``value`` is the metric the gate decided on; the rest is what live labels can
    be compared with: a classifier's plain ``accuracy``, and for a regressor its mean absolute
    error and ``error_tolerance`` (the 90th percentile of its absolute errors), with the share
    of held-out rows ``within_tolerance`` of it (about 0.9). Profiles written before these
    fields have them None (concept drift then says what it cannot compare)."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    value: float
    rows: int = Field(ge=1, description="held-out rows it was measured on")
    accuracy: float | None = Field(default=None, description="classification: share of right labels")
    mae: float | None = Field(default=None, description="regression: mean absolute error")
    error_tolerance: float | None = Field(
        default=None, description="regression: the 90th percentile of the absolute errors"
    )
    within_tolerance: float | None = Field(
        default=None, description="regression: share of rows whose absolute error is at most error_tolerance"
    )


class ReferenceProfile(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: int = 1  # absent from profiles written before the CDF summary
    rows: int
    target: str | None = None
    features: dict[str, ColumnProfile]
    prediction: ColumnProfile | None = None
    metric_baseline: MetricBaseline | None = None


def category_key(value: float) -> str:
    """How a category code is written as a key (1.0 -> "1", 2.5 -> "2.5")."""
    return f"{value:g}"


def profile_column(
    values: npt.ArrayLike,
    *,
    categorical: bool,
    column_type: FeatureType = "double",
    bins: int = 10,
    max_points: int = DEFAULT_MAX_POINTS,
) -> NumericProfile | CategoricalProfile:
    """One column's profile (NaN = null)."""
    column = np.asarray(values, dtype=np.float64)
    present = column[~np.isnan(column)]
    count, nulls = int(present.size), int(column.size - present.size)
    if categorical:
        categories, counts = np.unique(present, return_counts=True)
        frequencies = {category_key(c): int(n) for c, n in zip(categories, counts, strict=True)}
        return CategoricalProfile(type=column_type, count=count, nulls=nulls, frequencies=frequencies)
    if not present.size:
        return NumericProfile(type=column_type, count=0, nulls=nulls)
    edges = np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)))
    counts = np.histogram(present, bins=edges)[0] if edges.size > 1 else np.asarray([present.size])
    return NumericProfile(
        type=column_type,
        count=count,
        nulls=nulls,
        mean=float(present.mean()),
        std=float(present.std()),
        min=float(present.min()),
        max=float(present.max()),
        quantiles=[float(q) for q in np.quantile(present, np.linspace(0, 1, 11))],
        histogram=Histogram(edges=[float(e) for e in edges], counts=[int(c) for c in counts]),
        cdf=CdfSummary.of_sample(present, max_points=max_points).to_document(),
    )


def profile(
    table: Table, schema: DatasetSchema, *, bins: int = 10, max_points: int = DEFAULT_MAX_POINTS
) -> dict[str, Any]:
    """The reference profile of a training table, as the JSON document stored with the run."""
    features = {
        column.name: profile_column(
            table.columns[column.name],
            categorical=column.allowed is not None or column.type in ("boolean", "category"),
            column_type=column.type,
            bins=bins,
            max_points=max_points,
        )
        for column in schema.features
    }
    document = ReferenceProfile(
        format=PROFILE_FORMAT, rows=table.rows, target=schema.target, features=features
    )
    return document.model_dump(mode="json", exclude_none=True)


def with_outputs(
    document: dict[str, Any],
    predictions: npt.ArrayLike,
    *,
    task: Literal["classification", "regression"],
    baseline: MetricBaseline | None = None,
) -> dict[str, Any]:
    """The profile with the model's output distribution on held-out rows (class labels as
    codes for classification, values for regression) and its metric there."""
    reference = ReferenceProfile.model_validate(document)
    reference.prediction = profile_column(predictions, categorical=task == "classification")
    reference.metric_baseline = baseline
    return reference.model_dump(mode="json", exclude_none=True)
