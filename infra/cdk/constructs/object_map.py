"""A state machine whose work is a Step Functions Distributed Map over the objects under an S3
prefix: one child execution per object, a ResultWriter manifest the closing step reads, Lambda
steps retried on our transient errors, and cdk-nag's reasons for what CDK grants such a
machine. Batch scoring (``batch.py``) and partitioned feature materialization
(``features_partitions.py``) are built from it; locally, infra/local/distributed_map.py fills
what moto's interpreter lacks for both."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, cast

from aws_cdk import Acknowledgment, CfnResource, Duration, Stack, Validations, aws_logs, aws_s3
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction, acknowledge_step_invocations

#: Our adapters raise Unavailable on throttling and timeouts of S3 and DynamoDB.
TRANSIENT_ERRORS = ["Unavailable"]
#: Lambda's own throttling when many objects are processed at once.
THROTTLING_ERRORS = ["Lambda.TooManyRequestsException"]


def invoke_step(
    scope: Construct, name: str, step: ServiceFunction, comment: str, **kwargs: object
) -> tasks.LambdaInvoke:
    """A Lambda step answering its payload, retried on service errors and ``Unavailable``."""
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


def per_object_step(scope: Construct, name: str, step: ServiceFunction, comment: str) -> tasks.LambdaInvoke:
    """The Map's item processor: ``invoke_step`` also retrying Lambda's throttling (many
    children start at once)."""
    task = invoke_step(scope, name, step, comment)
    task.add_retry(
        errors=THROTTLING_ERRORS,
        interval=Duration.seconds(1),
        max_attempts=8,
        backoff_rate=2,
        max_delay=Duration.seconds(60),
        jitter_strategy=sfn.JitterType.FULL,
    )
    return task


def objects_map(
    scope: Construct,
    name: str,
    *,
    bucket: aws_s3.IBucket,
    prefix_path: str,
    item_selector: Mapping[str, Any],
    processor: sfn.IChainable,
    results_prefix: str,
    max_concurrency: int,
    tolerated_failure_percentage: int,
    comment: str,
) -> sfn.DistributedMap:
    """One child execution per object listed under the prefix at ``prefix_path`` (the item
    selector adds the object's ``key`` and ``size``); the Map's result is
    ``{"manifest_key": ...}`` at ``$.map``."""
    objects = sfn.DistributedMap(
        scope,
        name,
        comment=comment,
        item_reader=sfn.S3ObjectsItemReader(bucket=bucket, prefix=sfn.JsonPath.string_at(prefix_path)),
        item_selector={
            **item_selector,
            "key.$": "$$.Map.Item.Value.Key",
            "size.$": "$$.Map.Item.Value.Size",
        },
        max_concurrency=max_concurrency,
        tolerated_failure_percentage=tolerated_failure_percentage,
        result_writer_v2=sfn.ResultWriterV2(bucket=bucket, prefix=results_prefix),
        result_selector={"manifest_key.$": "$.ResultWriterDetails.Key"},
        result_path="$.map",
        map_execution_type=sfn.StateMachineType.STANDARD,
    )
    objects.item_processor(processor)
    return objects


def close_after(
    objects: sfn.DistributedMap, close: tasks.LambdaInvoke, on_failure: sfn.IChainable, done: sfn.Succeed
) -> sfn.IChainable:
    """The Map, then the step that closes the run from its results, then ``done``; a failure of
    either goes to ``on_failure`` with the error at ``$.failure``."""
    objects.add_catch(on_failure, errors=["States.ALL"], result_path="$.failure")
    close.add_catch(on_failure, errors=["States.ALL"], result_path="$.failure")
    return objects.next(close).next(done)


def manifest_payload(**fields: str) -> sfn.TaskInput:
    """The closing step's payload: ``fields`` (name -> JSONPath of a string, or ``$`` for the
    whole state) and the Map's manifest key."""
    payload: dict[str, Any] = {
        name: sfn.JsonPath.object_at(path) if path == "$" else sfn.JsonPath.string_at(path)
        for name, path in fields.items()
    }
    return sfn.TaskInput.from_object(payload | {"manifest_key": sfn.JsonPath.string_at("$.map.manifest_key")})


def map_state_machine(
    owner: Construct,
    *,
    definition: sfn.IChainable,
    bucket: aws_s3.IBucket,
    steps: Iterable[ServiceFunction],
    log_retention: aws_logs.RetentionDays,
    comment: str,
    reader_reason: str,
    timeout: Duration | None = None,
) -> sfn.StateMachine:
    """The state machine (``StateMachine`` and ``StateMachineLogs`` in ``owner``), logging
    errors only, traced, with cdk-nag's reasons for the Map's grants."""
    log_group = aws_logs.LogGroup(owner, "StateMachineLogs", retention=log_retention)
    machine = sfn.StateMachine(
        owner,
        "StateMachine",
        definition_body=sfn.DefinitionBody.from_chainable(definition),
        state_machine_type=sfn.StateMachineType.STANDARD,
        tracing_enabled=True,
        timeout=timeout,
        logs=sfn.LogOptions(destination=log_group, level=sfn.LogLevel.ERROR, include_execution_data=False),
        comment=comment,
    )
    _acknowledge(machine, bucket, steps, reader_reason)
    return machine


def _acknowledge(
    machine: sfn.StateMachine, bucket: aws_s3.IBucket, steps: Iterable[ServiceFunction], reader_reason: str
) -> None:
    stack = Stack.of(machine)
    Validations.of(machine).acknowledge(
        Acknowledgment(
            id="AwsSolutions-SF1",
            reason="Logs ERROR, not ALL: a Distributed Map runs one child execution per input "
            "object, and ALL would log every state of every child (thousands of events a run); "
            "the run's record keeps the counts and failures, and no row data is logged.",
        )
    )
    bucket_id = stack.get_logical_id(cast(CfnResource, bucket.node.default_child))
    machine_id = stack.get_logical_id(cast(CfnResource, machine.node.default_child))
    machine_name = json.dumps(
        {"Fn::Select": [6, {"Fn::Split": [":", {"Ref": machine_id}]}]}, separators=(",", ":")
    )
    acknowledge = Validations.of(machine.role).acknowledge
    acknowledge(
        Acknowledgment(
            id=f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::<{bucket_id}>/*]",
            reason=f"{reader_reason} Its ResultWriter writes and reads back the map-run results "
            "(multipart uploads); CDK's DistributedMap grants these on the artifacts bucket. No "
            "delete, no other bucket.",
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
    acknowledge_step_invocations(machine.role, steps)
