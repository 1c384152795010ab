"""Pruning a search's trials with Optuna's pruners: training in steps is the same model as one
fit, a trial below the study's curves is pruned at its step and told as PRUNED, families that
train in one step are never pruned, and a bad pruner declaration is refused (no AWS)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from mlops_core.training import metrics
from mlops_core.training.estimators import CandidateSpec, build, check_candidate
from mlops_core.training.pruning import (
    ITERATIVE,
    MedianPrunerSpec,
    applies,
    fit_in_steps,
    note,
    parse_pruner,
    trial_in_study,
)
from mlops_core.training.search import OptunaSearchSpec, StudyDocument, Trial, ask, tell
from mlops_core.training.search_steps import _candidate, _pruner_note
from mlops_core.training.state import SearchState


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(42).permutation(len(y))
    train, validation = order[:400], order[400:]
    return {"x_train": x[train], "y_train": y[train], "x_val": x[validation], "y_val": y[validation]}


def _log_loss(data: dict[str, np.ndarray]) -> Any:
    def score(model: Any) -> float:
        x, y = data["x_val"], data["y_val"]
        scores = metrics.score("classification", y, model.predict(x), model.predict_proba(x), [0, 1])
        return scores["log_loss"]

    return score


def _document(trials: list[Trial]) -> StudyDocument:
    return StudyDocument(
        family="random_forest", metric="log_loss", direction="minimize", started_at="-", trials=trials
    )


def _complete(number: int, curve: dict[str, float]) -> Trial:
    return Trial(
        number=number,
        candidate_id=f"t{number:03d}",
        round=1,
        params={},
        state="COMPLETE",
        value=curve[max(curve, key=int)],
        intermediate_values=curve,
    )


def _train(
    family: str, params: dict[str, Any], document: StudyDocument, pruner: dict[str, Any], data: Any
) -> tuple[Any, Any]:
    full = check_candidate(CandidateSpec(family=family, params=params), "classification", 0)
    spec = parse_pruner(pruner)
    trial = trial_in_study(document, spec, "run-1", len(document.trials))
    return fit_in_steps(
        build(family, full, seed=7),
        family,
        full,
        fit=lambda model: model.fit(data["x_train"], data["y_train"]),
        score=_log_loss(data),
        trial=trial,
        interval=spec.interval,
    )


@pytest.mark.parametrize(
    ("family", "params"),
    [
        ("random_forest", {"n_estimators": 35, "max_depth": 4}),
        ("hist_gradient_boosting", {"max_iter": 25, "early_stopping": False}),
        ("hist_gradient_boosting", {"max_iter": 60, "early_stopping": True}),
    ],
)
def test_a_trial_trained_in_steps_and_not_pruned_is_the_model_one_fit_makes(
    family: str, params: dict[str, Any], data: dict[str, np.ndarray]
) -> None:
    model, curve = _train(family, params, _document([]), {"type": "median", "interval": 10}, data)

    full = check_candidate(CandidateSpec(family=family, params=params), "classification", 0)
    whole = build(family, full, seed=7).fit(data["x_train"], data["y_train"])
    assert np.array_equal(model.predict_proba(data["x_val"]), whole.predict_proba(data["x_val"]))
    assert curve.pruned_at_step is None
    resource = ITERATIVE[family]
    expected = [s for s in (10, 20, 30, 40, 50, 60) if s < full[resource]] + [full[resource]]
    steps = [int(s) for s in curve.intermediate_values]
    # Every `interval` iterations, the last at the end or where its own early stopping stopped it.
    assert steps[:-1] == expected[: len(steps) - 1]
    assert steps[-1] == curve.steps_trained == getattr(whole, "n_iter_", full[resource])
    assert model.get_params()["warm_start"] is False


def test_a_trial_worse_than_the_median_is_pruned_at_its_step_and_told_as_pruned(
    data: dict[str, np.ndarray],
) -> None:
    # Three completed trials with a near-perfect curve at every step: any real trial is worse.
    perfect = {str(s): 1e-6 for s in (10, 20, 30, 40, 50)}
    document = _document([_complete(n, perfect) for n in range(3)])
    pruner = {"type": "median", "n_startup_trials": 3, "n_warmup_steps": 15, "interval": 10}

    _, curve = _train("random_forest", {"n_estimators": 50, "max_depth": 2}, document, pruner, data)

    assert curve.pruned_at_step == 20  # the first step past the warm-up
    assert list(curve.intermediate_values) == ["10", "20"]
    assert curve.steps_trained == 20
    document.trials.append(
        Trial(number=3, candidate_id="t003", round=2, params={"max_depth": 2}, state="RUNNING")
    )
    tell(
        document,
        [
            {
                "candidate_id": "t003",
                "state": "PRUNED",
                "step": curve.pruned_at_step,
                "value": curve.intermediate_values["20"],
                "curve": curve.model_dump(),
            }
        ],
    )
    told = document.trials[3]
    assert (told.state, told.pruned_at_step, told.steps_trained) == ("PRUNED", 20, 20)
    assert told.value == curve.intermediate_values["20"]
    summary = document.summary()
    assert summary["trials"][3]["state"] == "PRUNED" and summary["trials"][3]["pruned_at_step"] == 20
    assert "intermediate_values" not in summary["trials"][3]
    assert summary["best"]["number"] == 0  # a pruned trial is never the best


def test_a_trial_better_than_the_median_completes_with_its_curve(data: dict[str, np.ndarray]) -> None:
    awful = {str(s): 5.0 for s in (10, 20, 30)}
    document = _document([_complete(n, awful) for n in range(3)])
    pruner = {"type": "median", "n_startup_trials": 3, "interval": 10}

    _, curve = _train("random_forest", {"n_estimators": 30}, document, pruner, data)

    assert curve.pruned_at_step is None and list(curve.intermediate_values) == ["10", "20", "30"]


@pytest.mark.parametrize(
    "pruner",
    [
        {"type": "successive_halving", "min_resource": 10, "reduction_factor": 2},
        {"type": "hyperband", "min_resource": 10, "max_resource": 50, "reduction_factor": 2},
    ],
)
def test_successive_halving_and_hyperband_prune_from_the_replayed_rungs(
    pruner: dict[str, Any], data: dict[str, np.ndarray]
) -> None:
    """The rungs the pruner wrote (system_attrs) travel with each trial's curve in the document."""
    document = _document([])
    for number in range(8):  # good trials, each trained (and told) with its bookkeeping
        _, curve = _train("random_forest", {"n_estimators": 50, "max_depth": 4}, document, pruner, data)
        assert curve.pruned_at_step is None
        document.trials.append(
            _complete(number, curve.intermediate_values).model_copy(
                update={"system_attrs": curve.system_attrs}
            )
        )
    assert any("completed_rung" in k for t in document.trials for k in t.system_attrs or {})

    _, curve = _train("random_forest", {"n_estimators": 50, "max_depth": 1}, document, pruner, data)

    assert curve.pruned_at_step is not None and curve.pruned_at_step < 50


def test_families_that_train_in_one_step_are_never_pruned_and_the_record_says_so() -> None:
    median = MedianPrunerSpec(type="median")
    assert set(ITERATIVE) == {
        "hist_gradient_boosting",
        "hist_gradient_boosting_regressor",
        "random_forest",
        "random_forest_regressor",
    }
    for family in ("logistic_regression", "ridge"):
        assert not applies(median, family)
        assert "never pruned" in (note(median, family) or "")
    assert note(median, "random_forest") is None
    assert not applies(parse_pruner({"type": "none"}), "random_forest")

    spec = _median_search("logistic_regression", {"C": {"type": "float", "low": 0.01, "high": 1.0}})
    state = _search_state(spec, compute="lambda")
    candidate = _candidate(state, spec, _first_trial(spec))
    assert candidate is not None and candidate.pruning is None
    assert "never pruned" in (_pruner_note(state, spec) or "")


def test_trials_on_sagemaker_carry_no_pruning_and_the_record_says_why() -> None:
    spec = _median_search("random_forest", {"max_depth": {"type": "int", "low": 1, "high": 8}})
    trial = _first_trial(spec)
    on_lambda = _candidate(_search_state(spec, compute="lambda"), spec, trial)
    on_sagemaker = _candidate(_search_state(spec, compute="sagemaker"), spec, trial)
    assert on_lambda is not None and on_lambda.pruning is not None
    assert on_lambda.pruning.trial == trial.number and on_lambda.pruning.pruner["type"] == "median"
    assert on_sagemaker is not None and on_sagemaker.pruning is None
    assert "SageMaker" in (_pruner_note(_search_state(spec, compute="sagemaker"), spec) or "")


def _median_search(family: str, space: dict[str, Any]) -> OptunaSearchSpec:
    return OptunaSearchSpec.model_validate(
        {"family": family, "space": space, "n_trials": 2, "pruner": {"type": "median"}}
    )


def _first_trial(spec: OptunaSearchSpec) -> Trial:
    document = StudyDocument(family=spec.family, metric="roc_auc", direction="maximize", started_at="-")
    (trial,) = ask(document, spec, 1, seed=1)
    return trial


def _search_state(spec: OptunaSearchSpec, compute: str) -> SearchState:
    return SearchState.model_validate(
        {
            "run_id": "run-1",
            "model_name": "m",
            "task": "classification",
            "dataset": {
                "key": "d.csv",
                "version_id": None,
                "sha256": "0" * 64,
                "rows": 10,
                "schema_key": "s",
            },
            "features": ["a"],
            "target": "y",
            "target_metric": "roc_auc",
            "threshold": None,
            "tolerance": 0.0,
            "seed": 1,
            "holdout_fraction": 0.2,
            "validation_fraction": 0.2,
            "promote_to": None,
            "reference_profile_key": "p",
            "compute": compute,
            "search": spec.model_dump(mode="json"),
            "search_round": 0,
            "candidates": [],
        }
    )


def test_pruned_trials_are_replayed_to_the_sampler_for_the_next_round() -> None:
    spec = OptunaSearchSpec.model_validate(
        {
            "family": "random_forest",
            "space": {"max_depth": {"type": "int", "low": 1, "high": 8}},
            "n_trials": 6,
            "parallelism": 2,
            "pruner": {"type": "hyperband", "min_resource": 10, "max_resource": 100},
        }
    )
    document = StudyDocument(family=spec.family, metric="roc_auc", direction="maximize", started_at="-")
    first = ask(document, spec, 2, seed=3, study_name="run-1")
    tell(
        document,
        [
            {"candidate_id": first[0].candidate_id, "validation_metrics": {"roc_auc": 0.9}},
            {
                "candidate_id": first[1].candidate_id,
                "state": "PRUNED",
                "step": 10,
                "value": 0.5,
                "curve": {"intermediate_values": {"10": 0.5}, "steps_trained": 10},
            },
        ],
    )
    second = ask(document, spec, 2, seed=3, study_name="run-1")
    assert [t.number for t in second] == [2, 3]
    assert document.trials[1].state == "PRUNED" and document.trials[1].value == 0.5


@pytest.mark.parametrize(
    "pruner",
    [
        {"type": "percentile"},
        {"type": "median", "reduction_factor": 3},  # an option of another pruner
        {"type": "median", "n_startup_trials": -1},
        {"type": "median", "interval": 0},
        {"type": "successive_halving", "reduction_factor": 1},
        {"type": "successive_halving", "min_resource": "never"},
        {"type": "hyperband", "min_resource": 50, "max_resource": 10},
        {"type": "none", "n_warmup_steps": 3},
        "median",
    ],
)
def test_a_bad_pruner_declaration_is_refused_by_the_model(pruner: Any) -> None:
    with pytest.raises(ValidationError) as raised:
        OptunaSearchSpec.model_validate(
            {
                "family": "random_forest",
                "space": {"max_depth": {"type": "int", "low": 1, "high": 8}},
                "n_trials": 2,
                "pruner": pruner,
            }
        )
    assert all(e["loc"][0] == "pruner" for e in raised.value.errors())


def test_a_forest_on_nullable_features_trains_in_steps_inside_its_imputing_pipeline(
    data: dict[str, np.ndarray],
) -> None:
    x = data["x_train"].copy()
    x[::7, 0] = np.nan  # nullable features: the forest is Pipeline([imputer, forest])
    holes = {**data, "x_train": x}
    full = check_candidate(CandidateSpec(family="random_forest", params={"n_estimators": 30}), None, 0)
    trial = trial_in_study(_document([]), parse_pruner({"type": "median"}), "run-1", 0)

    model, curve = fit_in_steps(
        build("random_forest", full, seed=7, missing_values=True),
        "random_forest",
        full,
        fit=lambda m: m.fit(holes["x_train"], holes["y_train"]),
        score=_log_loss(holes),
        trial=trial,
        interval=10,
    )

    whole = build("random_forest", full, seed=7, missing_values=True).fit(x, data["y_train"])
    assert hasattr(model, "steps") and list(curve.intermediate_values) == ["10", "20", "30"]
    assert np.array_equal(model.predict_proba(data["x_val"]), whole.predict_proba(data["x_val"]))
