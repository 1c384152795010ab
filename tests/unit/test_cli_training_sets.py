"""`mlops features training-set` (offline: definitions and sources from files, no stack) and
`mlops train` on feature views (the request it sends; its usage errors)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from infra.local.sample_data import (
    LABEL_BEFORE_FEATURES_EVERY,
    breast_cancer_features,
    breast_cancer_labels,
)
from tests.support import ROOT
from tests.unit import test_cli as cli_tests
from tests.unit.test_cli import RUN_ID, FakeClient, _one_line_error

# test_cli.py's fixture: `mlops` invoked in-process with a fake API client.
cli = cli_tests.cli

NOW_MS = 1_796_126_400_000
ROWS = 569


def _files(tmp_path: Path) -> tuple[Path, Path]:
    labels, source = tmp_path / "labels.csv", tmp_path / "tumours.csv"
    labels.write_bytes(breast_cancer_labels(NOW_MS))
    source.write_bytes(breast_cancer_features(NOW_MS))
    return labels, source


def test_an_offline_training_set_writes_every_label_row_with_its_status(cli: Any, tmp_path: Path) -> None:
    labels, source = _files(tmp_path)
    out = tmp_path / "out.csv"
    result = cli(
        None,
        "features",
        "training-set",
        "--labels",
        str(labels),
        "--views",
        "tumour_measurements",
        "--out",
        str(out),
        "--label-column",
        "benign",
        "--definitions",
        str(ROOT / "features"),
        "--source",
        f"tumour_measurements={source}",
    )
    assert result.exit_code == 0, result.output
    missing = ROWS // LABEL_BEFORE_FEATURES_EVERY
    assert f"{ROWS} label rows: {ROWS - missing} complete, {missing} lacking features" in result.stdout
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == ROWS
    assert [r["tumour_measurements__status"] for r in rows].count("missing") == missing
    assert rows[0]["mean_radius"] == "17.99"


def test_the_report_as_json(cli: Any, tmp_path: Path) -> None:
    labels, source = _files(tmp_path)
    result = cli(
        None,
        "features",
        "training-set",
        "--labels",
        str(labels),
        "--views",
        "tumour_measurements",
        "--out",
        str(tmp_path / "out.csv"),
        "--label-column",
        "benign",
        "--definitions",
        str(ROOT / "features"),
        "--source",
        f"tumour_measurements={source}",
        "--json",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["rows"] == ROWS and report["views"][0]["missing"] == ROWS // LABEL_BEFORE_FEATURES_EVERY


def test_a_labels_column_that_is_not_there_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    labels, source = _files(tmp_path)
    line = _one_line_error(
        cli(
            None,
            "features",
            "training-set",
            "--labels",
            str(labels),
            "--views",
            "tumour_measurements",
            "--out",
            str(tmp_path / "out.csv"),
            "--definitions",
            str(ROOT / "features"),
            "--source",
            f"tumour_measurements={source}",
        )
    )
    assert "lacks the column(s) label" in line


def test_train_on_feature_views_sends_labels_views_and_options(cli: Any) -> None:
    client = FakeClient(start_training={"run_id": RUN_ID})
    result = cli(
        client,
        "train",
        "--model",
        "tumours",
        "--labels",
        "datasets/breast-cancer/labels/labels.csv",
        "--features",
        "tumour_measurements",
        "--label-column",
        "benign",
    )
    assert result.exit_code == 0, result.output
    (_, (request,), _), *_ = client.calls
    assert request["labels"] == "datasets/breast-cancer/labels/labels.csv"
    assert request["feature_views"] == ["tumour_measurements"]
    assert request["training_set"]["label_column"] == "benign"
    assert request["training_set"]["on_missing"] == "drop"
    assert "dataset_key" not in request


def test_train_needs_a_dataset_or_labels_but_not_both(cli: Any) -> None:
    client = FakeClient()
    assert "give --dataset, or --labels" in _one_line_error(cli(client, "train", "--model", "m"))
    both = cli(
        client, "train", "--model", "m", "--dataset", "datasets/d.csv", "--labels", "l.csv", "--features", "v"
    )
    assert "give --dataset, or --labels" in _one_line_error(both)
    assert client.calls == []


def test_a_run_summary_names_its_views_and_the_label_rows_dropped() -> None:
    from infra.cli.runs import summary

    run = {
        "run_id": RUN_ID,
        "status": "SUCCEEDED",
        "execution": {"status": "SUCCEEDED"},
        "feature_views": [{"name": "tumour_measurements", "version": 2}],
        "training_set": {"report": {"rows": 569, "incomplete": 11, "rows_dropped": 11, "policy": "drop"}},
    }
    lines = summary(run)
    assert "  views       tumour_measurements v2" in lines
    assert "  labels      569 joined point-in-time, 11 lacking features, 11 dropped" in lines
