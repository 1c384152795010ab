"""A window of captured predictions as the drift comparison reads it: one column per feature,
by name, and the distributions the report plots.

Each captured row carries its inputs in its own ``features`` order (the order of the
signature of the version that served it), so versions whose signatures differ, in order or
in features, still line up by name. A feature that some rows lack is missing (NaN) in those
rows; a feature that no row has is absent from the columns (the comparison reports it as
``missing``). A row whose inputs do not match its feature list is left out and counted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from mlops_core.data.cdf_summary import FloatArray
from mlops_core.data.profiles import CategoricalProfile, NumericProfile, category_key
from mlops_core.serving.capture import CapturedPrediction

#: Bins of a numeric feature's histogram in the report, and points of its CDF plot.
HISTOGRAM_BINS = 24
CDF_POINTS = 64
#: Categories a categorical plot shows; the rest are summed as "other".
MAX_CATEGORIES = 12
#: The plotted range: from the lower to the upper of these quantiles of either side.
PLOT_QUANTILES = (0.005, 0.995)


@dataclass(frozen=True)
class WindowColumns:
    columns: dict[str, FloatArray]
    rows: int
    malformed_rows: int


def feature_columns(rows: Sequence[CapturedPrediction]) -> WindowColumns:
    """The window's columns by feature name (NaN where a row has no value for a feature)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    malformed = 0
    for index, row in enumerate(rows):
        if len(row.inputs) != len(row.features):
            malformed += 1
            continue
        groups.setdefault(tuple(row.features), []).append(index)
    names = list(dict.fromkeys(name for features in groups for name in features))
    columns = {name: np.full(len(rows), np.nan) for name in names}
    for features, indices in groups.items():
        # None becomes NaN (missing); inputs are floats as captured.
        matrix = np.asarray([rows[i].inputs for i in indices], dtype=np.float64).reshape(
            len(indices), len(features)
        )
        where = np.asarray(indices)
        for position, name in enumerate(features):
            columns[name][where] = matrix[:, position]
    return WindowColumns(columns=columns, rows=len(rows), malformed_rows=malformed)


def predictions_of(rows: Sequence[CapturedPrediction], version: int) -> list[Any]:
    """The outputs of the rows ``version`` served (output drift compares one model's outputs)."""
    return [row.prediction for row in rows if row.model_version == version]


class NumericDistribution(BaseModel):
    """Reference and window on the same bins (shares of rows; outer bins take the tails) and
    their CDFs at the same points; the reference from its profile's CDF summary."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["numeric"] = "numeric"
    edges: list[float]
    reference: list[float]
    current: list[float]
    cdf_points: list[float]
    cdf_reference: list[float]
    cdf_current: list[float]


class CategoricalDistribution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["categorical"] = "categorical"
    categories: list[str]
    reference: list[float]
    current: list[float]


Distribution = NumericDistribution | CategoricalDistribution


def distribution(
    reference: NumericProfile | CategoricalProfile,
    column: FloatArray | Sequence[Any] | None,
    names: Mapping[str, str] | None = None,
) -> Distribution | None:
    """What the report plots for one feature (None when the profile has nothing to plot).
    ``names``: a category's name by its key (a text category's code), to label the bars."""
    values = _numbers(column)
    present = values[np.isfinite(values)] if values is not None else np.empty(0)
    if isinstance(reference, CategoricalProfile):
        plotted = _categorical(reference, present)
        if names:
            plotted.categories = [names.get(c, c) for c in plotted.categories]
        return plotted
    return _numeric(reference, present)


def category_names(codes: Sequence[Any] | None, names: Sequence[str] | None) -> dict[str, str] | None:
    """Each code's key (``category_key``) -> its name, for a text category or a text target's
    classes (``codes``: the classes; None for a feature, whose codes are positions)."""
    if names is None:
        return None
    keys = codes if codes is not None else range(len(names))
    return {category_key(float(code)): name for code, name in zip(keys, names, strict=True)}


def _numbers(column: FloatArray | Sequence[Any] | None) -> FloatArray | None:
    if column is None:
        return None
    if isinstance(column, np.ndarray) and column.dtype.kind in "biuf":
        return column.astype(np.float64)
    if not all(v is None or isinstance(v, int | float | bool | np.number) for v in column):
        return None  # not numbers (unexpected_type): nothing to plot for the window
    return np.asarray([np.nan if v is None else float(v) for v in column], dtype=np.float64)


def _numeric(reference: NumericProfile, present: FloatArray) -> NumericDistribution | None:
    cdf = reference.reference_cdf()
    if cdf is None:
        return None
    levels, knots = cdf.quantile_knots()
    low_q, high_q = PLOT_QUANTILES
    low, high = (float(np.interp(q, levels, knots)) for q in PLOT_QUANTILES)
    if present.size:
        low = min(low, float(np.quantile(present, low_q)))
        high = max(high, float(np.quantile(present, high_q)))
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    at_edges = cdf.cdf(edges)
    reference_share = np.diff(at_edges)
    reference_share[0] += at_edges[0]  # the tails belong to the outer bins
    reference_share[-1] += 1.0 - at_edges[-1]
    current_share = np.zeros(HISTOGRAM_BINS)
    points = np.linspace(low, high, CDF_POINTS)
    current_cdf = np.zeros(CDF_POINTS)
    if present.size:
        current_share = np.histogram(np.clip(present, low, high), bins=edges)[0] / present.size
        current_cdf = np.searchsorted(np.sort(present), points, side="right") / present.size
    return NumericDistribution(
        edges=_rounded(edges),
        reference=_rounded(reference_share),
        current=_rounded(current_share),
        cdf_points=_rounded(points),
        cdf_reference=_rounded(cdf.cdf(points)),
        cdf_current=_rounded(current_cdf),
    )


def _categorical(reference: CategoricalProfile, present: FloatArray) -> CategoricalDistribution:
    total = sum(reference.frequencies.values()) or 1
    reference_share = {c: n / total for c, n in reference.frequencies.items()}
    codes, counts = np.unique(present, return_counts=True)
    current_share = {category_key(c): int(n) / present.size for c, n in zip(codes, counts, strict=True)}
    ranked = sorted(
        set(reference_share) | set(current_share),
        key=lambda c: (-max(reference_share.get(c, 0.0), current_share.get(c, 0.0)), c),
    )
    shown, rest = ranked[:MAX_CATEGORIES], ranked[MAX_CATEGORIES:]
    categories = [*shown, *(["other"] if rest else [])]
    reference_values = [reference_share.get(c, 0.0) for c in shown]
    current_values = [current_share.get(c, 0.0) for c in shown]
    if rest:
        reference_values.append(sum(reference_share.get(c, 0.0) for c in rest))
        current_values.append(sum(current_share.get(c, 0.0) for c in rest))
    return CategoricalDistribution(
        categories=categories, reference=_rounded(reference_values), current=_rounded(current_values)
    )


def _rounded(values: Sequence[float] | FloatArray) -> list[float]:
    return [float(f"{float(v):.6g}") for v in values]
