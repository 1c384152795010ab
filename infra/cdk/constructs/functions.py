"""A Lambda function with its own log group and its own, narrow execution role.

Every function of the project is built the same way: Python 3.12 on x86_64 (the
layers are built for exactly that), active X-Ray tracing, a log group with a
retention period, and a role that starts with nothing but writing to that log group
and sending traces. Whatever else a function may do is granted by the construct
that owns the resource (see `StorageConstruct.grant_*`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import cast

from aws_cdk import (
    Acknowledgment,
    CfnResource,
    Duration,
    RemovalPolicy,
    Stack,
    Tags,
    Validations,
    aws_iam,
    aws_lambda,
    aws_logs,
    aws_sqs,
)
from constructs import Construct

from infra.cdk.constructs.layers import LAYER_ARCHITECTURE, LAYER_RUNTIME
from infra.cdk.runtime import FUNCTION_ENVIRONMENT

#: Metric namespace shared by every function (Powertools Metrics, EMF).
METRICS_NAMESPACE = "ServerlessMLOps"

#: Tag naming a function's source folder (repository-relative); the local stack imports
#: the handler from there, and a reader of the deployed function finds its code.
SOURCE_TAG = "mlops:source"

#: The repository this infra package belongs to (infra/cdk/constructs/functions.py -> root).
_REPO_ROOT = Path(__file__).resolve().parents[3]

#: Files of a function folder that must not be deployed: local caches and tests.
CODE_EXCLUDES = ["**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/tests"]


def source_folder(code_dir: Path) -> str:
    """`code_dir` relative to the repository, in POSIX form (`functions/inference`)."""
    try:
        return code_dir.resolve().relative_to(_REPO_ROOT).as_posix()
    except ValueError:
        raise ValueError(f"function code {code_dir} is outside the repository {_REPO_ROOT}") from None


class ServiceFunction(Construct):
    """One function of the project: `function`, `role` and `log_group`.

    Args:
        service_name: the Powertools service name; also names the metrics dimension.
        code_dir: the function's folder under `functions/`; `handler` points into it.
        environment: settings beyond the Powertools ones set here for every function.
        snap_start: Lambda SnapStart for published versions (only the inference function
            offers it, as a deploy option; see `ApiConstruct`). Its `current_version` is then
            deleted when a deployment replaces it: every live version's snapshot is charged
            for as long as the version exists.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        service_name: str,
        code_dir: Path,
        handler: str,
        layers: Sequence[aws_lambda.ILayerVersion],
        memory_size: int,
        timeout: Duration,
        environment: Mapping[str, str],
        log_retention: aws_logs.RetentionDays,
        description: str,
        snap_start: aws_lambda.SnapStartConf | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.service_name = service_name

        self.log_group = aws_logs.LogGroup(self, "LogGroup", retention=log_retention)

        # A role per function, with inline statements only: the managed
        # AWSLambdaBasicExecutionRole would allow writing to *every* log group.
        self.role = aws_iam.Role(
            self,
            "Role",
            assumed_by=aws_iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Execution role of the {service_name} function",
        )
        self.log_group.grant_write(self.role)

        self.function = aws_lambda.Function(
            self,
            "Function",
            description=description,
            runtime=LAYER_RUNTIME,
            architecture=LAYER_ARCHITECTURE,
            code=aws_lambda.Code.from_asset(str(code_dir), exclude=CODE_EXCLUDES),
            handler=handler,
            layers=list(layers),
            memory_size=memory_size,
            timeout=timeout,
            role=self.role,
            log_group=self.log_group,
            tracing=aws_lambda.Tracing.ACTIVE,
            snap_start=snap_start,
            current_version_options=(
                aws_lambda.VersionOptions(removal_policy=RemovalPolicy.DESTROY) if snap_start else None
            ),
            environment={
                "POWERTOOLS_SERVICE_NAME": service_name,
                "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
                **FUNCTION_ENVIRONMENT,
                **environment,
            },
        )

        Tags.of(self.function).add(SOURCE_TAG, source_folder(code_dir))

        acknowledge = Validations.of(self).acknowledge
        acknowledge(
            Acknowledgment(
                # Active tracing adds xray:PutTraceSegments/PutTelemetryRecords to the role.
                id="AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments and PutTelemetryRecords support no resource-level "
                "permissions; '*' is the only valid resource for them.",
            )
        )
        acknowledge(
            Acknowledgment(
                id="AwsSolutions-L1",
                reason="Pinned to python3.12 on purpose: the layers are built from cp312 wheels "
                "and their sizes and pins are tested for it; moving runtime means rebuilding "
                "and re-measuring every layer.",
            )
        )


def failure_queue(
    scope: Construct,
    construct_id: str,
    *,
    of: str,
    encryption: aws_sqs.QueueEncryption = aws_sqs.QueueEncryption.SQS_MANAGED,
) -> aws_sqs.Queue:
    """A queue where a function's failed deliveries wait to be redriven by hand (encrypted,
    TLS-only, 14 days). ``of`` says whose failures it holds, in cdk-nag's acknowledgment:
    being the failure destination itself, it has no dead-letter queue of its own.
    ``encryption``: SSE-SQS unless the queue's owner asks for KMS."""
    queue = aws_sqs.Queue(
        scope,
        construct_id,
        encryption=encryption,
        enforce_ssl=True,
        retention_period=Duration.days(14),
    )
    Validations.of(queue).acknowledge(
        Acknowledgment(
            id="AwsSolutions-SQS3",
            reason=f"This queue is itself the failure destination of {of}; its messages are "
            "redriven by hand, so it needs no dead-letter queue of its own.",
        )
    )
    return queue


def acknowledge_step_invocations(role: aws_iam.IRole, steps: Iterable[ServiceFunction]) -> None:
    """cdk-nag's reason for the ``<arn>:*`` in a state machine's grant to invoke its steps."""
    stack = Stack.of(role)
    for step in steps:
        logical_id = stack.get_logical_id(cast(CfnResource, step.function.node.default_child))
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>:*]",
                reason="CDK grants lambda:InvokeFunction on each step's function and its versions "
                "(<arn>:*) so that qualified invocations work too; no other function is reachable.",
            )
        )
