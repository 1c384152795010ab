"""What a run record keeps of a training set's report: all of it, unless the per-feature
counts would crowd the item (DynamoDB's 400 KB), then their number (report.json keeps them)."""

from __future__ import annotations

from mlops_core.training.training_sets import MAX_RECORDED_FEATURES, recorded_report


def test_per_feature_counts_are_kept_up_to_the_limit() -> None:
    report = {"rows": 10, "features": [{"feature": f"f{i}"} for i in range(MAX_RECORDED_FEATURES)]}
    assert recorded_report(report) == report


def test_beyond_the_limit_the_record_counts_them_and_keeps_the_rest() -> None:
    report = {"rows": 10, "features": [{"feature": f"f{i}"} for i in range(MAX_RECORDED_FEATURES + 1)]}
    recorded = recorded_report(report)
    assert recorded["features"] == [] and recorded["features_omitted"] == MAX_RECORDED_FEATURES + 1
    assert recorded["rows"] == 10
