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

from pathlib import Path

from aws_cdk import Duration, aws_logs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.object_map import (
    close_after,
    invoke_step,
    manifest_payload,
    map_state_machine,
    objects_map,
    per_object_step,
)
from infra.cdk.constructs.storage import MODELS_PREFIX, StorageConstruct
from mlops_core.storage import keys

#: Objects scored at once (child executions of the Map, and scoring functions running).
MAX_CONCURRENCY = 40
#: The Map fails (and the job with it) when more than this share of the objects failed.
TOLERATED_FAILURE_PERCENTAGE = 10
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
            parquet: bool = False,
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
                layers=[
                    layers.core,
                    *([layers.serving] if serving else []),
                    *([layers.parquet] if parquet else []),
                ],
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
            parquet=True,  # Parquet inputs (arro3-io); the only function with this layer
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
        mark_failed = invoke_step(
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

        score = per_object_step(scope, "ScoreObject", self.score, "One object: predictions and refused rows.")
        score_objects = objects_map(
            scope,
            "ScoreObjects",
            comment="One child execution per input object.",
            bucket=bucket,
            prefix_path="$.input_prefix",
            item_selector={
                "job_id.$": "$.job_id",
                "model_name.$": "$.model_name",
                "version.$": "$.version",
                "input_prefix.$": "$.input_prefix",
            },
            processor=score,
            results_prefix=keys.BATCH_MAP_RUNS_PREFIX,
            max_concurrency=MAX_CONCURRENCY,
            tolerated_failure_percentage=TOLERATED_FAILURE_PERCENTAGE,
        )
        finalize = invoke_step(
            scope,
            "Finalize",
            self.finalize,
            "Counts from the Map's result files.",
            payload=manifest_payload(job_id="$.job_id"),
        )
        definition = close_after(score_objects, finalize, mark_failed, sfn.Succeed(scope, "Scored"))
        return map_state_machine(
            self,
            definition=definition,
            bucket=bucket,
            steps=(self.score, self.finalize, self.mark_failed),
            log_retention=log_retention,
            comment="Batch scoring: every object under a job's input prefix scored by a Distributed Map.",
            reader_reason="The Map's ItemReader lists the job's input prefix (known at run time).",
        )

    @property
    def functions(self) -> list[ServiceFunction]:
        return [self.score, self.finalize, self.mark_failed, self.api]
