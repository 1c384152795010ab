"""Optuna's search run by moto's Step Functions interpreter on the synthesized template's
state machine (the real handlers invoked in-process), and the loop's shape in the template."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from synthesized_app import SynthesizedApp

from infra.local import lambda_runtime
from infra.local.sample_data import breast_cancer
from infra.local.stack import DeployedResources, deploy_template
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.tracking import RunTracker
from tests.infra.test_training_workflow import _execute, _with_test_names
from tests.support import BUCKET, PRUNED_FOREST_SEARCH, TABLE, upload

pytestmark = pytest.mark.infra

SEARCH = {
    "family": "logistic_regression",
    "space": {
        "C": {"type": "float", "low": 0.001, "high": 10.0, "log": True},
        "class_weight": {"type": "categorical", "choices": [None, "balanced"]},
    },
    "rounds": 2,
    "parallelism": 3,
}


@pytest.fixture
def stack(synthesized: SynthesizedApp, moto_session: Any) -> Iterator[DeployedResources]:
    moto_session.reset()
    lambda_runtime.install()
    deployed = deploy_template(_with_test_names(synthesized.template_json))
    for key, data in breast_cancer().files.items():
        upload(key, data)
    yield deployed


def test_a_search_of_two_rounds_of_three_trials_runs_on_the_interpreter_and_registers_the_best(
    stack: DeployedResources,
) -> None:
    result = _execute(stack, "search-ok", candidates=None, search=SEARCH)

    assert result["status"] == "SUCCEEDED", result
    states = result["states"]
    assert states[:4] == ["TrainingData", "ValidateData", "Search", "SearchRound"]
    assert states.count("SearchRound") == 3
    assert states.count("TrainTrials") == 2
    assert states.count("TrainTrial") == 6
    assert "TrainCandidates" not in states
    assert states[-3:] == ["Gate", "RegisterModel", "Registered"]
    run = RunTracker(MetadataTable(TABLE)).get_with_candidates("search-ok")
    trials = run["search"]["trials"]
    assert len(trials) == 6
    assert all(t["state"] == "COMPLETE" and set(t["params"]) == {"C", "class_weight"} for t in trials)
    best = run["search"]["best"]
    assert best["value"] == max(t["value"] for t in trials)
    version = ModelRegistry(MetadataTable(TABLE), ArtifactStore(BUCKET)).get_version("breast-cancer", 1)
    assert version.tags["candidate"] == best["candidate_id"] == run["best_candidate"]
    assert json.loads(result["output"])["version"] == 1


def test_a_search_with_a_median_pruner_runs_to_completion_and_the_record_lists_pruned_trials(
    stack: DeployedResources,
) -> None:
    search = PRUNED_FOREST_SEARCH

    result = _execute(stack, "search-pruned", candidates=None, search=search)

    assert result["status"] == "SUCCEEDED", result
    assert result["states"].count("TrainTrial") == 9
    run = RunTracker(MetadataTable(TABLE)).get_with_candidates("search-pruned")
    assert run["request"]["search"]["pruner"]["type"] == "median"
    assert run["search"]["pruner"] == search["pruner"] | {
        "n_warmup_steps": 0,
        "interval_steps": 1,
        "n_min_trials": 1,
    }
    trials = run["search"]["trials"]
    pruned = [t for t in trials if t["state"] == "PRUNED"]
    assert pruned, trials
    assert run["search"]["pruned"] == len(pruned)
    assert all(t["round"] > 1 for t in pruned)  # the first round has no curves to compare with
    assert all(
        t["pruned_at_step"] in (10, 20, 30) and t["steps_trained"] == t["pruned_at_step"] for t in pruned
    )
    assert all(t["state"] == "COMPLETE" and t["steps_trained"] == 40 for t in trials if t not in pruned)
    recorded = {c["candidate_id"]: c for c in run["candidates"]}
    for trial in pruned:
        item = recorded[trial["candidate_id"]]
        assert item["state"] == "PRUNED" and item["step"] == trial["pruned_at_step"]
        assert "artifact_key" not in item
    assert run["best_candidate"] not in {t["candidate_id"] for t in pruned}
    assert json.loads(result["output"])["version"] == 1


def test_a_search_that_is_refused_at_validation_fails_before_any_trial(stack: DeployedResources) -> None:
    bad = SEARCH | {"space": {"C": {"type": "float", "low": -1.0, "high": 1.0}}}

    result = _execute(stack, "search-bad", candidates=None, search=bad)

    assert result["status"] == "FAILED"
    assert result["error"] == "InvalidTrainingRequest"
    assert "SearchRound" not in result["states"]


def test_the_template_loops_search_rounds_through_a_map_of_the_same_trainer(
    synthesized: SynthesizedApp,
) -> None:
    machine = next(iter(synthesized.template.find_resources("AWS::StepFunctions::StateMachine").values()))
    definition = json.loads(
        "".join(
            p if isinstance(p, str) else "ARN"
            for p in machine["Properties"]["DefinitionString"]["Fn::Join"][1]
        )
    )
    states = definition["States"]
    assert states["ValidateData"]["Next"] == "Search"
    assert states["Search"]["Choices"][0] == {
        "Variable": "$.search",
        "IsPresent": True,
        "Next": "SearchRound",
    }
    assert states["Search"]["Default"] == "TrainCandidates"
    assert states["SearchRound"]["Next"] == "Searched"
    assert states["Searched"]["Choices"][0] == {"Variable": "$.best", "IsPresent": True, "Next": "Evaluate"}
    assert states["Searched"]["Default"] == "TrainTrials"
    assert states["TrainTrials"]["Next"] == "SearchRound"
    trial = states["TrainTrials"]["ItemProcessor"]["States"]["TrainTrial"]
    candidate = states["TrainCandidates"]["ItemProcessor"]["States"]["TrainCandidate"]
    assert (
        trial["Arguments" if "Arguments" in trial else "Parameters"]["FunctionName"]
        == candidate["Arguments" if "Arguments" in candidate else "Parameters"]["FunctionName"]
    )
    assert trial["Catch"][0]["Next"] == "TrialFailed"


def test_the_trainer_may_get_search_studies_but_read_no_other_run_object(synthesized: SynthesizedApp) -> None:
    """A pruned trial reads its study: s3:GetObject on runs/*/search/*, nothing more of runs/."""
    role = synthesized.stack.training.train_candidate.role
    grants: dict[str, set[str]] = {}
    for statement in synthesized.role_policy_statements(role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for resource in resources:
            joined = resource.get("Fn::Join") if isinstance(resource, dict) else None
            key = joined[1][-1] if joined else json.dumps(resource)
            for action in actions:
                if action.startswith("s3:"):
                    grants.setdefault(action, set()).add(str(key))
    assert grants["s3:GetObject"] == {"/datasets/*", "/runs/*/search/*"}
    assert all(
        "/runs/" not in key
        for action, keys in grants.items()
        if action != "s3:GetObject" and action.startswith("s3:Get")
        for key in keys
    )
    assert "s3:ListBucket" not in grants and not any(a.startswith("s3:Delete") for a in grants)
