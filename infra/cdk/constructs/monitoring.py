"""Drift monitoring: the drift function on a schedule, the drift API, and the alarms.

- **drift** (`functions/drift/handler.py`, core layer only: the statistics are numpy) runs
  every `DISPATCH_MINUTES` from an EventBridge schedule and runs the monitored models that
  are due (`mlops_core.monitoring.dispatch`); the drift API invokes it asynchronously for
  on-demand runs. It reads the registry, the capture and reference profiles, writes
  reports under `drift-reports/`, its run items, and publishes DriftDetected/DriftRunFailed.
- **drift-api** (`functions/drift/api.py`) behind IAM routes: configuration, runs, reports.
- **Alarms** into the `Alarms` SNS topic (KMS-encrypted with a key CloudWatch may use,
  TLS-only): dataset drift, drift runs that failed (or a drift function error). The
  concept-drift alarm belongs here too: `add_alarm` wires any alarm to the topic.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Duration,
    RemovalPolicy,
    aws_cloudwatch,
    aws_cloudwatch_actions,
    aws_events,
    aws_events_targets,
    aws_iam,
    aws_kms,
    aws_logs,
    aws_sns,
)
from constructs import Construct

from infra.cdk.constructs.functions import METRICS_NAMESPACE, ServiceFunction
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import ITEM_READ_ACTIONS, StorageConstruct
from mlops_core.monitoring.concept_window import CONCEPT_DRIFT_METRIC
from mlops_core.monitoring.config import DISPATCH_MINUTES
from mlops_core.storage import keys

#: The drift API's routes (IAM), each answered by `functions/drift/api.py`.
DRIFT_ROUTES = [
    ("/models/{name}/monitoring", "PUT"),
    ("/models/{name}/monitoring", "GET"),
    ("/models/{name}/drift-runs", "POST"),
    ("/models/{name}/drift-runs", "GET"),
    ("/models/{name}/drift-runs/{run_id}", "GET"),
    ("/models/{name}/drift-runs/{run_id}/report", "GET"),
    ("/models/{name}/drift", "GET"),
    ("/models/{name}/retraining", "GET"),
    ("/models/{name}/retraining/{decision_id}", "GET"),
]
DRIFT_SERVICE = "drift"
#: How long a run may take: one model's window of up to 2 million rows, or a dispatch of many.
DRIFT_TIMEOUT = Duration.minutes(15)
#: Memory: 200,000 captured rows of 50 features parse to ~1 GB of Python objects.
DRIFT_MEMORY_MB = 3008


class MonitoringConstruct(Construct):
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

        self.drift = ServiceFunction(
            self,
            "Drift",
            service_name=DRIFT_SERVICE,
            description="Scheduled and on-demand drift runs: reference profile vs captured predictions.",
            code_dir=functions_dir / "drift",
            handler="handler.lambda_handler",
            layers=[layers.core],
            memory_size=DRIFT_MEMORY_MB,
            timeout=DRIFT_TIMEOUT,
            environment={
                "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
                "METADATA_TABLE": storage.metadata_table.table_name,
                "EVENT_BUS_NAME": event_bus.event_bus_name,
            },
            log_retention=log_retention,
        )
        role = self.drift.role
        # Registry reads (model, alias, version), its monitoring and run items (written), each
        # by key: a run never queries a model's partition (the dispatcher queries the index).
        _grant_model_items(storage, role, write=True, query=False)
        # The dispatcher lists the monitored models (the MONITORED partition of the index).
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[storage.metadata_index_arn],
                conditions={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [keys.MONITORED_MODELS]}},
            )
        )
        # Every object the drift function reads is read as it is now (no version id: the
        # capture, the feedback copy, the profile): s3:GetObject only, no GetObjectVersion.
        storage.grant_prefix_read(role, keys.CAPTURE_PREFIX, versions=False)
        storage.grant_prefix_list(role, keys.CAPTURE_PREFIX)
        # Concept drift: the counted feedback, by model and hour.
        storage.grant_prefix_read(role, keys.FEEDBACK_CAPTURE_PREFIX, versions=False)
        storage.grant_prefix_list(role, keys.FEEDBACK_CAPTURE_PREFIX)
        storage.grant_prefix_read(role, keys.reference_profile("*"), versions=False)
        # A missing profile must read as missing (404), not forbidden: listing runs/ (names only).
        storage.grant_prefix_list(role, keys.RUNS_PREFIX)
        storage.grant_prefix_write(role, keys.DRIFT_REPORTS_PREFIX)
        event_bus.grant_put_events_to(role)

        # The dispatcher: the one schedule (per-model schedules: docs/decision_log.md). A tick
        # not delivered within its period is dropped: the next one does its work.
        self.schedule = aws_events.Rule(
            self,
            "DriftSchedule",
            description=f"Runs the monitored models that are due (every {DISPATCH_MINUTES} minutes)",
            schedule=aws_events.Schedule.rate(Duration.minutes(DISPATCH_MINUTES)),
            targets=[
                aws_events_targets.LambdaFunction(
                    self.drift.function,
                    max_event_age=Duration.minutes(DISPATCH_MINUTES),
                    retry_attempts=2,
                )
            ],
        )

        self.api = ServiceFunction(
            self,
            "DriftApi",
            service_name="drift-api",
            description="Drift monitoring configuration, on-demand runs, run history and reports.",
            code_dir=functions_dir / "drift",
            handler="api.lambda_handler",
            layers=[layers.core],
            memory_size=512,
            timeout=Duration.seconds(29),
            environment={
                "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
                "METADATA_TABLE": storage.metadata_table.table_name,
                "DRIFT_FUNCTION_NAME": self.drift.function.function_name,
            },
            log_retention=log_retention,
        )
        _grant_model_items(storage, self.api.role, write=True)
        # A retraining decision's training run: its record, by key (RUN#{id} / RUN) only.
        self.api.role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem"],
                resources=[storage.metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.run_pk("*")]}},
            )
        )
        storage.grant_prefix_read(self.api.role, keys.DRIFT_REPORTS_PREFIX, versions=False)
        storage.grant_prefix_list(self.api.role, keys.DRIFT_REPORTS_PREFIX)
        # Exactly the drift function (unqualified): no versions, no other function.
        self.api.role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["lambda:InvokeFunction"], resources=[self.drift.function.function_arn]
            )
        )

        self.alarm_key = aws_kms.Key(
            self,
            "AlarmTopicKey",
            description="Encrypts the drift alarms topic (CloudWatch may use it to publish)",
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.alarm_key.add_to_resource_policy(
            aws_iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                principals=[aws_iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                resources=["*"],  # in a key policy, "*" is this key
            )
        )
        self.alarm_topic = aws_sns.Topic(
            self,
            "Alarms",
            display_name="Serverless MLOps drift alarms",
            master_key=self.alarm_key,
            enforce_ssl=True,
        )
        self.alarms: dict[str, aws_cloudwatch.Alarm] = {}
        drift_metric = aws_cloudwatch.Metric(
            namespace=METRICS_NAMESPACE,
            metric_name="DriftDetected",
            dimensions_map={"service": DRIFT_SERVICE},
            statistic="Sum",
            period=Duration.hours(1),
        )
        self.add_alarm(
            "DatasetDrift",
            drift_metric,
            description="A drift run found dataset-level data drift in the last hour (GET "
            "/models/{name}/drift names the model; runbook: docs/operations.md#datasetdrift).",
        )
        failures = aws_cloudwatch.MathExpression(
            expression="FILL(failures, 0) + FILL(errors, 0)",
            using_metrics={
                "failures": aws_cloudwatch.Metric(
                    namespace=METRICS_NAMESPACE,
                    metric_name="DriftRunFailures",
                    dimensions_map={"service": DRIFT_SERVICE},
                    statistic="Sum",
                ),
                "errors": self.drift.function.metric_errors(statistic="Sum"),
            },
            period=Duration.minutes(15),
            label="drift runs failed + drift function errors",
        )
        self.add_alarm(
            "DriftRunFailures",
            failures,
            description="A drift run failed, or the drift function itself failed (timeout, memory), in "
            "the last 15 minutes (runbook: docs/operations.md#driftrunfailures).",
        )
        self.add_alarm(
            "ConceptDrift",
            aws_cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=CONCEPT_DRIFT_METRIC,
                dimensions_map={"service": DRIFT_SERVICE},
                statistic="Sum",
                period=Duration.hours(1),
            ),
            description="A drift run found concept drift (the live metric on labelled feedback below "
            "the training baseline, or ADWIN's alarm) in the last hour (runbook: "
            "docs/operations.md#conceptdrift).",
        )

    def add_alarm(
        self, name: str, metric: aws_cloudwatch.IMetric, *, description: str
    ) -> aws_cloudwatch.Alarm:
        """An alarm at one or more in one period of ``metric``, notifying the topic when it
        goes into alarm and when it is OK again; missing data (no runs) is not breaching."""
        alarm = aws_cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=1,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            comparison_operator=aws_cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=aws_cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=description,
        )
        action = aws_cloudwatch_actions.SnsAction(self.alarm_topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms[name] = alarm
        return alarm


def _grant_model_items(
    storage: StorageConstruct, role: aws_iam.IRole, *, write: bool, query: bool = True
) -> None:
    """Read (and write) items in models' partitions only: the registry's, monitoring's, runs';
    with ``query=False`` by key only (GetItem, no Query)."""
    reads = list(ITEM_READ_ACTIONS) if query else ["dynamodb:GetItem"]
    actions = [*reads, *(["dynamodb:PutItem", "dynamodb:UpdateItem"] if write else [])]
    role.add_to_principal_policy(
        aws_iam.PolicyStatement(
            actions=actions,
            resources=[storage.metadata_table.table_arn],
            conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.model_pk("*")]}},
        )
    )
