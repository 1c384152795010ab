"""ValidateData's check that every metric will have a value on the splits: each problem
named, before any candidate trains (instead of a KeyError or a NaN later)."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_core.training.splits import split_indices, target_problems


def _problems(y: list[float] | np.ndarray, task: str = "classification", **fractions: float) -> list[str]:
    fractions = {"holdout_fraction": 0.2, "validation_fraction": 0.2} | fractions
    return target_problems(np.asarray(y, dtype=np.float64), "label", task=task, seed=0, **fractions)


def test_a_target_every_metric_can_use_has_no_problems() -> None:
    assert _problems([0, 1, 2] * 20) == []
    assert _problems(np.linspace(0, 1, 10), task="regression") == []


@pytest.mark.parametrize(
    ("y", "task", "problem"),
    [
        ([0, 1, np.nan] * 10, "classification", "the target 'label' has 10 null value(s)"),
        ([1.5, 2.0] * 10, "regression", None),
        ([0, 1, 1.5] * 10, "classification", "the target 'label' has non-integer values (e.g. 1.5)"),
        ([3] * 30, "classification", "the target 'label' has one class (3); a classifier needs at least two"),
        ([0, 1, np.nan], "regression", "the target 'label' has 1 null value(s)"),
    ],
)
def test_targets_no_model_can_be_scored_on_are_named(y: list[float], task: str, problem: str | None) -> None:
    found = _problems(y, task)
    assert found == [] if problem is None else found[0].startswith(problem), found


def test_a_class_too_small_for_every_split_is_named() -> None:
    """Two rows of class 7: with these fractions both go to holdout and validation."""
    y = [0] * 30 + [1] * 30 + [7] * 2
    problems = _problems(y, holdout_fraction=0.45, validation_fraction=0.34)
    assert problems == [
        "no training rows for class(es) of 'label': 7 (2 row(s)); add rows or lower the fractions"
    ]


def test_a_split_with_one_class_is_named_with_the_fraction_to_raise() -> None:
    y = [0] * 40 + [1] * 2  # 0.2 of 2 rows rounds to 0: validation and holdout see class 0 only
    problems = _problems(y)
    _, validation, holdout = split_indices(
        np.asarray(y), task="classification", seed=0, holdout_fraction=0.2, validation_fraction=0.2
    )
    assert problems == [
        f"the validation rows ({validation.size}) hold 1 class(es) of 'label'; roc_auc needs two: "
        "add rows of each class or raise validation_fraction",
        f"the holdout rows ({holdout.size}) hold 1 class(es) of 'label'; roc_auc needs two: "
        "add rows of each class or raise holdout_fraction",
    ]


def test_a_regression_split_of_one_row_is_named() -> None:
    assert _problems([1.0, 2.0, 3.0, 4.0], task="regression") == [
        "the validation split has 1 row(s); r2 needs two: add rows or raise validation_fraction",
        "the holdout split has 1 row(s); r2 needs two: add rows or raise holdout_fraction",
    ]


def test_a_text_targets_classes_are_named_by_their_names() -> None:
    y = np.asarray([2.0] * 30, dtype=np.float64)
    problems = target_problems(
        y,
        "species",
        task="classification",
        seed=0,
        holdout_fraction=0.2,
        validation_fraction=0.2,
        class_names=["Adelie", "Chinstrap", "Gentoo"],
    )
    assert problems == ["the target 'species' has one class (Gentoo); a classifier needs at least two"]
