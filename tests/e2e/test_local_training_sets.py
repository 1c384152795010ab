"""Point-in-time training on the local stack, for real (`mlops up` in a subprocess): the sample
view applied and materialized, then `mlops train --labels --features` runs the template's
workflow through BuildTrainingSet, and the run, the model card and `mlops features
training-set` name the view, its version and the label rows that found no features."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local.sample_data import (
    FEATURE_SOURCE_KEY,
    FEATURE_VIEW,
    LABEL_BEFORE_FEATURES_EVERY,
    LABELS_KEY,
    breast_cancer_features,
    breast_cancer_labels,
)
from tests.e2e import test_local_features as features_test

pytestmark = pytest.mark.e2e
ROWS = 569
MISSING = ROWS // LABEL_BEFORE_FEATURES_EVERY

# The feature store tests' fixture: `mlops up --schedule-speedup 60`, for this module.
stack = features_test.stack
mlops = features_test.mlops


def test_a_training_run_on_a_materialized_view_joins_point_in_time_and_records_the_view(
    stack: dict[str, Any], tmp_path: Path
) -> None:
    description = stack["description"]
    s3 = boto3.client(
        "s3",
        endpoint_url=description["moto_url"],
        region_name=description["region"],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    now_ms = int(time.time() * 1000)
    bucket = description["artifacts_bucket"]
    s3.put_object(Bucket=bucket, Key=FEATURE_SOURCE_KEY, Body=breast_cancer_features(now_ms))
    s3.put_object(Bucket=bucket, Key=LABELS_KEY, Body=breast_cancer_labels(now_ms))
    applied = mlops(stack, "features", "apply", "features/breast_cancer.toml")
    assert applied.returncode == 0, applied.stderr
    materialized = mlops(
        stack, "--json", "features", "materialize", FEATURE_VIEW, "--wait", "--timeout", "60"
    )
    assert materialized.returncode == 0, materialized.stdout + materialized.stderr

    trained = mlops(
        stack,
        "--json",
        "train",
        "--model",
        "tumours",
        "--labels",
        LABELS_KEY,
        "--features",
        FEATURE_VIEW,
        "--label-column",
        "benign",
        "--wait",
        "--timeout",
        "110",
    )
    assert trained.returncode == 0, trained.stdout + trained.stderr
    run = json.loads(trained.stdout)
    assert run["status"] == "SUCCEEDED"
    assert [(v["name"], v["version"]) for v in run["feature_views"]] == [(FEATURE_VIEW, 1)]
    report = run["training_set"]["report"]
    assert (report["rows"], report["rows_dropped"]) == (ROWS, MISSING)
    assert report["features"][0]["missing"] == MISSING

    card = mlops(stack, "--json", "models", "card", "tumours", str(run["registered_version"]))
    assert card.returncode == 0, card.stderr
    [view] = json.loads(card.stdout)["feature_views"]
    assert (view["view"], view["version"], view["entity"]) == (FEATURE_VIEW, 1, "patient_id")

    out = tmp_path / "training_set.csv"
    offline = mlops(
        stack,
        "features",
        "training-set",
        "--labels",
        LABELS_KEY,
        "--views",
        FEATURE_VIEW,
        "--out",
        str(out),
        "--label-column",
        "benign",
    )
    assert offline.returncode == 0, offline.stdout + offline.stderr
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == ROWS
    assert sum(r[f"{FEATURE_VIEW}__status"] == "missing" for r in rows) == MISSING
