"""Optuna's search through the training steps against moto: ValidateData, SearchRound and
TrainCandidate in the order the state machine runs them (the state machine itself runs it
in tests/infra/test_search_workflow.py), on binary, multiclass and regression datasets."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_core.registry.service import ModelRegistry
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.requests import InvalidTrainingRequest
from mlops_core.training.search_steps import search_round
from mlops_core.training.steps import evaluate, register_model, train_candidate, validate_data
from mlops_core.training.tracking import RunTracker
from tests.integration.sklearn_datasets import Dataset, sklearn_dataset
from tests.support import BUCKET, TABLE, upload

SPACES: dict[str, dict[str, Any]] = {
    "classification": {
        "family": "logistic_regression",
        "space": {"C": {"type": "float", "low": 0.001, "high": 10.0, "log": True}},
    },
    "regression": {
        "family": "ridge",
        "space": {"alpha": {"type": "float", "low": 0.01, "high": 100.0, "log": True}},
    },
}


def _store() -> ArtifactStore:
    return ArtifactStore(BUCKET)


def _tracker() -> RunTracker:
    return RunTracker(MetadataTable(TABLE))


def _search(dataset: Dataset, run_id: str, **search: Any) -> tuple[dict[str, Any], list[str]]:
    """Run the workflow's search loop as the state machine does; the final state and the
    states entered."""
    for key, data in dataset.files().items():
        upload(key, data)
    store, tracker = _store(), _tracker()
    spec = SPACES[dataset.task] | {"rounds": 2, "parallelism": 3} | search
    request = {"run_id": run_id, "model_name": dataset.name, "dataset_key": dataset.data_key, "search": spec}
    state = validate_data(request, store, tracker)
    entered = ["ValidateData"]
    assert "search" in state and state["candidates"] == []
    while True:
        state = search_round(state, store, tracker)
        entered.append("SearchRound")
        if "best" in state:
            return state, entered
        state["results"] = [train_candidate(c, store, tracker) for c in state["candidates"]]
        entered.append(f"TrainTrials x{len(state['results'])}")


@pytest.mark.parametrize("loader", ["iris", "wine", "diabetes"])
def test_two_rounds_of_three_trials_record_six_trials_and_register_the_best(aws: None, loader: str) -> None:
    dataset = sklearn_dataset(loader)  # type: ignore[arg-type]

    selected, entered = _search(dataset, "search-1")

    assert entered == [
        "ValidateData",
        "SearchRound",
        "TrainTrials x3",
        "SearchRound",
        "TrainTrials x3",
        "SearchRound",
    ]
    run = _tracker().get_with_candidates("search-1")
    search = run["search"]
    assert [t["number"] for t in search["trials"]] == [0, 1, 2, 3, 4, 5]
    assert [t["round"] for t in search["trials"]] == [1, 1, 1, 2, 2, 2]
    assert {t["state"] for t in search["trials"]} == {"COMPLETE"}
    metric = "roc_auc" if dataset.task == "classification" else "rmse"
    assert search["metric"] == metric
    values = {t["candidate_id"]: t["value"] for t in search["trials"]}
    pick = max if dataset.task == "classification" else min
    assert search["best"]["value"] == pick(values.values())
    assert selected["best"]["candidate_id"] == search["best"]["candidate_id"] == run["best_candidate"]
    # Each trial is a trained candidate with its own artifact; its value is its validation metric.
    trained = {c["candidate_id"]: c for c in run["candidates"]}
    assert set(trained) == set(values)
    for candidate_id, value in values.items():
        assert trained[candidate_id]["validation_metrics"][metric] == pytest.approx(value)
    name = next(iter(SPACES[dataset.task]["space"]))
    assert trained[search["best"]["candidate_id"]]["params"][name] == pytest.approx(
        search["best"]["params"][name]
    )
    # The best goes through the same gate and registration as a fixed candidate.
    registry = ModelRegistry(MetadataTable(TABLE), _store())
    evaluated = evaluate(selected, _store(), registry, _tracker())
    assert evaluated["evaluation"]["passed"], evaluated["evaluation"]
    registered = register_model(evaluated, registry, _tracker())
    assert registered["version"] == 1
    assert registry.get_version(dataset.name, 1).run_id == "search-1"


def test_the_study_persists_between_rounds_and_a_retried_round_asks_nothing_new(aws: None) -> None:
    dataset = sklearn_dataset("iris")
    for key, data in dataset.files().items():
        upload(key, data)
    store, tracker = _store(), _tracker()
    spec = SPACES["classification"] | {"n_trials": 6, "parallelism": 3}
    first = validate_data(
        {"run_id": "r", "model_name": "iris", "dataset_key": dataset.data_key, "search": spec}, store, tracker
    )
    asked = search_round(first, store, tracker)
    again = search_round(first, store, tracker)  # a retried SearchRound: the same trials
    assert again == asked
    study = json.loads(store.get(keys.search_study("r")).data)
    assert [t["state"] for t in study["trials"]] == ["RUNNING"] * 3
    results = [train_candidate(c, store, tracker) for c in asked["candidates"]]
    second = search_round(asked | {"results": results}, store, tracker)
    # Told twice (a retry after the Map): still three told trials, three new ones asked.
    assert search_round(asked | {"results": results}, store, tracker) == second
    study = json.loads(store.get(keys.search_study("r")).data)
    assert [t["state"] for t in study["trials"]] == ["COMPLETE"] * 3 + ["RUNNING"] * 3
    assert [c["candidate_id"] for c in second["candidates"]] == ["t003", "t004", "t005"]
    told = {t["candidate_id"]: t["value"] for t in study["trials"][:3]}
    assert told == {r["candidate_id"]: r["validation_metrics"]["roc_auc"] for r in results}


def test_a_failed_trial_is_told_as_failed_and_the_search_goes_on(aws: None) -> None:
    dataset = sklearn_dataset("wine")
    for key, data in dataset.files().items():
        upload(key, data)
    store, tracker = _store(), _tracker()
    spec = SPACES["classification"] | {"n_trials": 2, "parallelism": 2}
    state = validate_data(
        {"run_id": "f", "model_name": "wine", "dataset_key": dataset.data_key, "search": spec}, store, tracker
    )
    state = search_round(state, store, tracker)
    good, bad = state["candidates"]
    failure = bad | {"error": {"Error": "Sandbox.Timedout", "Cause": "Task timed out after 900 seconds"}}
    selected = search_round(
        state | {"results": [train_candidate(good, store, tracker), failure]}, store, tracker
    )

    assert selected["best"]["candidate_id"] == good["candidate_id"]
    trials = _tracker().get("f")["search"]["trials"]
    assert [t["state"] for t in trials] == ["COMPLETE", "FAIL"]
    assert trials[1]["error"].startswith("Sandbox.Timedout")


def test_a_search_where_no_trial_completes_fails_the_run_naming_why(aws: None) -> None:
    dataset = sklearn_dataset("iris")
    for key, data in dataset.files().items():
        upload(key, data)
    store, tracker = _store(), _tracker()
    spec = SPACES["classification"] | {"n_trials": 1, "parallelism": 1}
    state = search_round(
        validate_data(
            {"run_id": "n", "model_name": "iris", "dataset_key": dataset.data_key, "search": spec},
            store,
            tracker,
        ),
        store,
        tracker,
    )
    failed = state["candidates"][0] | {"error": {"Error": "MemoryError", "Cause": "out of memory"}}

    with pytest.raises(InvalidTrainingRequest, match="none of 1 trials completed"):
        search_round(state | {"results": [failed]}, store, tracker)
