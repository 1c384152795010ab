"""The rollout API function fed its sample events (events/rollout/), against moto with a
stand-in state machine under its ARN; and the step functions fed theirs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.rollout.entities import RolloutNotRunning
from tests.integration.conftest import call
from tests.support import EVENTS, REGION, ROLLOUT_STATE_MACHINE_ARN, body, load_event

MODEL = "breast-cancer"
MACHINE = ROLLOUT_STATE_MACHINE_ARN  # tests/conftest.py sets it before any handler is imported


@pytest.fixture
def rollout_api(aws: None, registry: ModelRegistry, versions: list[int]) -> Iterator[ModuleType]:
    """v1 in production, v2-v4 registered; the API's workflow is a one-Pass-state machine."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Accepted", "States": {"Accepted": {"Type": "Wait", "Seconds": 60, "End": True}}}
    created = sfn.create_state_machine(
        name="rollout", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
    )
    assert created["stateMachineArn"] == MACHINE
    registry.set_alias(MODEL, "production", 1)
    from functions.rollout import api

    yield api
    for execution in sfn.list_executions(stateMachineArn=MACHINE, statusFilter="RUNNING")["executions"]:
        sfn.stop_execution(executionArn=execution["executionArn"])


def start(api: ModuleType, **changes: Any) -> dict[str, Any]:
    request = json.loads(load_event("rollout/start_rollout.json")["body"]) | changes
    return call(api, load_event("rollout/start_rollout.json", body=request))


def rollout_event(name: str, rollout_id: str, **changes: Any) -> dict[str, Any]:
    return load_event(f"rollout/{name}.json", path_params={"rollout_id": rollout_id}, **changes)


def test_start_answers_202_with_the_rollout_and_starts_its_execution(rollout_api: ModuleType) -> None:
    response = start(rollout_api)

    assert response["statusCode"] == 202, response["body"]
    started = body(response)
    rollout_id = started["rollout_id"]
    assert started["status_path"] == f"/models/{MODEL}/rollouts/{rollout_id}"
    rollout = started["rollout"]
    assert (rollout["status"], rollout["candidate_version"], rollout["production_version"]) == (
        "running",
        2,
        1,
    )
    assert rollout["actor"] == "arn:aws:sts::123456789012:assumed-role/MLEngineer/ml-engineer"
    assert rollout["reason"] == "v2: retrained on November data"
    execution = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=rollout["execution_arn"]
    )
    assert json.loads(execution["input"]) == {"model_name": MODEL, "rollout_id": rollout_id, "step": 0}

    shown = call(rollout_api, rollout_event("get_rollout", rollout_id))
    assert shown["statusCode"] == 200 and body(shown)["rollout_id"] == rollout_id
    listed = body(call(rollout_api, load_event("rollout/list_rollouts.json")))["rollouts"]
    assert [r["rollout_id"] for r in listed] == [rollout_id]


def test_a_rollout_while_another_runs_is_409_naming_it(rollout_api: ModuleType) -> None:
    running = body(start(rollout_api))["rollout_id"]
    refused = start(rollout_api, candidate_version=3)

    assert refused["statusCode"] == 409
    assert body(refused)["current"] == {"rollout_id": running}
    assert f"rollout {running} of model '{MODEL}' is running" in body(refused)["message"]


@pytest.mark.parametrize(
    ("changes", "status", "where"),
    [
        ({"candidate_version": 9}, 422, ["body", "candidate_version"]),
        ({"candidate_version": 1}, 422, ["body", "candidate_version"]),
        ({"steps": [50, 10]}, 422, ["body", "steps"]),
        ({"bake_seconds": 0}, 422, ["body", "bake_seconds"]),
        (
            {"guardrails": {"max_error_rate_increase": 2}},
            422,
            ["body", "guardrails", "max_error_rate_increase"],
        ),
        ({"surprise": True}, 422, ["body", "surprise"]),
    ],
)
def test_a_bad_start_is_a_4xx_naming_the_field_and_starts_nothing(
    rollout_api: ModuleType, changes: dict[str, Any], status: int, where: list[str]
) -> None:
    response = start(rollout_api, **changes)

    assert response["statusCode"] == status, response["body"]
    assert [d["loc"] for d in body(response)["detail"]] == [where]
    assert body(call(rollout_api, load_event("rollout/list_rollouts.json")))["rollouts"] == []


def test_unknown_models_and_rollouts_are_404_and_a_malformed_id_422(rollout_api: ModuleType) -> None:
    event = load_event("rollout/start_rollout.json", path_params={"name": "no-such-model"})
    assert call(rollout_api, event)["statusCode"] == 404
    missing = call(rollout_api, rollout_event("get_rollout", "rollout-20261127T120000Z-00000000"))
    assert missing["statusCode"] == 404
    assert body(missing)["message"] == f"model '{MODEL}' has no rollout 'rollout-20261127T120000Z-00000000'"
    assert call(rollout_api, rollout_event("get_rollout", "not-a-rollout"))["statusCode"] == 422


def test_abort_routes_back_to_production_and_a_second_abort_is_409(rollout_api: ModuleType) -> None:
    rollout_id = body(start(rollout_api))["rollout_id"]

    aborted = call(rollout_api, rollout_event("abort_rollout", rollout_id))

    assert aborted["statusCode"] == 200, aborted["body"]
    assert body(aborted)["status"] == "aborted"
    assert body(aborted)["outcome"]["message"] == f"rollout {rollout_id} aborted: support tickets about v2"
    execution = boto3.client("stepfunctions", region_name=REGION).describe_execution(
        executionArn=body(aborted)["execution_arn"]
    )
    assert execution["status"] == "ABORTED"
    again = call(rollout_api, rollout_event("abort_rollout", rollout_id))
    assert again["statusCode"] == 409 and body(again)["current"] == {"status": "aborted"}
    assert start(rollout_api)["statusCode"] == 202  # nothing runs any more


def test_the_step_functions_answer_their_sample_events(rollout_api: ModuleType) -> None:
    """Each step's sample event, with a real rollout's id: the shapes the workflow passes."""
    from functions.rollout import check_guardrails, promote, roll_back, start_step

    rollout_id = body(start(rollout_api, steps=[100], guardrails={"min_calls": 0}))["rollout_id"]

    def event(name: str) -> dict[str, Any]:
        sample: dict[str, Any] = json.loads((EVENTS / "rollout" / f"{name}.json").read_text())
        return sample | {"rollout_id": rollout_id, "step": 0}

    stepped = call(start_step, event("start_step"))
    assert stepped == {
        "model_name": MODEL,
        "rollout_id": rollout_id,
        "step": 0,
        "holds": 0,
        "wait_seconds": 600,
    }
    checked = call(check_guardrails, event("check_guardrails"))
    assert checked["verdict"] == "promote"
    failed = call(roll_back, event("roll_back"))  # as the Catch of a failed Promote would call it
    assert failed["status"] == "failed" and failed["error"] == "RolloutFailed"
    assert "changed concurrently" in failed["cause"]
    with pytest.raises(RolloutNotRunning, match="is failed"):  # the workflow's Catch would end it
        call(promote, event("promote"))
