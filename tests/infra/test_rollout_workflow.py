"""The rollout state machine from the synthesized template, run by moto's Step Functions
interpreter with the real step handlers invoked in-process, traffic counted into the
variants' totals by a thread as the capture function would count it (1-second bakes)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from synthesized_app import SynthesizedApp
from test_training_workflow import _with_test_names

from infra.local import lambda_runtime
from infra.local.stack import deploy_template
from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.repository import RoutingRepository
from mlops_core.routing.rollout.entities import RolloutRequest
from mlops_core.routing.rollout.service import RolloutService
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import RolloutWorkflow
from tests.support import BUCKET, TABLE, trained_model, upload

pytestmark = pytest.mark.infra
MODEL = "breast-cancer"


class Traffic:
    """Calls of production and the candidate, counted every 20 ms while the workflow runs."""

    def __init__(self, candidate: int, *, candidate_errors: bool) -> None:
        self.table = MetadataTable(TABLE)
        self.routing = RoutingRepository(self.table)
        self.candidate = candidate
        self.errors = candidate_errors
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.table.transact(
                [
                    self.routing.add_to_variant_op(MODEL, 1, {"calls": 9, "latency_le_5": 9}),
                    self.routing.add_to_variant_op(
                        MODEL, self.candidate, {"calls": 1, "errors": int(self.errors), "latency_le_5": 1}
                    ),
                ]
            )
            self.stop.wait(0.02)

    def __enter__(self) -> Traffic:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


@pytest.fixture
def rollouts(synthesized: SynthesizedApp, moto_session: Any) -> Iterator[RolloutService]:
    moto_session.reset()
    lambda_runtime.install()
    template = _with_test_names(synthesized.template_json)
    deployed = deploy_template(template)
    wanted = deployed.physical_ids[template["Outputs"]["RolloutStateMachineArn"]["Value"]["Ref"]]
    machines = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
    arn = next(m["stateMachineArn"] for m in machines if wanted in (m["name"], m["stateMachineArn"]))
    table = MetadataTable(TABLE)
    registry = ModelRegistry(table, ArtifactStore(BUCKET))
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/lr.onnx", data)
    for run in ("run-1", "run-2", "run-3"):
        registry.register_version(
            MODEL, RegisterVersionRequest(artifact_key="uploads/lr.onnx", signature=signature, run_id=run)
        )
    registry.set_alias(MODEL, "production", 1)
    yield RolloutService(table, registry=registry, workflow=RolloutWorkflow(arn))


def _start(rollouts: RolloutService, **changes: Any) -> str:
    request = {"candidate_version": 2, "bake_seconds": 1, "guardrails": {"min_calls": 5}} | changes
    return rollouts.start(MODEL, RolloutRequest.model_validate(request), actor="alice").rollout_id


def _finish(rollouts: RolloutService, rollout_id: str, timeout: float = 60) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions")
    arn = rollouts.get(MODEL, rollout_id).execution_arn
    deadline = time.monotonic() + timeout
    while (result := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"execution did not finish in {timeout:.0f} s"
        time.sleep(0.1)
    result["states"] = _states(arn)
    return dict(result)


def _states(arn: str) -> list[str]:
    events = boto3.client("stepfunctions").get_execution_history(executionArn=arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def _wait_for_state(rollouts: RolloutService, rollout_id: str, state: str) -> None:
    arn = rollouts.get(MODEL, rollout_id).execution_arn
    assert arn is not None
    deadline = time.monotonic() + 20
    while state not in _states(arn):
        assert time.monotonic() < deadline, f"{state} not entered in 20 s"
        time.sleep(0.05)


def _policy(rollouts: RolloutService) -> dict[str, Any]:
    stored = rollouts.routing.repository.routing(MODEL, consistent=True)
    assert stored is not None
    return stored.policy.model_dump(mode="json", exclude_none=True)


def test_a_candidate_that_errors_is_rolled_back_by_the_workflow_at_its_first_step(
    rollouts: RolloutService,
) -> None:
    with Traffic(2, candidate_errors=True):
        rollout_id = _start(rollouts)
        result = _finish(rollouts, rollout_id)

    assert result["status"] == "FAILED" and result["error"] == "RolloutRolledBack", result
    assert result["states"] == [
        "StartStep",
        "Bake",
        "CheckGuardrails",
        "Verdict",
        "RollBack",
        "RolloutRolledBack",
    ]
    assert "error rate 100.00%" in result["cause"]
    rollout = rollouts.get(MODEL, rollout_id)
    assert rollout.status == "rolled_back" and len(rollout.progress) == 1
    assert _policy(rollouts) == {"type": "single", "alias": "production"}
    assert rollouts.registry.get_alias(MODEL, "production").version == 1


def test_a_good_candidate_is_promoted_by_the_workflow_after_every_step(rollouts: RolloutService) -> None:
    started = time.perf_counter()
    with Traffic(2, candidate_errors=False):
        rollout_id = _start(rollouts)
        result = _finish(rollouts, rollout_id)
    elapsed = time.perf_counter() - started

    assert result["status"] == "SUCCEEDED", result
    assert result["states"].count("StartStep") == 3 and result["states"][-2:] == ["Promote", "Promoted"]
    rollout = rollouts.get(MODEL, rollout_id)
    assert rollout.status == "succeeded" and [s.percent for s in rollout.progress] == [10, 50, 100]
    assert all(s.checks[-1].candidate.calls >= 5 for s in rollout.progress)
    assert rollouts.registry.get_alias(MODEL, "production").version == 2
    assert _policy(rollouts) == {"type": "single", "alias": "production"}
    print(f"\nthree 1-second steps on moto's interpreter, start to promotion: {elapsed:.1f} s")


def test_a_step_that_fails_is_caught_into_rollback(rollouts: RolloutService) -> None:
    """Production is moved (and moved back) by someone else while the rollout bakes: Promote's
    move, conditioned on the alias the start found, fails (Conflict); the Catch leads to
    RollBack, and all traffic ends on production."""
    with Traffic(2, candidate_errors=False):
        rollout_id = _start(rollouts, steps=[100], bake_seconds=2)
        _wait_for_state(rollouts, rollout_id, "Bake")
        rollouts.registry.set_alias(MODEL, "production", 3, reason="someone else")
        rollouts.registry.set_alias(MODEL, "production", 1, reason="someone else, back")
        result = _finish(rollouts, rollout_id)

    assert result["status"] == "FAILED" and result["error"] == "RolloutFailed", result
    assert result["states"][-3:] == ["Promote", "RollBack", "RolloutRolledBack"]
    rollout = rollouts.get(MODEL, rollout_id)
    assert rollout.status == "failed" and rollout.outcome is not None
    assert rollout.outcome.error is not None and rollout.outcome.error["Error"] == "Conflict"
    assert "alias 'production' of model 'breast-cancer'" in rollout.outcome.message
    assert rollouts.registry.get_alias(MODEL, "production").revision == 3  # not moved by the rollout
    assert _policy(rollouts) == {"type": "single", "alias": "production"}


def test_abort_stops_the_execution_during_its_bake(rollouts: RolloutService) -> None:
    rollout_id = _start(rollouts, bake_seconds=600)
    _wait_for_state(rollouts, rollout_id, "Bake")
    assert _policy(rollouts)["type"] == "split"

    aborted = rollouts.abort(MODEL, rollout_id, actor="bob", reason="paged")
    result = _finish(rollouts, rollout_id, timeout=20)

    assert result["status"] == "ABORTED"
    assert aborted.status == "aborted" and _policy(rollouts) == {"type": "single", "alias": "production"}
    assert json.loads(result["input"]) == {"model_name": MODEL, "rollout_id": rollout_id, "step": 0}
