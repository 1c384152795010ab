"""Partitioned feature materialization (mlops_core.features.partitions): a Distributed Map
over a view's source objects, started by the materialize function when a run's chosen objects
are more than one function holds.

    MaterializeObjects (Distributed Map; ItemReader s3:listObjectsV2 on the view's source
                        prefix, one child per object, MAX_CONCURRENCY at a time, ResultWriter
                        under feature-map-runs/)
        MaterializeObject (Lambda: one object, conditional PutItems, its SOURCE# mark)
    → FinishMaterialization (the result files → one run record, STATE, the lease released) → Done
    the Map or FinishMaterialization failing → FailMaterialization (the record failed, lease
    released) → MaterializationFailed

Objects that do not match the view are answered by their child as failures (the record lists
them), so the Map tolerates every item failing (``TOLERATED_FAILURE_PERCENTAGE = 100``): the
last step always runs and records what happened.

Roles: MaterializeObject reads ``feature-sources/``, GetItem/BatchGetItem/PutItem on the
features table (no BatchWriteItem: its writes are conditional), GetItem/Query/PutItem on
FEATURE_VIEW# items (view, marks); FinishMaterialization reads the Map's results, reads and
writes FEATURE_VIEW# items and puts events (a failed run's event).
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, aws_dynamodb, aws_events, aws_iam, aws_logs
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
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.features.partitions import PARTITIONED_LEASE_SECONDS
from mlops_core.storage import keys

#: Objects materialized at once: each child writes with 8 concurrent PutItems.
MAX_CONCURRENCY = 20
#: Every failure is recorded by the last step, so the Map never fails on its items.
TOLERATED_FAILURE_PERCENTAGE = 100
#: Memory of one child (one object at a time): as the materialize function's.
OBJECT_MEMORY_MB = 2048
#: What one function's run (or one child) holds of source bytes, for ``memory_mb`` of memory:
#: measured 13.8x the CSV's bytes at peak (100,000 and 300,000 rows of 10 float features:
#: parsed columns, latest rows, items; docs/features.md), less 256 MB for the runtime, with
#: a safety factor: 16x.
MEMORY_PER_SOURCE_BYTE = 16


def single_run_max_bytes(memory_mb: int) -> int:
    return (memory_mb - 256) * 2**20 // MEMORY_PER_SOURCE_BYTE


class FeaturePartitionsConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        features_table: aws_dynamodb.ITable,
        event_bus: aws_events.IEventBus,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)
        self.storage = storage
        environment = {
            "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
            "METADATA_TABLE": storage.metadata_table.table_name,
            "FEATURES_TABLE": features_table.table_name,
            "EVENT_BUS_NAME": event_bus.event_bus_name,
            "MATERIALIZE_WORKERS": "8",
            "MATERIALIZE_SINGLE_RUN_MAX_BYTES": str(single_run_max_bytes(OBJECT_MEMORY_MB)),
        }

        def function(construct_id: str, module: str, description: str, memory_size: int) -> ServiceFunction:
            return ServiceFunction(
                self,
                construct_id,
                service_name=f"materialize-{module}",
                description=description,
                code_dir=functions_dir / "materialize",
                handler=f"{module}.lambda_handler",
                layers=[layers.core],
                memory_size=memory_size,
                timeout=Duration.minutes(15),
                environment=environment,
                log_retention=log_retention,
            )

        self.materialize_object = function(
            "MaterializeObject",
            "partition",
            "Materializes one source object of a partitioned feature materialization.",
            OBJECT_MEMORY_MB,
        )
        role = self.materialize_object.role
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem"],
                resources=[features_table.table_arn],
            )
        )
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:BatchWriteItem"],
                resources=[storage.metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.feature_view_pk("*")]}},
            )
        )
        storage.grant_prefix_read(role, keys.FEATURE_SOURCES_PREFIX)
        storage.grant_prefix_list(role, keys.FEATURE_SOURCES_PREFIX)

        self.finish = function(
            "FinishMaterialization",
            "finish",
            "Records a partitioned feature materialization from its Map run's results.",
            1024,
        )
        role = self.finish.role
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                resources=[storage.metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.feature_view_pk("*")]}},
            )
        )
        storage.grant_prefix_read(role, f"{keys.FEATURE_MAP_RUNS_PREFIX}/")
        storage.grant_prefix_list(role, f"{keys.FEATURE_MAP_RUNS_PREFIX}/")
        event_bus.grant_put_events_to(role)

        self.state_machine = self._state_machine(log_retention)

    def _state_machine(self, log_retention: aws_logs.RetentionDays) -> sfn.StateMachine:
        scope = Construct(self, "Workflow")
        bucket = self.storage.artifacts_bucket
        failed = sfn.Fail(scope, "MaterializationFailed", comment="The run record says why.")
        fail = invoke_step(
            scope,
            "FailMaterialization",
            self.finish,
            "The Map or the last step failed: record the run as failed, release the lease.",
            payload=sfn.TaskInput.from_object(
                {"run": sfn.JsonPath.object_at("$"), "failure": sfn.JsonPath.object_at("$.failure")}
            ),
        )
        fail.add_retry(errors=["States.ALL"], interval=Duration.seconds(2), max_attempts=5, backoff_rate=2)
        fail.next(failed)
        materialize = per_object_step(
            scope, "MaterializeObject", self.materialize_object, "One object: conditional writes, its mark."
        )
        objects = objects_map(
            scope,
            "MaterializeObjects",
            comment="One child execution per source object of the view.",
            bucket=bucket,
            prefix_path="$.source_prefix",
            item_selector={
                **{f"{name}.$": f"$.{name}" for name in _RUN_FIELDS},
                "listed.$": "$$.Map.Item.Value",
            },
            processor=materialize,
            results_prefix=keys.FEATURE_MAP_RUNS_PREFIX,
            max_concurrency=MAX_CONCURRENCY,
            tolerated_failure_percentage=TOLERATED_FAILURE_PERCENTAGE,
        )
        finish = invoke_step(
            scope,
            "FinishMaterialization",
            self.finish,
            "One run record from the Map's result files; the lease released.",
            payload=manifest_payload(run="$"),
        )
        definition = close_after(objects, finish, fail, sfn.Succeed(scope, "Materialized"))
        return map_state_machine(
            self,
            definition=definition,
            bucket=bucket,
            steps=(self.materialize_object, self.finish),
            log_retention=log_retention,
            comment="Partitioned feature materialization: a view's source objects by a Distributed Map.",
            reader_reason="The Map's ItemReader lists the view's source prefix (known at run time).",
            timeout=Duration.seconds(PARTITIONED_LEASE_SECONDS),
        )

    @property
    def functions(self) -> list[ServiceFunction]:
        return [self.materialize_object, self.finish]


#: The run's fields every child gets (``PartitionRun``).
_RUN_FIELDS = (
    "view",
    "run_id",
    "view_version",
    "source_prefix",
    "incremental",
    "compare",
    "start_ms",
    "end_ms",
    "now_ms",
)
