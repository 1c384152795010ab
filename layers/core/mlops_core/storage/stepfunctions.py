"""Starting and reading training executions, starting and stopping rollout executions,
starting batch scoring and partitioned materialization executions (Step Functions)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from mlops_core.errors import Conflict, NotFound
from mlops_core.storage.clients import client, error_code, translate_errors


class TrainingWorkflow:
    what = "training workflow"

    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    def execution_arn(self, run_id: str) -> str:
        # arn:aws:states:region:account:stateMachine:Name -> ...:execution:Name:run_id
        prefix, name = self.state_machine_arn.rsplit(":stateMachine:", 1)
        return f"{prefix}:execution:{name}:{run_id}"

    def start(self, run_id: str, execution_input: dict[str, Any]) -> str:
        """Start the execution named ``run_id``; a second start of that name is a Conflict."""
        with translate_errors(self.what):
            try:
                response = client("stepfunctions").start_execution(
                    stateMachineArn=self.state_machine_arn, name=run_id, input=json.dumps(execution_input)
                )
            except ClientError as error:
                if error_code(error) == "ExecutionAlreadyExists":
                    raise Conflict(f"a training run named '{run_id}' already exists") from error
                raise
        return str(response["executionArn"])

    def describe(self, run_id: str) -> dict[str, Any]:
        with translate_errors(self.what):
            try:
                response = client("stepfunctions").describe_execution(executionArn=self.execution_arn(run_id))
            except ClientError as error:
                if error_code(error) == "ExecutionDoesNotExist":
                    raise NotFound(f"run '{run_id}' not found") from error
                raise
        return {
            "execution_arn": response["executionArn"],
            "status": response["status"],
            "current_step": self._current_step(response["executionArn"])
            if response["status"] == "RUNNING"
            else None,
            "started_at": response["startDate"].isoformat(),
            "stopped_at": response["stopDate"].isoformat() if response.get("stopDate") else None,
            "error": response.get("error"),
        }

    def _current_step(self, execution_arn: str) -> str | None:
        """The state most recently entered (the Map's iterations report as TrainCandidate)."""
        with translate_errors(self.what):
            history = client("stepfunctions").get_execution_history(
                executionArn=execution_arn, reverseOrder=True, maxResults=50
            )
        for event in history.get("events", []):
            details = event.get("stateEnteredEventDetails")
            if details:
                return str(details["name"])
        return None


class RolloutWorkflow:
    """Starting and stopping rollout executions, each named after its rollout id."""

    what = "rollout workflow"

    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    def execution_arn(self, rollout_id: str) -> str:
        prefix, name = self.state_machine_arn.rsplit(":stateMachine:", 1)
        return f"{prefix}:execution:{name}:{rollout_id}"

    def start(self, rollout_id: str, execution_input: dict[str, Any]) -> str:
        with translate_errors(self.what):
            try:
                response = client("stepfunctions").start_execution(
                    stateMachineArn=self.state_machine_arn, name=rollout_id, input=json.dumps(execution_input)
                )
            except ClientError as error:
                if error_code(error) == "ExecutionAlreadyExists":
                    raise Conflict(f"a rollout named '{rollout_id}' was started already") from error
                raise
        return str(response["executionArn"])

    def stop(self, rollout_id: str, *, cause: str) -> None:
        """Stop the execution (a Wait ends at once; a step already running finishes)."""
        with translate_errors(self.what):
            try:
                client("stepfunctions").stop_execution(
                    executionArn=self.execution_arn(rollout_id), error="RolloutAborted", cause=cause[:1000]
                )
            except ClientError as error:
                if error_code(error) == "ExecutionDoesNotExist":
                    raise NotFound(f"rollout '{rollout_id}' has no execution") from error
                raise


class NamedWorkflow:
    """Starting executions of one state machine, each named after the id of what it runs (a
    second start of a name is a ``Conflict``: starting is idempotent)."""

    what = "workflow"
    #: How a message names one execution: "a {noun} named 'x' was started already".
    noun = "run"

    def __init__(self, state_machine_arn: str) -> None:
        self.state_machine_arn = state_machine_arn

    def start(self, name: str, execution_input: dict[str, Any]) -> str:
        with translate_errors(self.what):
            try:
                response = client("stepfunctions").start_execution(
                    stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(execution_input)
                )
            except ClientError as error:
                if error_code(error) == "ExecutionAlreadyExists":
                    raise Conflict(f"a {self.noun} named '{name}' was started already") from error
                raise
        return str(response["executionArn"])


class BatchWorkflow(NamedWorkflow):
    """Starting batch scoring executions, each named after its job id."""

    what = "batch scoring workflow"
    noun = "batch job"


class MaterializationWorkflow(NamedWorkflow):
    """Starting partitioned feature materializations, each named after its run id."""

    what = "feature materialization workflow"
    noun = "materialization"
