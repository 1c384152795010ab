"""The rollout workflow in the template: its states, the Wait, every failure caught into
RollBack, and roles that allow exactly what each step does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp
from test_infra_functions import _arn, _baseline_grants, _grants

from infra.cdk.constructs.functions import ServiceFunction

pytestmark = pytest.mark.infra

ITEM_READ_WRITE = (
    "dynamodb:ConditionCheckItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)


def _definition(synthesized: SynthesizedApp) -> dict[str, Any]:
    """The state machine's definition, with the tokens CloudFormation resolves left as markers."""
    machine = synthesized.resources[synthesized.logical_id(synthesized.stack.rollout.state_machine)]
    parts = machine["Properties"]["DefinitionString"]["Fn::Join"][1]
    text = "".join(part if isinstance(part, str) else json.dumps(json.dumps(part))[1:-1] for part in parts)
    definition: dict[str, Any] = json.loads(text)
    return definition


def test_the_workflow_steps_bakes_checks_and_ends_in_promote_or_rollback(synthesized: SynthesizedApp) -> None:
    definition = _definition(synthesized)
    states = definition["States"]

    assert definition["StartAt"] == "StartStep"
    assert {name: state["Type"] for name, state in states.items()} == {
        "StartStep": "Task",
        "Bake": "Wait",
        "CheckGuardrails": "Task",
        "Verdict": "Choice",
        "Promote": "Task",
        "Promoted": "Succeed",
        "RollBack": "Task",
        "RolloutRolledBack": "Fail",
    }
    assert states["StartStep"]["Next"] == "Bake"
    assert states["Bake"] == {
        "Type": "Wait",
        "Comment": "Serve the step for its bake time.",
        "SecondsPath": "$.wait_seconds",
        "Next": "CheckGuardrails",
    }
    assert states["CheckGuardrails"]["Next"] == "Verdict"
    choices = {c["StringEquals"]: c["Next"] for c in states["Verdict"]["Choices"]}
    assert all(c["Variable"] == "$.verdict" for c in states["Verdict"]["Choices"])
    assert choices == {"rollback": "RollBack", "hold": "Bake", "next": "StartStep", "promote": "Promote"}
    assert states["Verdict"]["Default"] == "RollBack"  # an unknown verdict is never a promotion
    assert states["Promote"]["Next"] == "Promoted"
    assert states["RollBack"]["Next"] == "RolloutRolledBack"
    assert (states["RolloutRolledBack"]["ErrorPath"], states["RolloutRolledBack"]["CausePath"]) == (
        "$.error",
        "$.cause",
    )


def test_every_step_failure_is_caught_into_rollback_and_rollback_retries_everything(
    synthesized: SynthesizedApp,
) -> None:
    states = _definition(synthesized)["States"]

    for name in ("StartStep", "CheckGuardrails", "Promote"):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RollBack"}
        ]
        retried = {error for retry in states[name]["Retry"] for error in retry["ErrorEquals"]}
        assert {"Unavailable", "Lambda.ServiceException"} <= retried and "States.ALL" not in retried
    assert "Catch" not in states["RollBack"]
    last = states["RollBack"]["Retry"][-1]
    assert last["ErrorEquals"] == ["States.ALL"] and last["MaxAttempts"] == 6


def test_the_workflow_is_a_standard_traced_logged_machine_without_a_timeout(
    synthesized: SynthesizedApp,
) -> None:
    machine = synthesized.resources[synthesized.logical_id(synthesized.stack.rollout.state_machine)][
        "Properties"
    ]
    assert machine["StateMachineType"] == "STANDARD"
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert "TimeoutSeconds" not in _definition(synthesized)  # a timed-out execution would skip RollBack


def test_the_machine_may_invoke_its_four_steps_and_nothing_else(synthesized: SynthesizedApp) -> None:
    rollout = synthesized.stack.rollout
    statements = synthesized.role_policy_statements(rollout.state_machine.role)
    invoked = {
        json.dumps(resource, sort_keys=True)
        for statement in statements
        if statement["Action"] == "lambda:InvokeFunction"
        for resource in statement["Resource"]
    }
    expected = set()
    for step in rollout.functions:
        function_id = synthesized.logical_id(step.function)
        expected.add(_arn(function_id))
        expected.add(
            json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [function_id, "Arn"]}, ":*"]]}, sort_keys=True)
        )
    assert invoked == expected


def _grants_of(synthesized: SynthesizedApp, function: ServiceFunction) -> set[tuple[tuple[str, ...], str]]:
    return _grants(synthesized.role_policy_statements(function.role)) - _baseline_grants(
        synthesized, function
    )


def test_each_step_reads_and_writes_the_metadata_table_only_and_publishes_only_if_it_changes_routing(
    synthesized: SynthesizedApp,
) -> None:
    rollout = synthesized.stack.rollout
    table = _arn(synthesized.logical_id(synthesized.stack.storage.metadata_table))
    bus = _arn(synthesized.logical_id(synthesized.stack.events.bus))
    metadata = {(ITEM_READ_WRITE, table)}
    publish = {(("events:PutEvents",), bus)}

    assert _grants_of(synthesized, rollout.check_guardrails) == metadata
    for step in (rollout.start_step, rollout.promote, rollout.roll_back):
        assert _grants_of(synthesized, step) == metadata | publish, step.node.id


def test_the_rollout_api_may_start_and_stop_this_machine_s_executions_only(
    synthesized: SynthesizedApp,
) -> None:
    rollout = synthesized.stack.rollout
    machine_id = synthesized.logical_id(rollout.state_machine)
    grants = _grants_of(synthesized, rollout.api)

    table = _arn(synthesized.logical_id(synthesized.stack.storage.metadata_table))
    bus = _arn(synthesized.logical_id(synthesized.stack.events.bus))
    assert (ITEM_READ_WRITE, table) in grants and (("events:PutEvents",), bus) in grants
    assert (("states:StartExecution",), json.dumps({"Ref": machine_id})) in grants
    (stop,) = [resource for actions, resource in grants if actions == ("states:StopExecution",)]
    assert ":execution:" in stop and machine_id in stop
    assert len(grants) == 4
    variables = synthesized.resources[synthesized.logical_id(rollout.api.function)]["Properties"][
        "Environment"
    ]["Variables"]
    assert variables["ROLLOUT_STATE_MACHINE_ARN"] == {"Ref": machine_id}
    assert "MLOPS_ROLLOUT_MAX_WAIT_SECONDS" not in variables  # local only, never deployed


def test_rollout_functions_run_the_core_layer_from_their_folder(synthesized: SynthesizedApp) -> None:
    rollout = synthesized.stack.rollout
    core = {"Ref": synthesized.logical_id(synthesized.stack.layers.core)}
    for function in (*rollout.functions, rollout.api):
        properties = synthesized.resources[synthesized.logical_id(function.function)]["Properties"]
        assert properties["Layers"] == [core]
        assert {"Key": "mlops:source", "Value": "functions/rollout"} in properties["Tags"]
        assert "MLOPS_ROLLOUT_MAX_WAIT_SECONDS" not in properties["Environment"]["Variables"]


def test_how_each_rollout_ended_reaches_the_notifications_queue(synthesized: SynthesizedApp) -> None:
    from mlops_core.routing.rollout.events import ROLLOUT_EVENTS

    rule = synthesized.resources[synthesized.logical_id(synthesized.stack.events.model_lifecycle_rule)]
    routed = set(rule["Properties"]["EventPattern"]["detail-type"])
    assert {"RolloutCompleted", "RolloutRolledBack"} <= routed
    assert routed - {"ModelVersionRegistered", "ModelPromoted", "ModelRolledBack"} <= {
        event.detail_type() for event in ROLLOUT_EVENTS
    }
