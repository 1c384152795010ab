"""Drift runs without AWS: columns from captured rows, run ids, which models are due, the
configuration checks, and the report's HTML."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from mlops_core.data.profiles import ReferenceProfile, profile_column
from mlops_core.errors import Invalid
from mlops_core.monitoring.config import MonitoringConfig
from mlops_core.monitoring.detect import detect_drift
from mlops_core.monitoring.entities import DriftSettings
from mlops_core.monitoring.records import DriftRunSummary, StoredMonitoring, new_run_id, run_started_at
from mlops_core.monitoring.report import DriftReport
from mlops_core.monitoring.report_html import render_html
from mlops_core.monitoring.service import DUE_SLACK, MonitoringService
from mlops_core.monitoring.window import (
    CategoricalDistribution,
    category_names,
    distribution,
    feature_columns,
)
from mlops_core.serving.capture import CapturedPrediction

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _row(features: list[str], inputs: list[float | None], version: int = 1) -> CapturedPrediction:
    return CapturedPrediction(
        prediction_id="0193a8f2-0000-7000-8000-000000000000",
        model_name="m",
        model_version=version,
        alias=None,
        at_ms=0,
        features=features,
        inputs=inputs,
        prediction=0,
        probabilities=None,
    )


# ---- columns ---------------------------------------------------------------------------------
def test_columns_line_up_by_name_whatever_each_rows_feature_order() -> None:
    rows = [
        _row(["a", "b"], [1.0, 10.0]),
        _row(["b", "a"], [20.0, 2.0], version=2),
        _row(["a", "b"], [3.0, None]),
    ]

    window = feature_columns(rows)

    assert window.columns["a"].tolist() == [1.0, 2.0, 3.0]
    assert window.columns["b"][:2].tolist() == [10.0, 20.0] and np.isnan(window.columns["b"][2])


def test_a_feature_some_versions_lack_is_missing_there_and_one_no_row_has_is_absent() -> None:
    rows = [_row(["a", "b"], [1.0, 2.0]), _row(["a"], [3.0], version=2)]

    window = feature_columns(rows)

    assert set(window.columns) == {"a", "b"}
    assert np.isnan(window.columns["b"][1])
    assert "c" not in window.columns


def test_rows_whose_inputs_do_not_match_their_features_are_left_out_and_counted() -> None:
    rows = [_row(["a", "b"], [1.0]), _row(["a", "b"], [1.0, 2.0])]

    window = feature_columns(rows)

    assert window.malformed_rows == 1 and window.rows == 2
    assert np.isnan(window.columns["a"][0]) and window.columns["a"][1] == 1.0


# ---- run ids ---------------------------------------------------------------------------------
def test_a_run_id_carries_its_start_time_to_the_millisecond() -> None:
    at = datetime(2026, 12, 1, 12, 34, 56, 789_999, tzinfo=UTC)

    run_id = new_run_id(at)

    assert re.fullmatch(r"20261201T123456789Z-[0-9a-f]{8}", run_id)
    assert run_started_at(run_id) == "2026-12-01T12:34:56.789Z"
    assert new_run_id(at) != run_id


@pytest.mark.parametrize("text", ["latest", "20261301T000000000Z-00000000", "20261201T000000000Z-XYZ"])
def test_other_text_is_not_a_run_id(text: str) -> None:
    assert run_started_at(text) is None


# ---- due models ------------------------------------------------------------------------------
class _Repository:
    def __init__(self, stored: list[StoredMonitoring]) -> None:
        self.stored = stored

    def monitored(self) -> list[StoredMonitoring]:
        return self.stored


def _service(stored: list[StoredMonitoring], now: datetime = NOW) -> MonitoringService:
    service = MonitoringService(table=None, registry=object(), clock=lambda: now)  # type: ignore[arg-type]
    service.repository = _Repository(stored)  # type: ignore[assignment]
    return service


def _stored(name: str, *, last: datetime | None, every: int = 60, enabled: bool = True) -> StoredMonitoring:
    return StoredMonitoring(
        model_name=name,
        config=MonitoringConfig(every_minutes=every, enabled=enabled),
        revision=1,
        last_run_at=last.isoformat().replace("+00:00", "Z") if last else None,
    )


def test_due_models_are_enabled_ones_whose_period_has_passed_most_overdue_first() -> None:
    stored = [
        _stored("recent", last=NOW - timedelta(minutes=30)),
        _stored("hour-ago", last=NOW - timedelta(minutes=61)),
        _stored("never", last=None),
        _stored("day-ago", last=NOW - timedelta(days=1)),
        _stored("disabled", last=None, enabled=False),
    ]

    assert [s.model_name for s in _service(stored).due()] == ["never", "day-ago", "hour-ago"]


def test_a_model_is_due_within_the_slack_before_its_period_so_it_runs_on_time() -> None:
    just_short = _stored("m", last=NOW - timedelta(minutes=60) + DUE_SLACK - timedelta(seconds=1))
    too_early = _stored("m", last=NOW - timedelta(minutes=60) + DUE_SLACK + timedelta(seconds=1))

    assert [s.model_name for s in _service([just_short]).due()] == ["m"]
    assert _service([too_early]).due() == []


# ---- configuration checks -----------------------------------------------------------------------
class _Registry:
    def get_model(self, name: str) -> None:
        return None

    def resolve_alias(self, name: str, alias: str) -> Any:
        from mlops_core.errors import NotFound

        raise NotFound("no production")


def test_a_configuration_whose_min_rows_exceed_max_rows_cannot_work() -> None:
    service = MonitoringService(table=None, registry=_Registry())  # type: ignore[arg-type]
    config = MonitoringConfig(max_rows=200, drift=DriftSettings(min_rows=500))

    with pytest.raises(Invalid) as refused:
        service._check("m", config)

    assert refused.value.details[0]["loc"] == ["body", "drift", "min_rows"]


def test_malformed_configurations_are_refused_field_by_field() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as refused:
        MonitoringConfig.model_validate(
            {"every_minutes": 2, "window_hours": 0, "drift": {"alpha": 1.5}, "x": 1}
        )

    assert {tuple(e["loc"]) for e in refused.value.errors()} == {
        ("every_minutes",),
        ("window_hours",),
        ("drift", "alpha"),
        ("x",),
    }


# ---- the report ------------------------------------------------------------------------------
def _report(name_of_first: str = "radius") -> DriftReport:
    rng = np.random.default_rng(0)
    reference = {
        name_of_first: rng.normal(10, 2, 5000),
        "texture": rng.normal(0, 1, 5000),
        "colour": rng.integers(0, 3, 5000).astype(float),
    }
    profile = ReferenceProfile(
        format=2,
        rows=5000,
        features={
            name: profile_column(values, categorical=name == "colour") for name, values in reference.items()
        },
    )
    window = {
        name_of_first: rng.normal(12, 2, 800),  # +1 sd
        "texture": rng.normal(0, 1, 800),
        "colour": rng.choice([0.0, 1.0, 2.0, 5.0], 800, p=[0.2, 0.3, 0.3, 0.2]),
    }
    result = detect_drift(profile, window, settings=DriftSettings())
    run = DriftRunSummary(
        model_name="m<1>",
        run_id=new_run_id(NOW),
        trigger="schedule",
        status=result.status,
        started_at="2026-12-01T12:00:00.000Z",
        window_rows=800,
        tested_features=result.tested_features,
        drifted_features=[f.feature for f in result.features if f.drifted],
        drift_share=result.drift_share,
        dataset_drift=result.dataset_drift,
    )
    plotted = {
        name: d
        for name, ref in profile.features.items()
        if (d := distribution(ref, window[name])) is not None
    }
    return DriftReport(run=run, result=result, distributions=plotted)


def test_the_report_plots_every_feature_by_severity_with_its_numbers() -> None:
    report = _report()

    html = render_html(report)

    assert (
        html.startswith("<!DOCTYPE html>") and html.count("<svg") == 2 + 2 + 1
    )  # 2 numeric x 2, 1 categorical
    table = html[html.index("<h2>Features, by severity</h2>") :]
    order = [table.index(f"<td>{name}</td>") for name in ("radius", "colour", "texture")]
    assert order == sorted(order), "drifted features first, then by effect over threshold"
    radius = next(f for f in report.result.features if f.feature == "radius")  # type: ignore[union-attr]
    assert f"{radius.corrected_p_value:.2e}" in html and f"{radius.effect_size:.4g}" in html
    assert "Wasserstein/sd" in html and "Jensen-Shannon" in html and "5: " in html  # unseen category 5


def test_the_report_needs_nothing_from_the_network_and_runs_no_script() -> None:
    html = render_html(_report())

    assert "<script" not in html and "<link" not in html and "<img" not in html
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"] * html.count("<svg")


def test_names_in_the_report_are_escaped() -> None:
    html = render_html(_report(name_of_first="<img src=x onerror=alert(1)>"))

    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "m&lt;1&gt;" in html


def test_a_numeric_distribution_holds_every_row_on_both_sides() -> None:
    reference = profile_column(np.arange(1000.0), categorical=False)

    shown = distribution(reference, np.concatenate([np.arange(500.0), [1e9, -1e9, np.nan]]))

    assert shown is not None and not isinstance(shown, CategoricalDistribution)
    assert sum(shown.reference) == pytest.approx(1.0, abs=1e-5)
    assert sum(shown.current) == pytest.approx(1.0, abs=1e-5)  # the tails land in the outer bins
    # The plotted range runs from the 0.5 % to the 99.5 % quantile of either side.
    assert shown.cdf_reference[0] <= 0.006 and shown.cdf_reference[-1] >= 0.994


def test_the_drift_functions_import_no_scipy_scikit_learn_onnx_or_aws_sdk() -> None:
    """They run on the core layer alone, and boto3 is imported on first use, not at init
    (Powertools imports the bare botocore package for its user agent: 0.4 ms, no clients)."""
    import json
    import os
    import subprocess
    import sys

    from tests.support import ROOT

    probe = (
        "import json, sys\n"
        "import functions.drift.handler, functions.drift.api\n"
        "print(json.dumps(sorted(set(sys.modules) | {m.split('.')[0] for m in sys.modules})))\n"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_TRACE")}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=environment
        | {
            "PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'core'}",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "DRIFT_FUNCTION_NAME": "drift",
        },
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    loaded = set(json.loads(result.stdout))
    assert loaded.isdisjoint(
        {"scipy", "sklearn", "onnx", "onnxruntime", "skl2onnx", "boto3", "botocore.client"}
    )
    assert "numpy" in loaded


def test_a_text_categorys_bars_are_labelled_with_its_names_not_its_codes() -> None:
    """Codes are positions in the category list (a feature) or the signature's classes (a text
    target's predictions, where a class missing from training leaves a gap)."""
    reference = profile_column(np.asarray([0.0, 0.0, 1.0, 2.0]), categorical=True, column_type="category")
    plotted = distribution(
        reference, np.asarray([2.0, 2.0, 1.0]), category_names(None, ["Biscoe", "Dream", "Torgersen"])
    )
    assert isinstance(plotted, CategoricalDistribution)
    assert sorted(plotted.categories) == ["Biscoe", "Dream", "Torgersen"]
    assert dict(zip(plotted.categories, plotted.current, strict=True))["Torgersen"] == pytest.approx(2 / 3)
    assert category_names([0, 2], ["setosa", "virginica"]) == {"0": "setosa", "2": "virginica"}
    assert category_names(None, None) is None


def test_the_reports_concept_table_shows_a_dash_for_what_was_not_measured() -> None:
    report = _report()
    report = report.model_copy(
        update={"concept": {"drifted": False, "live_metric": None, "baseline_metric": 0.66}}
    )
    html = render_html(report)
    assert "<td>live_metric</td><td>-</td>" in html and ">None<" not in html
    assert "<td>baseline_metric</td><td>0.66</td>" in html
