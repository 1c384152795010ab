"""Model cards state what the registry and the training run recorded, and render as Markdown."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mlops_core.registry.entities import ArtifactRef, ModelVersion, RegisteredModel
from mlops_core.registry.model_card import (
    NOT_DECLARED,
    GateRow,
    ModelCard,
    build_model_card,
    render_markdown,
)
from mlops_core.registry.signature import FeatureSpec, ModelSignature

SHA = "3f" * 32
DATASET_SHA = "a1" * 32
NOW = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)


@pytest.fixture
def model() -> RegisteredModel:
    return RegisteredModel(
        name="churn",
        description="Predicts which retail customers cancel within 30 days.",
        tags={
            "intended_use": "Rank customers for retention offers; not for pricing decisions.",
            "limitations": "Trained on EU customers only.",
        },
        owner="team-growth",
        latest_version=3,
        created_at="2026-11-01T08:00:00.000Z",
        updated_at="2026-11-27T10:12:00.000Z",
    )


@pytest.fixture
def version() -> ModelVersion:
    return ModelVersion(
        model_name="churn",
        version=3,
        artifact=ArtifactRef(
            key="models/churn/3/model.onnx",
            s3_version_id="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY",
            sha256=SHA,
            size_bytes=48_213,
            signature_key="models/churn/3/signature.json",
        ),
        signature=ModelSignature(
            task="classification",
            features=[
                FeatureSpec(name="tenure_months", type="integer"),
                FeatureSpec(name="monthly_charges", type="double"),
                FeatureSpec(name="has_contract", type="boolean"),
            ],
            classes=[0, 1],
            target="churned",
        ),
        metrics={"roc_auc": 0.912345678, "log_loss": 0.31, "accuracy": 0.87},
        run_id="run-20261127-a",
        stage="Staging",
        tags={"family": "hist_gradient_boosting", "candidate": "c001"},
        description='hist_gradient_boosting {"learning_rate": 0.1, "max_iter": 200}',
        created_at="2026-11-27T10:12:00.000Z",
        created_by="training-run/run-20261127-a",
    )


@pytest.fixture
def run() -> dict[str, Any]:
    """A run as ``RunTracker.get_with_candidates`` returns it after a successful training."""
    package_versions = {"numpy": "2.4.6", "scikit-learn": "1.9.1", "skl2onnx": "1.20.0", "onnx": "1.23.2"}
    return {
        "run_id": "run-20261127-a",
        "model_name": "churn",
        "status": "SUCCEEDED",
        "request": {"run_id": "run-20261127-a", "model_name": "churn", "seed": 7},
        "started_at": "2026-11-27T10:00:00.000Z",
        "ended_at": "2026-11-27T10:12:03.512Z",
        "duration_seconds": 723.512,
        "code_version": "ba991a2",
        "target_metric": "roc_auc",
        "dataset": {
            "key": "datasets/churn/2026-11/data.csv",
            "version_id": "Q2cF8wQ0a9mX.r1",
            "sha256": DATASET_SHA,
            "rows": 12_480,
            "schema_key": "datasets/churn/2026-11/schema.json",
            "time_range": {"start": "2026-05-01", "end": "2026-10-31"},
        },
        "best_candidate": "c001",
        "evaluation": {
            "passed": True,
            "reason": "passed the gate",
            "metric": "roc_auc",
            "holdout_metrics": {"roc_auc": 0.912345678, "log_loss": 0.31, "accuracy": 0.87},
            "holdout_rows": 2496,
            "threshold": 0.9,
            "tolerance": 0.01,
            "champion": {"version": 2, "comparable": True, "holdout_metrics": {"roc_auc": 0.905}},
        },
        "registered_version": 3,
        "candidates": [
            {
                "candidate_id": "c000",
                "family": "logistic_regression",
                "params": {"C": 1.0},
                "seed": 7,
                "package_versions": package_versions,
            },
            {
                "candidate_id": "c001",
                "family": "hist_gradient_boosting",
                "params": {"learning_rate": 0.1, "max_iter": 200},
                "seed": 7,
                "package_versions": package_versions,
            },
        ],
    }


@pytest.fixture
def untracked_version(version: ModelVersion) -> ModelVersion:
    """A version registered by hand: no run, no description, no metrics."""
    return version.model_copy(
        update={"run_id": None, "metrics": {}, "description": "", "tags": {}, "created_by": "alice"}
    )


def _gate(card: ModelCard, metric: str, source: str = "policy") -> GateRow:
    (row,) = [r for r in card.gate if r.metric == metric and r.source == source]
    return row


# ---- building -------------------------------------------------------------------------
def test_card_of_a_trained_version_carries_the_runs_lineage(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    card = build_model_card(model, version, ["staging", "candidate"], run, None, now=NOW)

    assert card.intended_use == "Rank customers for retention offers; not for pricing decisions."
    assert card.limitations == "Trained on EU customers only."
    assert card.aliases == ["candidate", "staging"]
    assert card.owner == "team-growth"
    assert card.features == version.signature.features
    assert card.artifact.sha256 == SHA
    assert card.artifact.s3_version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert card.generated_at == "2026-11-28T09:30:00.000Z"
    training = card.training
    assert training is not None
    assert training.run_id == "run-20261127-a"
    assert training.code_version == "ba991a2"
    assert training.trained_at == "2026-11-27T10:12:03.512Z"
    # The best candidate's details, not the first candidate's.
    assert training.candidate_id == "c001"
    assert training.family == "hist_gradient_boosting"
    assert training.params == {"learning_rate": 0.1, "max_iter": 200}
    assert training.seed == 7
    assert training.package_versions is not None
    assert training.package_versions["scikit-learn"] == "1.9.1"
    assert training.gate_passed is True
    assert training.dataset is not None
    assert training.dataset.key == "datasets/churn/2026-11/data.csv"
    assert training.dataset.s3_version_id == "Q2cF8wQ0a9mX.r1"
    assert training.dataset.sha256 == DATASET_SHA
    assert training.dataset.rows == 12_480
    assert training.dataset.time_range == {"start": "2026-05-01", "end": "2026-10-31"}


def test_dataset_without_a_time_range_has_none(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    del run["dataset"]["time_range"]

    card = build_model_card(model, version, [], run, None, now=NOW)

    assert card.training is not None and card.training.dataset is not None
    assert card.training.dataset.time_range is None


def test_card_of_a_version_without_a_run_declares_nothing_it_does_not_know(
    untracked_version: ModelVersion,
) -> None:
    bare_model = RegisteredModel(
        name="churn", created_at="2026-11-01T08:00:00.000Z", updated_at="2026-11-01T08:00:00.000Z"
    )

    card = build_model_card(bare_model, untracked_version, [], None, None, now=NOW)

    assert card.training is None
    assert card.intended_use == NOT_DECLARED
    assert card.limitations == NOT_DECLARED
    assert card.description == ""
    assert card.owner is None
    assert card.metrics == {}
    assert card.gate == []
    assert card.created_by == "alice"


def test_intended_use_falls_back_to_the_models_description(
    model: RegisteredModel, untracked_version: ModelVersion
) -> None:
    model.tags = {"intended_use": "   "}

    card = build_model_card(model, untracked_version, [], None, None, now=NOW)

    assert card.intended_use == "Predicts which retail customers cancel within 30 days."
    assert card.limitations == NOT_DECLARED


def test_a_version_whose_run_record_is_missing_keeps_its_run_id(
    model: RegisteredModel, version: ModelVersion
) -> None:
    card = build_model_card(model, version, [], None, None, now=NOW)

    assert card.training is not None
    assert card.training.run_id == "run-20261127-a"
    assert card.training.dataset is None
    assert card.training.family is None


def test_a_run_of_another_version_is_refused(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    run["run_id"] = "run-20261120-z"

    with pytest.raises(ValueError, match="came from run 'run-20261127-a'"):
        build_model_card(model, version, [], run, None, now=NOW)


def test_a_version_of_another_model_is_refused(model: RegisteredModel, version: ModelVersion) -> None:
    other = version.model_copy(update={"model_name": "fraud"})

    with pytest.raises(ValueError, match="'fraud'"):
        build_model_card(model, other, [], None, None, now=NOW)


def test_naive_now_is_refused(model: RegisteredModel, version: ModelVersion) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_model_card(model, version, [], None, None, now=datetime(2026, 11, 28, 9, 30))


# ---- the gate -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("thresholds", "metric", "direction", "passed"),
    [
        ({"roc_auc": {"min": 0.9}}, "roc_auc", "min", True),  # 0.9123 >= 0.9
        ({"roc_auc": {"min": 0.95}}, "roc_auc", "min", False),  # 0.9123 < 0.95
        ({"roc_auc": {"min": 0.912345678}}, "roc_auc", "min", True),  # the bound itself passes
        ({"log_loss": {"max": 0.4}}, "log_loss", "max", True),  # 0.31 <= 0.4
        ({"log_loss": {"max": 0.25}}, "log_loss", "max", False),  # 0.31 > 0.25
        ({"log_loss": {"max": 0.31}}, "log_loss", "max", True),
    ],
)
def test_policy_gate_rows_compare_in_the_metrics_direction(
    model: RegisteredModel,
    version: ModelVersion,
    thresholds: dict[str, dict[str, float]],
    metric: str,
    direction: str,
    passed: bool,
) -> None:
    card = build_model_card(model, version, [], None, thresholds, now=NOW)

    row = _gate(card, metric)
    assert (row.direction, row.passed) == (direction, passed)
    assert row.value == version.metrics[metric]
    assert row.threshold == thresholds[metric][direction]


def test_a_metric_bounded_both_ways_gets_a_row_per_bound(
    model: RegisteredModel, version: ModelVersion
) -> None:
    card = build_model_card(model, version, [], None, {"accuracy": {"min": 0.8, "max": 0.86}}, now=NOW)

    assert [(r.direction, r.passed) for r in card.gate] == [("min", True), ("max", False)]


def test_a_dumped_promotion_policy_gates_only_on_the_bounds_it_sets(
    model: RegisteredModel, version: ModelVersion
) -> None:
    # What MetricBound.model_dump() yields: the unset bound is None, not missing.
    thresholds = {"roc_auc": {"min": 0.9, "max": None}, "log_loss": {"min": None, "max": 0.25}}

    card = build_model_card(model, version, [], None, thresholds, now=NOW)

    assert [(r.metric, r.direction, r.passed) for r in card.gate] == [
        ("roc_auc", "min", True),
        ("log_loss", "max", False),
    ]


def test_a_gated_metric_the_version_does_not_report_fails(
    model: RegisteredModel, version: ModelVersion
) -> None:
    card = build_model_card(model, version, [], None, {"f1": {"min": 0.5}}, now=NOW)

    row = _gate(card, "f1")
    assert row.value is None
    assert row.passed is False


def test_an_unknown_policy_bound_is_refused(model: RegisteredModel, version: ModelVersion) -> None:
    with pytest.raises(ValueError, match="gte"):
        build_model_card(model, version, [], None, {"roc_auc": {"gte": 0.9}}, now=NOW)


def test_the_runs_threshold_becomes_a_training_gate_row(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    card = build_model_card(model, version, [], run, {"roc_auc": {"min": 0.95}}, now=NOW)

    policy, training = _gate(card, "roc_auc", "policy"), _gate(card, "roc_auc", "training")
    assert (policy.threshold, policy.passed) == (0.95, False)
    assert (training.threshold, training.direction, training.passed) == (0.9, "min", True)


def test_a_lower_is_better_training_threshold_is_a_max(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    reason = "log_loss 0.3100 is above the threshold 0.3"
    run["evaluation"] |= {"metric": "log_loss", "threshold": 0.3, "passed": False, "reason": reason}

    card = build_model_card(model, version, [], run, None, now=NOW)

    row = _gate(card, "log_loss", "training")
    assert (row.direction, row.value, row.passed) == ("max", 0.31, False)
    assert f"- **Training gate:** failed ({reason})" in render_markdown(card)


def test_a_run_without_a_threshold_adds_no_gate_row(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    run["evaluation"]["threshold"] = None

    card = build_model_card(model, version, [], run, None, now=NOW)

    assert card.gate == []


# ---- Markdown -------------------------------------------------------------------------
def test_markdown_has_every_section_and_the_artifact_checksum(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    card = build_model_card(model, version, ["staging"], run, {"log_loss": {"max": 0.25}}, now=NOW)

    document = render_markdown(card)

    assert document.startswith("# Model card: churn v3\n")
    headings = [line for line in document.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Overview",
        "## Intended use",
        "## Training data",
        "## Training",
        "## Metrics",
        "## Signature",
        "## Artifact",
        "## Limitations",
    ]
    assert f"`{SHA}`" in document
    assert DATASET_SHA in document
    assert "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY" in document
    assert "48,213 bytes (47.1 KiB)" in document
    assert "start: 2026-05-01, end: 2026-10-31" in document
    assert "- **Rows:** 12,480" in document
    assert "- **Training gate:** passed\n" in document
    assert "Trained on EU customers only." in document
    assert "| metric | value | threshold | passes |" in document
    assert "| roc_auc | 0.9123 | ≥ 0.9000 (training) | yes |" in document
    assert "| log_loss | 0.3100 | ≤ 0.2500 (policy) | no |" in document
    assert "| accuracy | 0.8700 | — | — |" in document
    assert "| 1 | tenure_months | integer |" in document


def test_markdown_of_an_untracked_version_says_what_is_missing(
    model: RegisteredModel, untracked_version: ModelVersion
) -> None:
    card = build_model_card(model, untracked_version, [], None, None, now=NOW)

    document = render_markdown(card)

    assert "No training run is linked to this version." in document
    assert "The training data is not recorded for this version." in document
    assert "No metrics were recorded for this version." in document


def test_pipes_in_table_cells_are_escaped(model: RegisteredModel, version: ModelVersion) -> None:
    piped = version.model_copy(update={"metrics": {"recall|at_10": 0.5}})

    document = render_markdown(
        build_model_card(model, piped, [], None, {"recall|at_10": {"min": 0.4}}, now=NOW)
    )

    row = next(line for line in document.splitlines() if "recall" in line)
    assert row == "| recall\\|at_10 | 0.5000 | ≥ 0.4000 (policy) | yes |"
    # Four cells: every unescaped pipe is a cell boundary.
    assert len(row.replace("\\|", "").split("|")) == 6


def test_line_breaks_in_a_cell_do_not_split_the_row(model: RegisteredModel, version: ModelVersion) -> None:
    broken = version.model_copy(update={"metrics": {"odd\nname": 0.5}})

    document = render_markdown(build_model_card(model, broken, [], None, None, now=NOW))

    assert "| odd name | 0.5000 | — | — |" in document


# ---- serialization --------------------------------------------------------------------
def test_card_round_trips_through_json(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    card = build_model_card(model, version, ["staging"], run, {"log_loss": {"max": 0.4}}, now=NOW)

    restored = ModelCard.model_validate_json(card.model_dump_json())

    assert restored == card
    assert restored.classes == [0, 1]  # integer labels stay integers
    assert render_markdown(restored) == render_markdown(card)


def test_a_run_started_by_the_retraining_loop_names_its_drift_run_on_the_card(
    model: RegisteredModel, version: ModelVersion, run: dict[str, Any]
) -> None:
    triggered_by = {
        "drift_run_id": "drift-20261127-0900-ab12cd",
        "event": {
            "type": "DriftDetected",
            "id": "6a7e8feb-b491",
            "kinds": ["data", "concept"],
            "model_version": 2,
        },
    }
    card = build_model_card(model, version, [], run | {"triggered_by": triggered_by}, None, now=NOW)

    assert card.training is not None and card.training.triggered_by == triggered_by
    assert (
        "- **Triggered by:** drift run `drift-20261127-0900-ab12cd` (DriftDetected: data, concept, on v2, "
        "event `6a7e8feb-b491`)"
    ) in render_markdown(card)
    untriggered = build_model_card(model, version, [], run, None, now=NOW)
    assert untriggered.training is not None and untriggered.training.triggered_by is None
    assert "Triggered by" not in render_markdown(untriggered)
