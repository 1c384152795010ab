"""POST /training with Optuna's search: a space the family's checks refuse is a 422 naming
the field, before any execution starts; a good one starts the run with the space as given."""

from __future__ import annotations

import json
from types import ModuleType
from typing import Any

import boto3
import pytest

from tests.integration.conftest import call
from tests.support import REGION, STATE_MACHINE_ARN, body, load_event

EVENT = "training/start_search.json"


def _post(
    training_api: ModuleType, search_change: dict[str, Any] | None = None, **change: Any
) -> dict[str, Any]:
    request = json.loads(load_event(EVENT)["body"]) | change
    if search_change is not None:
        request["search"] = request["search"] | search_change
    return call(training_api, load_event(EVENT, body=request))


def _executions() -> list[Any]:
    return boto3.client("stepfunctions", region_name=REGION).list_executions(
        stateMachineArn=STATE_MACHINE_ARN
    )["executions"]


def test_a_search_request_starts_a_run_carrying_its_space(training_api: ModuleType) -> None:
    response = _post(training_api)

    assert response["statusCode"] == 202, response["body"]
    execution = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=body(response)["execution_arn"]
    )
    search = json.loads(execution["input"])["search"]
    assert search["space"]["C"] == {"type": "float", "low": 0.001, "high": 10.0, "log": True}
    assert search["n_trials"] == 6


@pytest.mark.parametrize(
    ("search_change", "loc", "message"),
    [
        (
            {"space": {"C": {"type": "float", "low": -1.0, "high": 1.0}}},
            ["space", "C", "low"],
            "greater than 0",
        ),
        (
            {"space": {"gamma": {"type": "float", "low": 0.1, "high": 1.0}}},
            ["space", "gamma"],
            "no parameter",
        ),
        (
            {"space": {"max_iter": {"type": "int", "low": 1, "high": 50}}},
            ["space", "max_iter", "low"],
            "greater",
        ),
        (
            {"space": {"max_iter": {"type": "float", "low": 10, "high": 50}}},
            ["space", "max_iter", "type"],
            "does not take float",
        ),
        ({"space": {"C": {"type": "float", "low": 2.0, "high": 1.0}}}, ["space", "C"], "low must be below"),
        (
            {"space": {"C": {"type": "float", "low": 0.0, "high": 1.0, "log": True}}},
            ["space", "C", "log"],
            "low > 0",
        ),
        (
            {"space": {"class_weight": {"type": "categorical", "choices": ["balanced", "heavy"]}}},
            ["space", "class_weight", "choices", 1],
            "balanced",
        ),
        ({"family": "svm"}, ["family"], "unknown estimator family"),
        ({"params": {"C": 1.0}}, ["space", "C"], "both fixed and searched"),
        ({"direction": "minimize"}, ["direction"], "roc_auc is to maximize"),
        ({"metric": "rmse"}, ["metric"], "not defined"),
    ],
)
def test_a_space_outside_the_familys_checked_parameters_is_422_before_any_run(
    training_api: ModuleType, search_change: dict[str, Any], loc: list[Any], message: str
) -> None:
    response = _post(training_api, search_change)

    assert response["statusCode"] == 422, response["body"]
    problem = body(response)
    assert message in problem["message"], problem
    assert any(d["loc"][2:] == loc for d in problem["detail"]), problem["detail"]
    assert _executions() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {
                "search": {
                    "family": "ridge",
                    "space": {"alpha": {"type": "float", "low": 0.1, "high": 1.0}},
                    "rounds": 2,
                }
            },
            "regression family",
        ),
        ({"candidates": [{"family": "logistic_regression"}]}, "not both"),
    ],
)
def test_a_search_that_does_not_fit_the_request_is_422(
    training_api: ModuleType, change: dict[str, Any], message: str
) -> None:
    response = _post(training_api, **change)

    assert response["statusCode"] == 422, response["body"]
    assert message in body(response)["message"] or message in json.dumps(body(response)["detail"])
    assert _executions() == []


def test_a_search_without_a_budget_is_422(training_api: ModuleType) -> None:
    request = json.loads(load_event(EVENT)["body"])
    del request["search"]["n_trials"]

    response = call(training_api, load_event(EVENT, body=request))

    assert response["statusCode"] == 422, response["body"]
    assert "a search needs a budget" in json.dumps(body(response))


@pytest.mark.parametrize(
    ("pruner", "loc", "message"),
    [
        ({"type": "percentile"}, [], "does not match any of the expected tags"),
        ({"type": "median", "reduction_factor": 3}, ["median", "reduction_factor"], "Extra inputs"),
        (
            {"type": "hyperband", "min_resource": 50, "max_resource": 10},
            ["hyperband"],
            "max_resource must be above min_resource",
        ),
        (
            {"type": "successive_halving", "reduction_factor": 1},
            ["successive_halving", "reduction_factor"],
            "2",
        ),
    ],
)
def test_a_bad_pruner_is_422_naming_it_before_any_run(
    training_api: ModuleType, pruner: dict[str, Any], loc: list[str], message: str
) -> None:
    response = _post(training_api, {"pruner": pruner})

    assert response["statusCode"] == 422, response["body"]
    (problem,) = body(response)["detail"]
    assert problem["loc"] == ["body", "search", "optuna", "pruner", *loc]
    assert message in problem["msg"]
    assert _executions() == []


def test_a_search_with_a_pruner_starts_a_run_carrying_it(training_api: ModuleType) -> None:
    pruner = {"type": "successive_halving", "min_resource": 10}

    response = _post(training_api, {"pruner": pruner})

    assert response["statusCode"] == 202, response["body"]
    (execution,) = _executions()
    started = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=execution["executionArn"]
    )
    carried = json.loads(started["input"])["search"]["pruner"]
    assert pruner.items() <= carried.items() and carried["reduction_factor"] == 4  # Optuna's default
