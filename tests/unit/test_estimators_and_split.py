"""Candidate declarations are checked before training; splits are deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_core.errors import Invalid
from mlops_core.training.estimators import FAMILIES, CandidateSpec, SearchSpec, build, check_candidate, expand
from mlops_core.training.splits import split_indices


def test_defaults_are_filled_in() -> None:
    params = check_candidate(
        CandidateSpec(family="random_forest", params={"n_estimators": 10}), "classification", 0
    )
    assert params["n_estimators"] == 10
    assert params["max_features"] == "sqrt"


def test_unknown_family_is_named() -> None:
    with pytest.raises(Invalid, match="candidate 2: unknown estimator family 'xgboost'"):
        check_candidate(CandidateSpec(family="xgboost"), "classification", 2)


def test_invalid_hyper_parameters_are_named() -> None:
    with pytest.raises(Invalid) as raised:
        check_candidate(
            CandidateSpec(family="logistic_regression", params={"C": -1, "solver": "magic"}),
            "classification",
            0,
        )
    assert "C: Input should be greater than 0" in raised.value.message
    assert {tuple(d["loc"]) for d in raised.value.details} == {
        ("body", "candidates", 0, "params", "C"),
        ("body", "candidates", 0, "params", "solver"),
    }


def test_a_regression_family_is_refused_for_a_classification_dataset() -> None:
    with pytest.raises(Invalid, match="'ridge' is a regression family"):
        check_candidate(CandidateSpec(family="ridge"), "classification", 0)


def test_before_the_dataset_is_read_any_family_passes_but_its_parameters_are_checked() -> None:
    assert check_candidate(CandidateSpec(family="ridge"), None, 0)["alpha"] == 1.0
    with pytest.raises(Invalid, match="invalid hyper-parameters"):
        check_candidate(CandidateSpec(family="ridge", params={"alpha": -1}), None, 0)


def test_grid_expands_in_a_fixed_order_up_to_the_budget() -> None:
    search = SearchSpec(
        family="random_forest", grid={"n_estimators": [10, 50], "max_depth": [3, 5, None]}, budget=4
    )
    expanded = expand([CandidateSpec(family="logistic_regression")], search)
    assert [c.params for c in expanded[1:]] == [
        {"max_depth": 3, "n_estimators": 10},
        {"max_depth": 3, "n_estimators": 50},
        {"max_depth": 5, "n_estimators": 10},
        {"max_depth": 5, "n_estimators": 50},
    ]


def test_no_candidates_is_invalid() -> None:
    with pytest.raises(Invalid, match="no candidates"):
        expand(None, None)


@pytest.mark.parametrize("family", ["logistic_regression", "random_forest", "hist_gradient_boosting"])
def test_every_classification_family_builds_with_its_defaults(family: str) -> None:
    params = check_candidate(CandidateSpec(family=family), "classification", 0)
    estimator = build(family, params, seed=3)
    x = np.random.default_rng(0).normal(size=(60, 3))
    estimator.fit(x, (x[:, 0] > 0).astype(int))
    assert estimator.predict_proba(x).shape == (60, 2)


def test_split_is_deterministic_disjoint_and_stratified() -> None:
    y = np.array([0] * 60 + [1] * 40)
    first = split_indices(y, task="classification", seed=7, holdout_fraction=0.2, validation_fraction=0.2)
    again = split_indices(y, task="classification", seed=7, holdout_fraction=0.2, validation_fraction=0.2)
    other = split_indices(y, task="classification", seed=8, holdout_fraction=0.2, validation_fraction=0.2)

    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[2], other[2])
    train, validation, holdout = first
    assert len(set(train) | set(validation) | set(holdout)) == 100
    assert (len(train), len(validation), len(holdout)) == (60, 20, 20)
    assert y[holdout].mean() == pytest.approx(0.4)


@pytest.mark.parametrize(
    "family", ["logistic_regression", "ridge", "random_forest", "random_forest_regressor"]
)
def test_a_family_without_native_missing_values_gets_a_median_imputer_first(family: str) -> None:
    from sklearn.pipeline import Pipeline

    params = FAMILIES[family][0]().model_dump()
    estimator = build(family, params, seed=1, missing_values=True)

    assert isinstance(estimator, Pipeline)
    names = [name for name, _ in estimator.steps]
    assert names[0] == "simpleimputer"
    assert "simpleimputer" not in names[1:]  # one flat pipeline: the exporter finds the final step
    assert not isinstance(estimator.steps[-1][1], Pipeline)
    assert estimator.steps[0][1].strategy == "median"
    without = build(family, params, seed=1)
    assert "simpleimputer" not in dict(getattr(without, "steps", []))


@pytest.mark.parametrize("family", ["hist_gradient_boosting", "hist_gradient_boosting_regressor"])
def test_gradient_boosting_takes_missing_values_as_it_is(family: str) -> None:
    params = FAMILIES[family][0]().model_dump()
    assert type(build(family, params, seed=1, missing_values=True)) is type(build(family, params, seed=1))
