"""The gate's metrics agree with scikit-learn's."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlops_core.training import metrics


@pytest.fixture
def binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p1 = np.clip(y * 0.3 + rng.random(500) * 0.7, 0, 1)
    p1[:50] = 0.5  # ties
    return y, np.column_stack([1 - p1, p1])


def test_roc_auc_matches_sklearn_with_ties(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = binary
    assert metrics.roc_auc(y, p[:, 1]) == pytest.approx(skm.roc_auc_score(y, p[:, 1]), abs=1e-12)


def test_classification_scores_match_sklearn(binary: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = binary
    predicted = (p[:, 1] > 0.5).astype(int)
    scores = metrics.score("classification", y, predicted, p, [0, 1])
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted), abs=1e-12)
    assert scores["f1"] == pytest.approx(skm.f1_score(y, predicted), abs=1e-12)
    assert scores["log_loss"] == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert scores["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p[:, 1]), abs=1e-12)


def test_regression_scores_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=200)
    predicted = y + rng.normal(scale=0.3, size=200)
    scores = metrics.score("regression", y, predicted)
    assert scores["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, predicted)), abs=1e-12)
    assert scores["r2"] == pytest.approx(skm.r2_score(y, predicted), abs=1e-12)


def test_multiclass_has_every_classification_metric() -> None:
    """Macro F1 and one-vs-rest macro ROC AUC (they were missing: SelectBest's KeyError)."""
    y = np.array([0, 1, 2, 2])
    p = np.full((4, 3), 1 / 3)
    scores = metrics.score("classification", y, np.array([0, 1, 2, 0]), p, [0, 1, 2])
    assert set(scores) == set(metrics.CLASSIFICATION_METRICS)
    assert scores["roc_auc"] == 0.5
    assert scores["f1"] == pytest.approx(skm.f1_score(y, [0, 1, 2, 0], average="macro"), abs=1e-12)


def test_a_model_without_probabilities_still_has_accuracy_and_f1() -> None:
    scores = metrics.score("classification", np.array([0, 1, 1]), np.array([0, 1, 0]), None, [0, 1])
    assert scores == {"accuracy": pytest.approx(2 / 3), "f1": pytest.approx(2 / 3)}


@pytest.mark.parametrize(
    ("metric", "task", "problem"),
    [
        ("roc_auc", "classification", None),
        ("rmse", "regression", None),
        (
            "roc_auc",
            "regression",
            "target_metric 'roc_auc' is not defined for regression: one of ['rmse', 'r2']",
        ),
        ("r2", "classification", "target_metric 'r2' is not defined for classification"),
        ("auc", "classification", "unknown target_metric 'auc': one of ['accuracy', 'f1', 'log_loss',"),
    ],
)
def test_metric_problem_says_why_a_metric_cannot_be_the_target(
    metric: str, task: str, problem: str | None
) -> None:
    found = metrics.metric_problem(metric, task)  # type: ignore[arg-type]
    assert found == problem if problem is None else found is not None and found.startswith(problem)


def test_better_knows_the_direction_of_each_metric() -> None:
    assert metrics.better("roc_auc")(0.9, 0.8)
    assert metrics.better("rmse")(0.1, 0.2)
    assert not metrics.better("log_loss")(0.3, 0.2)


def test_roc_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match="both classes"):
        metrics.roc_auc(np.ones(3), np.array([0.1, 0.2, 0.3]))
