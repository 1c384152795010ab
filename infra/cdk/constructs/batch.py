"""Batch scoring: a Step Functions Distributed Map over the input's S3 objects, the scoring
function it runs per object, the steps that close the job, and the API function.

    ScoreObjects (Distributed Map; ItemReader s3:listObjectsV2 on the job's input prefix,
                  one child execution per object, ResultWriter manifest under batch/map-runs)
        ScoreObject (Lambda: the real-time predictor core, pinned version)
    → Finalize (the manifest's result files → the job's counts) → Scored
    any failure (the Map past its tolerated failures, a step after its retries) → MarkFailed → BatchJobFailed

Rows a model cannot take are not failures of the Map: the scoring function reports them by
line and the job counts them. An object that cannot be read at all (or whose scoring fails
after the retries) is a failed item; the Map fails when more than
``TOLERATED_FAILURE_PERCENTAGE`` of the objects failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from aws_cdk import Acknowledgment, CfnResource, Duration, Stack, Validations, aws_logs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction, acknowledge_step_invocations
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import MODELS_PREFIX, StorageConstruct
from mlops_core.storage import keys

#: Objects scored at once (child executions of the Map, and scoring functions running).
MAX_CONCURRENCY = 40
#: The Map fails (and the job with it) when more than this share of the objects failed.
TOLERATED_FAILURE_PERCENTAGE = 10
#: Our adapters raise Unavailable on throttling and timeouts of S3 and DynamoDB.
TRANSIENT_ERRORS = ["Unavailable"]
#: Lambda's own throttling when many objects are scored at once.
THROTTLING_ERRORS = ["Lambda.TooManyRequestsException"]
ROUTES = [
    ("/batch-predictions", "POST"),
    ("/batch-predictions", "GET"),
    ("/batch-predictions/{job_id}", "GET"),
]


class BatchConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.storage = storage
        environment = {
            "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
            "METADATA_TABLE": storage.metadata_table.table_name,
        }

        def function(
            construct_id: str,
            module: str,
            description: str,
            *,
            serving: bool = False,
            memory_size: int = 512,
            timeout: Duration | None = None,
            extra: dict[str, str] | None = None,
        ) -> ServiceFunction:
            return ServiceFunction(
                self,
                construct_id,
                service_name=f"batch-{module.replace('_', '-')}",
                description=description,
                code_dir=functions_dir / "batch",
                handler=f"{module}.lambda_handler",
                layers=[layers.core, layers.serving] if serving else [layers.core],
                memory_size=memory_size,
                timeout=timeout or Duration.seconds(60),
                environment={**environment, **(extra or {})},
                log_retention=log_retention,
            )

        # 1,769 MB is one full vCPU: the ONNX session runs on one thread.
        self.score = function(
            "ScoreObject",
            "score",
            "Scores one input object of a batch job with its pinned model version.",
            serving=True,
            memory_size=1769,
            timeout=Duration.minutes(10),
        )
        storage.grant_metadata_read(self.score.role, query=False)  # the pinned version's record
        for prefix in (keys.BATCH_INPUT_PREFIX, MODELS_PREFIX):
            storage.grant_prefix_read(self.score.role, prefix)
            storage.grant_prefix_list(self.score.role, prefix)  # a missing key is a 404, not a 403
        storage.grant_prefix_write(self.score.role, keys.BATCH_PREFIX)

        self.finalize = function(
            "Finalize",
            "finalize",
            "Counts a batch job's results from its Map run's manifest.",
            timeout=Duration.minutes(5),
        )
        self.mark_failed = function("MarkFailed", "mark_failed", "Records why a batch job failed.")
        for step in (self.finalize, self.mark_failed):
            storage.grant_metadata_read_write(step.role, index=False)
        storage.grant_prefix_read(self.finalize.role, f"{keys.BATCH_MAP_RUNS_PREFIX}/")
        storage.grant_prefix_list(self.finalize.role, f"{keys.BATCH_MAP_RUNS_PREFIX}/")

        self.state_machine = self._state_machine(log_retention)

        self.api = function(
            "Api",
            "api",
            "Starts (POST /batch-predictions), lists and reads batch scoring jobs.",
            timeout=Duration.seconds(29),
            extra={"BATCH_STATE_MACHINE_ARN": self.state_machine.state_machine_arn},
        )
        storage.grant_metadata_read_write(self.api.role)  # job records, registry reads, the job list
        storage.grant_prefix_list(self.api.role, keys.BATCH_INPUT_PREFIX)  # an empty input is a 422
        self.state_machine.grant_start_execution(self.api.role)

    def _invoke(
        self, scope: Construct, name: str, step: ServiceFunction, comment: str, **kwargs: object
    ) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            scope,
            name,
            lambda_function=step.function,
            output_path="$.Payload",
            comment=comment,
            retry_on_service_exceptions=True,
            **kwargs,  # type: ignore[arg-type]
        )
        task.add_retry(errors=TRANSIENT_ERRORS, interval=Duration.seconds(2), max_attempts=3, backoff_rate=2)
        return task

    def _state_machine(self, log_retention: aws_logs.RetentionDays) -> sfn.StateMachine:
        scope = Construct(self, "Workflow")
        bucket = self.storage.artifacts_bucket
        failed = sfn.Fail(
            scope,
            "BatchJobFailed",
            comment="The job record says why.",
            error_path="$.error",
            cause_path="$.cause",
        )
        mark_failed = self._invoke(
            scope,
            "MarkFailed",
            self.mark_failed,
            "The job failed: record the error and cause.",
            payload=sfn.TaskInput.from_object(
                {"job_id": sfn.JsonPath.string_at("$.job_id"), "failure": sfn.JsonPath.object_at("$.failure")}
            ),
        )
        mark_failed.add_retry(
            errors=["States.ALL"], interval=Duration.seconds(2), max_attempts=5, backoff_rate=2
        )
        mark_failed.next(failed)

        score = self._invoke(scope, "ScoreObject", self.score, "One object: predictions and refused rows.")
        score.add_retry(
            errors=THROTTLING_ERRORS,
            interval=Duration.seconds(1),
            max_attempts=8,
            backoff_rate=2,
            max_delay=Duration.seconds(60),
            jitter_strategy=sfn.JitterType.FULL,
        )
        score_objects = sfn.DistributedMap(
            scope,
            "ScoreObjects",
            comment="One child execution per input object.",
            item_reader=sfn.S3ObjectsItemReader(
                bucket=bucket, prefix=sfn.JsonPath.string_at("$.input_prefix")
            ),
            item_selector={
                "job_id.$": "$.job_id",
                "model_name.$": "$.model_name",
                "version.$": "$.version",
                "input_prefix.$": "$.input_prefix",
                "key.$": "$$.Map.Item.Value.Key",
                "size.$": "$$.Map.Item.Value.Size",
            },
            max_concurrency=MAX_CONCURRENCY,
            tolerated_failure_percentage=TOLERATED_FAILURE_PERCENTAGE,
            result_writer_v2=sfn.ResultWriterV2(bucket=bucket, prefix=keys.BATCH_MAP_RUNS_PREFIX),
            result_selector={"manifest_key.$": "$.ResultWriterDetails.Key"},
            result_path="$.map",
            map_execution_type=sfn.StateMachineType.STANDARD,
        )
        score_objects.item_processor(score)
        score_objects.add_catch(mark_failed, errors=["States.ALL"], result_path="$.failure")
        finalize = self._invoke(
            scope,
            "Finalize",
            self.finalize,
            "Counts from the Map's result files.",
            payload=sfn.TaskInput.from_object(
                {
                    "job_id": sfn.JsonPath.string_at("$.job_id"),
                    "manifest_key": sfn.JsonPath.string_at("$.map.manifest_key"),
                }
            ),
        )
        finalize.add_catch(mark_failed, errors=["States.ALL"], result_path="$.failure")
        definition = score_objects.next(finalize).next(sfn.Succeed(scope, "Scored"))

        log_group = aws_logs.LogGroup(self, "StateMachineLogs", retention=log_retention)
        machine = sfn.StateMachine(
            self,
            "StateMachine",
            definition_body=sfn.DefinitionBody.from_chainable(definition),
            state_machine_type=sfn.StateMachineType.STANDARD,
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=log_group, level=sfn.LogLevel.ERROR, include_execution_data=False
            ),
            comment="Batch scoring: every object under a job's input prefix scored by a Distributed Map.",
        )
        self._acknowledge(machine)
        return machine

    def _acknowledge(self, machine: sfn.StateMachine) -> None:
        stack = Stack.of(self)
        Validations.of(machine).acknowledge(
            Acknowledgment(
                id="AwsSolutions-SF1",
                reason="Logs ERROR, not ALL: a Distributed Map runs one child execution per input "
                "object, and ALL would log every state of every child (thousands of events a job); "
                "the job record keeps the counts and failures, and no row data is logged.",
            )
        )
        bucket_id = stack.get_logical_id(cast(CfnResource, self.storage.artifacts_bucket.node.default_child))
        machine_id = stack.get_logical_id(cast(CfnResource, machine.node.default_child))
        machine_name = json.dumps(
            {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": machine_id}]}]}, separators=(",", ":")
        )
        acknowledge = Validations.of(machine.role).acknowledge
        acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<{bucket_id}>/*]",
                reason="The Map's ItemReader lists the job's input prefix (known at run time) and its "
                "ResultWriter writes and reads back the map-run results (multipart uploads); CDK's "
                "DistributedMap grants these on the artifacts bucket. No delete, no other bucket.",
            )
        )
        # CDK puts the Map's own execution grants in a policy of their own beside the role's.
        map_policy = machine.node.find_child("DistributedMapPolicy")
        for suffix in (":*", "/*:*"):
            Validations.of(map_policy).acknowledge(
                Acknowledgment(
                    id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
                    f"<AWS::AccountId>:execution:{machine_name}{suffix}]",
                    reason="The Distributed Map describes, stops and redrives its own child executions, "
                    "named at run time; the grant covers this state machine's executions only.",
                )
            )
        acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Tracing (xray:PutTraceSegments, PutTelemetryRecords, GetSampling*) and log "
                "delivery (logs:CreateLogDelivery and related) support no resource-level permissions.",
            )
        )
        acknowledge_step_invocations(machine.role, (self.score, self.finalize, self.mark_failed))

    @property
    def functions(self) -> list[ServiceFunction]:
        return [self.score, self.finalize, self.mark_failed, self.api]
