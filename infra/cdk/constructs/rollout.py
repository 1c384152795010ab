"""The guarded rollout: one Lambda per step, the Step Functions workflow, and the API
function that starts, reads and aborts rollouts.

    StartStep → Bake (Wait, SecondsPath $.wait_seconds) → CheckGuardrails → Verdict:
        next     → StartStep (the next step)
        hold     → Bake (the same step once more)
        promote  → Promote → Promoted
        rollback → RollBack → RolloutRolledBack (Fail; error RolloutRolledBack, or
                   RolloutFailed / RolloutAborted, from RollBack's answer)
    any task failing (after its retries) → RollBack

A failure must never leave traffic on the candidate: every task but RollBack is caught
into RollBack, and RollBack retries every error with back-off. The alias moves only in
Promote (which RollBack undoes if it moved it). No execution timeout: a rollout's longest
possible run (10 steps x 24 h x 6 bakes) is bounded by the request's validation, and an
execution that timed out would skip RollBack.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from aws_cdk import (
    Acknowledgment,
    CfnResource,
    Duration,
    Stack,
    Validations,
    aws_events,
    aws_logs,
)
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction, acknowledge_step_invocations
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import StorageConstruct

#: Errors worth another attempt: our adapters raise Unavailable on throttling and timeouts.
TRANSIENT_ERRORS = ["Unavailable"]
#: RollBack retries everything, for longer: it is what puts the traffic back.
ROLLBACK_ATTEMPTS = 6


class RolloutConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        event_bus: aws_events.IEventBus,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.environment = {
            "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
            "METADATA_TABLE": storage.metadata_table.table_name,
            "EVENT_BUS_NAME": event_bus.event_bus_name,
        }
        self.functions_dir = functions_dir
        self.layers = layers
        self.log_retention = log_retention

        self.start_step = self._function(
            "StartStep", "start_step", "Routes a rollout step's share of the traffic to the candidate."
        )
        self.check_guardrails = self._function(
            "CheckGuardrails", "check_guardrails", "Judges a rollout step against its guardrails."
        )
        self.promote = self._function("Promote", "promote", "Promotes a rollout's candidate to production.")
        self.roll_back = self._function(
            "RollBack", "roll_back", "Routes all traffic back to production when a rollout fails."
        )
        # Each reads the registry and writes routing and rollout records; none reads the index.
        for function in self.functions:
            storage.grant_metadata_read_write(function.role, index=False)
        for function in (self.start_step, self.promote, self.roll_back):
            event_bus.grant_put_events_to(function.role)  # routing changes, promotions, rollout events

        self.state_machine = self._state_machine()

        self.api = self._function(
            "Api",
            "api",
            "Starts (POST /models/{name}/rollouts), reads and aborts guarded rollouts.",
            environment={"ROLLOUT_STATE_MACHINE_ARN": self.state_machine.state_machine_arn},
            timeout=Duration.seconds(29),
        )
        storage.grant_metadata_read_write(self.api.role, index=False)
        event_bus.grant_put_events_to(self.api.role)
        self.state_machine.grant_start_execution(self.api.role)
        self.state_machine.grant_execution(self.api.role, "states:StopExecution")
        machine_id = Stack.of(self).get_logical_id(cast(CfnResource, self.state_machine.node.default_child))
        machine_name = json.dumps(
            {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": machine_id}]}]}, separators=(",", ":")
        )
        Validations.of(self.api.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:"
                f"execution:{machine_name}:*]",
                reason="Aborting a rollout stops its execution, whose name (the rollout id) is only "
                "known at run time; the grant covers this state machine's executions only.",
            )
        )

    def _function(
        self,
        construct_id: str,
        module: str,
        description: str,
        *,
        environment: dict[str, str] | None = None,
        timeout: Duration | None = None,
    ) -> ServiceFunction:
        return ServiceFunction(
            self,
            construct_id,
            service_name=f"rollout-{module.replace('_', '-')}",
            description=description,
            code_dir=self.functions_dir / "rollout",
            handler=f"{module}.lambda_handler",
            layers=[self.layers.core],
            memory_size=512,
            timeout=timeout or Duration.seconds(30),
            environment={**self.environment, **(environment or {})},
            log_retention=self.log_retention,
        )

    def _invoke(self, name: str, function: ServiceFunction, comment: str) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self.workflow,
            name,
            lambda_function=function.function,
            output_path="$.Payload",
            comment=comment,
            retry_on_service_exceptions=True,
        )
        task.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2)
        return task

    def _state_machine(self) -> sfn.StateMachine:
        self.workflow = Construct(self, "Workflow")  # state ids are the state names
        scope = self.workflow
        rolled_back = sfn.Fail(
            scope,
            "RolloutRolledBack",
            comment="All traffic is back on production; the rollout record says why.",
            error_path="$.error",
            cause_path="$.cause",
        )
        roll_back = self._invoke(
            "RollBack", self.roll_back, "Alias (if moved) and traffic back to production."
        )
        roll_back.add_retry(
            errors=["States.ALL"],
            interval=Duration.seconds(2),
            max_attempts=ROLLBACK_ATTEMPTS,
            backoff_rate=2,
        )
        roll_back.next(rolled_back)

        def caught(task: tasks.LambdaInvoke) -> tasks.LambdaInvoke:
            task.add_catch(roll_back, errors=["States.ALL"], result_path="$.error")
            return task

        start_step = caught(self._invoke("StartStep", self.start_step, "Split traffic at the step's share."))
        bake = sfn.Wait(
            scope,
            "Bake",
            comment="Serve the step for its bake time.",
            time=sfn.WaitTime.seconds_path("$.wait_seconds"),
        )
        check = caught(self._invoke("CheckGuardrails", self.check_guardrails, "The step's verdict."))
        promote = caught(self._invoke("Promote", self.promote, "Production to the candidate."))
        verdict = (
            sfn.Choice(scope, "Verdict", comment="Decided by CheckGuardrails.")
            .when(sfn.Condition.string_equals("$.verdict", "rollback"), roll_back)
            .when(sfn.Condition.string_equals("$.verdict", "hold"), bake)
            .when(sfn.Condition.string_equals("$.verdict", "next"), start_step)
            .when(
                sfn.Condition.string_equals("$.verdict", "promote"),
                promote.next(sfn.Succeed(scope, "Promoted")),
            )
            .otherwise(roll_back)
        )
        definition = start_step.next(bake).next(check).next(verdict)

        log_group = aws_logs.LogGroup(self, "StateMachineLogs", retention=self.log_retention)
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ALL, include_execution_data=True),
            comment="Guarded rollout: traffic to a candidate in steps, each baked and checked; "
            "promote at the end, roll back when a guardrail trips or a step fails.",
        )
        Validations.of(machine.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Tracing (xray:PutTraceSegments, PutTelemetryRecords, GetSampling*) and log "
                "delivery (logs:CreateLogDelivery and related) support no resource-level permissions.",
            )
        )
        acknowledge_step_invocations(machine.role, self.functions)
        return machine

    @property
    def functions(self) -> list[ServiceFunction]:
        """The workflow's steps."""
        return [self.start_step, self.check_guardrails, self.promote, self.roll_back]
