"""A drift run's report: everything the run found, as one JSON document, from which the HTML
page is rendered (``report_html``). Written to ``keys.drift_report(model, started_at, run, ext)``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.clock import parse_iso
from mlops_core.data.profiles import ReferenceProfile
from mlops_core.monitoring.entities import DriftResult
from mlops_core.monitoring.records import DriftRunSummary, PredictionDrift
from mlops_core.monitoring.window import CategoricalDistribution, NumericDistribution
from mlops_core.storage import keys

REPORT_FORMAT = 1


class WindowFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: str
    end: str
    rows: int
    malformed_rows: int = 0
    rows_by_version: dict[str, int] = Field(default_factory=dict)
    max_rows: int


class DriftReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: int = REPORT_FORMAT
    run: DriftRunSummary
    window: WindowFacts | None = None
    result: DriftResult | None = Field(None, description="Per-feature numbers, by severity")
    distributions: dict[str, NumericDistribution | CategoricalDistribution] = Field(default_factory=dict)
    prediction_distribution: NumericDistribution | CategoricalDistribution | None = None
    concept: dict[str, Any] | None = None


def report_key(run: DriftRunSummary, extension: str) -> str:
    started_ms = int(parse_iso(run.started_at).timestamp() * 1000)
    return keys.drift_report(run.model_name, started_ms, run.run_id, extension)


def result_fields(result: DriftResult) -> dict[str, object]:
    return {
        "tested_features": result.tested_features,
        "drifted_features": [f.feature for f in result.features if f.drifted],
        "drift_share": result.drift_share,
        "dataset_drift": result.dataset_drift,
        "missing_features": result.missing_features,
        "unexpected_type_features": result.unexpected_type_features,
        "unknown_features": result.unknown_features,
    }


def prediction_drift(result: DriftResult | None, profile: ReferenceProfile, rows: int) -> PredictionDrift:
    if profile.prediction is None:
        return PredictionDrift(
            status="no_reference", rows=rows, message="the reference profile has no output distribution"
        )
    tested = result.prediction if result is not None else None
    if tested is None:
        return PredictionDrift(
            status="insufficient_data", rows=rows, message="no rows served by the production version"
        )
    return PredictionDrift(
        status=tested.status,
        drifted=tested.drifted,
        rows=tested.window_rows,
        effect_size=tested.effect_size,
        p_value=tested.p_value,
        message=tested.message,
    )
