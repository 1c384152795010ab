"""Optuna's search: spaces checked against each family's parameters, and the study's
ask-and-tell across rounds through its JSON document (no AWS)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlops_core.errors import Invalid
from mlops_core.training.search import (
    OptunaSearchSpec,
    StudyDocument,
    ask,
    budget_spent,
    check_space,
    tell,
)


def _spec(**changes: Any) -> OptunaSearchSpec:
    base: dict[str, Any] = {
        "family": "hist_gradient_boosting",
        "space": {
            "learning_rate": {"type": "float", "low": 0.01, "high": 0.5, "log": True},
            "max_leaf_nodes": {"type": "int", "low": 4, "high": 64},
            "early_stopping": {"type": "categorical", "choices": [True, False]},
        },
        "n_trials": 9,
        "parallelism": 3,
    }
    return OptunaSearchSpec.model_validate(base | changes)


@pytest.mark.parametrize(
    ("family", "space", "task"),
    [
        (
            "logistic_regression",
            {"C": {"type": "float", "low": 1e-3, "high": 10, "log": True}},
            "classification",
        ),
        (
            "random_forest",
            {"max_features": {"type": "categorical", "choices": ["sqrt", "log2", 0.5]}},
            "classification",
        ),
        ("random_forest", {"max_depth": {"type": "int", "low": 2, "high": 12, "step": 2}}, "classification"),
        (
            "random_forest_regressor",
            {"n_estimators": {"type": "int", "low": 10, "high": 200, "log": True}},
            "regression",
        ),
        (
            "hist_gradient_boosting_regressor",
            {"l2_regularization": {"type": "float", "low": 0, "high": 1}},
            "regression",
        ),
        (
            "ridge",
            {"alpha": {"type": "int", "low": 0, "high": 10}},
            "regression",
        ),  # ints suit a float parameter
    ],
)
def test_spaces_within_each_familys_checks_are_accepted(
    family: str, space: dict[str, Any], task: str
) -> None:
    metric, direction = check_space(
        OptunaSearchSpec(family=family, space=space, rounds=1),
        task,
        "rmse" if task == "regression" else "roc_auc",
    )
    assert direction == ("minimize" if task == "regression" else "maximize")
    assert metric in {"rmse", "roc_auc"}


@pytest.mark.parametrize(
    ("changes", "where"),
    [
        (
            {"space": {"learning_rate": {"type": "float", "low": 0.1, "high": 2.0}}},
            "space.learning_rate.high",
        ),
        ({"space": {"max_iter": {"type": "int", "low": 0, "high": 10}}}, "space.max_iter.low"),
        ({"space": {"depth": {"type": "int", "low": 1, "high": 10}}}, "space.depth"),
        (
            {"space": {"early_stopping": {"type": "categorical", "choices": ["auto", "sometimes"]}}},
            "space.early_stopping.choices.1",
        ),
        ({"params": {"max_iter": 0}}, "params.max_iter"),
        ({"params": {"l1": 1}}, "params.l1"),
    ],
)
def test_spaces_outside_the_familys_checks_are_refused_naming_the_field(
    changes: dict[str, Any], where: str
) -> None:
    with pytest.raises(Invalid) as refused:
        check_space(_spec(**changes), "classification", "roc_auc")

    assert where in refused.value.message
    # pydantic locates a union's problems one level further (``choices.1.bool``).
    assert any(".".join(map(str, d["loc"][2:])).startswith(where) for d in refused.value.details or [])


def test_every_problem_of_a_space_is_reported_at_once() -> None:
    spec = _spec(
        space={
            "learning_rate": {"type": "float", "low": -1, "high": 0.5},
            "max_leaf_nodes": {"type": "int", "low": 1, "high": 8},
            "colour": {"type": "categorical", "choices": ["red"]},
        }
    )
    with pytest.raises(Invalid) as refused:
        check_space(spec, None, None)

    assert len(refused.value.details or []) == 3


def test_a_family_of_the_other_task_is_refused() -> None:
    with pytest.raises(Invalid, match="is a classification family, the dataset is regression"):
        check_space(_spec(), "regression", "rmse")


@pytest.mark.parametrize(
    "changes",
    [
        {"n_trials": None},  # no budget at all
        {"parallelism": 17},
        {"n_trials": 257},
        {"space": {}},
        {"space": {"learning_rate": {"type": "uniform", "low": 0, "high": 1}}},
        {"pruner": "median"},
    ],
)
def test_malformed_search_specs_are_refused_by_the_model(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        _spec(**changes)


def test_budgets_in_trials_rounds_and_time() -> None:
    assert (_spec().max_trials, _spec().max_rounds) == (9, 3)
    assert (_spec(n_trials=None, rounds=2).max_trials, _spec(n_trials=None, rounds=2).max_rounds) == (6, 2)
    timed = _spec(n_trials=None, timeout_seconds=60)
    document = StudyDocument(
        family="x", metric="roc_auc", direction="maximize", started_at="2026-12-01T00:00:00.000Z"
    )
    assert budget_spent(document, timed, 59) is None
    assert budget_spent(document, timed, 60) == "60 s"


def _document() -> StudyDocument:
    return StudyDocument(
        family="hist_gradient_boosting",
        metric="roc_auc",
        direction="maximize",
        started_at="2026-12-01T00:00:00.000Z",
    )


def _results(trials: list[Any], value: Any) -> list[dict[str, Any]]:
    return [
        {"candidate_id": t.candidate_id, "validation_metrics": {"roc_auc": value(t.params)}} for t in trials
    ]


def test_ask_and_tell_survive_the_round_trip_through_json() -> None:
    spec = _spec()
    objective = lambda p: 1.0 - abs(p["learning_rate"] - 0.1) - p["max_leaf_nodes"] / 1000  # noqa: E731

    kept = _document()
    tell(kept, _results(ask(kept, spec, 3, seed=7), objective))
    restored = StudyDocument.model_validate_json(kept.model_dump_json())
    # The same study, asked for its next round from the stored document or from the live one.
    assert [t.params for t in ask(restored, spec, 3, seed=7)] == [
        t.params for t in ask(kept, spec, 3, seed=7)
    ]
    assert [t.number for t in restored.trials] == [0, 1, 2, 3, 4, 5]
    assert [t.round for t in restored.trials] == [1, 1, 1, 2, 2, 2]
    assert [t.state for t in restored.trials] == ["COMPLETE"] * 3 + ["RUNNING"] * 3


def test_a_round_asks_distinct_trials_and_a_seed_reproduces_them() -> None:
    spec = _spec()
    first, again = _document(), _document()
    asked = ask(first, spec, 3, seed=1)
    assert len({(t.params["learning_rate"], t.params["max_leaf_nodes"]) for t in asked}) == 3
    assert [t.params for t in ask(again, spec, 3, seed=1)] == [t.params for t in asked]
    assert [t.params for t in ask(_document(), spec, 3, seed=2)] != [t.params for t in asked]


def test_telling_is_idempotent_and_bad_values_fail_the_trial() -> None:
    document = _document()
    trials = ask(document, _spec(), 3, seed=3)
    results = [
        {"candidate_id": trials[0].candidate_id, "validation_metrics": {"roc_auc": 0.9}},
        {"candidate_id": trials[1].candidate_id, "validation_metrics": {"roc_auc": float("nan")}},
        {"candidate_id": trials[2].candidate_id, "error": {"Error": "States.Timeout", "Cause": "x"}},
    ]
    tell(document, results)
    tell(document, [{"candidate_id": trials[0].candidate_id, "validation_metrics": {"roc_auc": 0.1}}])

    assert [(t.state, t.value) for t in document.trials] == [
        ("COMPLETE", 0.9),
        ("FAIL", None),
        ("FAIL", None),
    ]
    assert document.best() is document.trials[0]
    summary = document.summary()
    assert summary["best"]["value"] == 0.9
    assert summary["trials"][2]["error"] == "States.Timeout: x"


def test_told_results_steer_the_sampler_towards_the_optimum() -> None:
    """TPE after its random start: the later rounds sample nearer the optimum than the first."""
    spec = _spec(
        space={"learning_rate": {"type": "float", "low": 0.001, "high": 1.0, "log": True}},
        n_trials=30,
        parallelism=3,
    )
    document = _document()
    objective = lambda p: -abs(p["learning_rate"] - 0.05)  # noqa: E731
    while budget_spent(document, spec, 0) is None:
        tell(document, _results(ask(document, spec, 3, seed=11), objective))
    distance = [abs(t.params["learning_rate"] - 0.05) for t in document.trials]
    first, last = sum(distance[:9]) / 9, sum(distance[-9:]) / 9
    assert last < first / 2, (first, last)
    assert document.best() is not None and abs(document.best().params["learning_rate"] - 0.05) < 0.01
