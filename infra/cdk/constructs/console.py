"""Seeing it: the console function, the operational and model dashboards, and the alarms.

- **console** (`functions/console/handler.py`, core layer only) renders the model console's
  pages (HTML + inline SVG, no script) for CloudWatch custom widgets; its role can only
  read: GetItem/Query on the metadata table's model and run partitions, Query on the list
  index's models and runs partitions, GetObject (and a prefix-limited ListBucket, so a
  missing report is a 404 rather than a 403) under `drift-reports/`.
- **Operations dashboard**: API requests, latency p50/p99, 4xx/5xx (API and per function),
  Lambda errors, throttles and p99 duration per function, cold starts, artifact integrity
  failures, training runs started/succeeded/rejected/failed, drift runs and findings, and
  the alarms' states. Every metric is one the code emits (Powertools EMF in the
  `ServerlessMLOps` namespace) or one AWS publishes for a resource of this stack.
- **Models dashboard**: the console's pages as custom widgets, for the model named by the
  dashboard's `model` variable (a pattern variable: it replaces the default model's name
  in the widgets' parameters).
- **Alarms** on what an operator must act on, each notifying the one operations alarm
  topic (the monitoring construct's: KMS-encrypted, TLS-only) when it fires and when it is
  OK again. What to do for each: docs/operations.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import (
    ArnFormat,
    Duration,
    Stack,
    aws_apigateway,
    aws_cloudwatch,
    aws_cloudwatch_actions,
    aws_iam,
    aws_logs,
    aws_sns,
    aws_stepfunctions,
)
from constructs import Construct

from infra.cdk.constructs.functions import METRICS_NAMESPACE, ServiceFunction
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.monitoring.concept_window import CONCEPT_DRIFT_METRIC
from mlops_core.storage import keys

CONSOLE_SERVICE = "console"
#: The model the models dashboard opens on (its `model` variable's default and pattern).
DEFAULT_CONSOLE_MODEL = "breast-cancer"
#: Functions whose handlers emit ClientErrors / ServerErrors (``count_errors``), by service.
ERROR_COUNTING_SERVICES = ("inference", "registry", "feedback", "drift-api")
#: Functions whose handlers emit Powertools' ColdStart metric.
COLD_START_SERVICES = ("inference", CONSOLE_SERVICE)
FIVE_MINUTES = Duration.minutes(5)


@dataclass(frozen=True)
class AlarmLimits:
    """Thresholds of the operational alarms."""

    server_error_percent: float = 5.0
    p99_latency_ms: float = 2500.0


@dataclass(frozen=True)
class Watched:
    """What the dashboards and alarms watch, from the other constructs."""

    rest_api: aws_apigateway.RestApi
    training: aws_stepfunctions.StateMachine
    functions: Sequence[ServiceFunction]


class ConsoleConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
        alarm_topic: aws_sns.ITopic,
        watched: Watched,
        limits: AlarmLimits | None = None,
        console_model: str = DEFAULT_CONSOLE_MODEL,
    ) -> None:
        super().__init__(scope, construct_id)
        limits = limits or AlarmLimits()
        self.alarm_topic = alarm_topic

        self.console = ServiceFunction(
            self,
            "Console",
            service_name=CONSOLE_SERVICE,
            description="Model console pages (HTML + inline SVG) for CloudWatch custom widgets; reads only.",
            code_dir=functions_dir / "console",
            handler="handler.lambda_handler",
            layers=[layers.core],
            memory_size=1024,
            timeout=Duration.seconds(20),
            environment={
                "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
                "METADATA_TABLE": storage.metadata_table.table_name,
            },
            log_retention=log_retention,
        )
        self._grant_reads(storage, self.console.role)

        functions = [*watched.functions, self.console]
        self.alarms: dict[str, aws_cloudwatch.Alarm] = {}
        self._alarms(watched, functions, limits)
        self.operations = self._operations_dashboard(watched, functions)
        self.models = self._models_dashboard(console_model)

    # ---- the console's role: reads, exactly what the pages call ----------------------------
    def _grant_reads(self, storage: StorageConstruct, role: aws_iam.IRole) -> None:
        # Items: a model's (registry, aliases, audit, routing, arms, variants, monitoring,
        # drift runs) and a run's (the run and its candidates).
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query"],
                resources=[storage.metadata_table.table_arn],
                conditions={
                    "ForAllValues:StringLike": {
                        "dynamodb:LeadingKeys": [keys.model_pk("*"), keys.run_pk("*")]
                    }
                },
            )
        )
        # The list index: every model, a model's runs, and the batch jobs (the batch page).
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:Query"],
                resources=[storage.metadata_index_arn],
                conditions={
                    "ForAllValues:StringLike": {
                        "dynamodb:LeadingKeys": [keys.ALL_MODELS, keys.model_runs("*"), keys.ALL_BATCH_JOBS]
                    }
                },
            )
        )
        storage.grant_prefix_get(role, keys.DRIFT_REPORTS_PREFIX)
        storage.grant_prefix_list(role, keys.DRIFT_REPORTS_PREFIX)

    # ---- alarms -------------------------------------------------------------------------------
    def add_alarm(
        self,
        name: str,
        metric: aws_cloudwatch.IMetric,
        *,
        threshold: float,
        description: str,
        evaluation_periods: int = 1,
        runbook: str | None = None,
    ) -> aws_cloudwatch.Alarm:
        """An alarm at ``threshold`` or more, notifying the operations topic when it fires and
        when it is OK again; missing data (no traffic) is not breaching."""
        alarm = aws_cloudwatch.Alarm(
            self,
            name,
            # Named, so the dashboard's alarm widget can name its ARN without Fn::GetAtt (which
            # moto's CloudFormation, the local stack, cannot resolve for alarms).
            alarm_name=f"{Stack.of(self).stack_name}-{name}",
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=evaluation_periods,
            comparison_operator=aws_cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=aws_cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"{description} Runbook: docs/operations.md#{runbook or name.lower()}.",
        )
        action = aws_cloudwatch_actions.SnsAction(self.alarm_topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        self.alarms[name] = alarm
        return alarm

    def adopt_alarm(self, alarm: aws_cloudwatch.Alarm) -> None:
        """Notify the operations topic of another construct's alarm (firing and clearing)."""
        action = aws_cloudwatch_actions.SnsAction(self.alarm_topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)

    def _alarms(self, watched: Watched, functions: Sequence[ServiceFunction], limits: AlarmLimits) -> None:
        api = watched.rest_api
        self.add_alarm(
            "Api5xxRate",
            aws_cloudwatch.MathExpression(
                expression="IF(requests > 0, 100 * FILL(errors, 0) / requests, 0)",
                using_metrics={
                    "errors": api.metric_server_error(statistic="Sum", period=FIVE_MINUTES),
                    "requests": api.metric_count(statistic="Sum", period=FIVE_MINUTES),
                },
                period=FIVE_MINUTES,
                label="API 5xx, % of requests",
            ),
            threshold=limits.server_error_percent,
            description=f"{limits.server_error_percent:g}% or more of the API's requests answered 5xx "
            "in 5 minutes.",
        )
        self.add_alarm(
            "ApiLatencyP99",
            api.metric_latency(statistic="p99", period=FIVE_MINUTES),
            threshold=limits.p99_latency_ms,
            evaluation_periods=3,
            description=f"The API's p99 latency was {limits.p99_latency_ms:g} ms or more for 15 minutes.",
        )
        for service_function in functions:
            function = service_function.function
            self.add_alarm(
                f"{_name_of(service_function)}Errors",
                function.metric_errors(statistic="Sum", period=FIVE_MINUTES),
                threshold=1,
                description=f"The {_service_of(service_function)} function failed (an error, timeout or "
                "out-of-memory) in the last 5 minutes.",
                runbook="functionerrors",
            )
        self.add_alarm(
            "LambdaThrottles",
            aws_cloudwatch.Metric(
                namespace="AWS/Lambda", metric_name="Throttles", statistic="Sum", period=FIVE_MINUTES
            ),
            threshold=1,
            description="A Lambda invocation in this account and region was throttled (the dashboard's "
            "throttles graph names the function).",
        )
        self.add_alarm(
            "ArtifactIntegrityFailures",
            _emf("ArtifactIntegrityFailures", "inference", period=FIVE_MINUTES),
            threshold=1,
            description="An artifact's sha256 did not match the registry: the model was refused and the last "
            "good one kept serving.",
        )
        self.add_alarm(
            "TrainingFailures",
            aws_cloudwatch.MathExpression(
                expression="FILL(failed, 0) + FILL(timedout, 0)",
                using_metrics={
                    "failed": _emf("TrainingRunsFailed", "training-mark-failed", period=Duration.hours(1)),
                    "timedout": watched.training.metric_timed_out(statistic="Sum", period=Duration.hours(1)),
                },
                period=Duration.hours(1),
                label="training runs failed + timed out",
            ),
            threshold=1,
            description="A training run failed in a step (not a gate rejection) or timed out in the "
            "last hour.",
        )

    # ---- dashboards --------------------------------------------------------------------------
    def _operations_dashboard(
        self, watched: Watched, functions: Sequence[ServiceFunction]
    ) -> aws_cloudwatch.Dashboard:
        api = watched.rest_api
        training = watched.training
        dashboard = aws_cloudwatch.Dashboard(
            self,
            "OperationsDashboard",
            dashboard_name=f"{Stack.of(self).stack_name}-operations",
            default_interval=Duration.hours(3),
        )

        def graph(
            title: str, metrics: Sequence[aws_cloudwatch.IMetric], *, width: int = 8
        ) -> aws_cloudwatch.GraphWidget:
            return aws_cloudwatch.GraphWidget(title=title, left=list(metrics), width=width, height=6)

        def per_function(metric: str, statistic: str) -> list[aws_cloudwatch.IMetric]:
            return [
                sf.function.metric(metric, statistic=statistic, period=FIVE_MINUTES, label=_service_of(sf))
                for sf in functions
            ]

        dashboard.add_widgets(
            aws_cloudwatch.TextWidget(
                markdown="# Operations\nAlarms notify the operations topic; the runbook is "
                "docs/operations.md. The model console is on the models dashboard.",
                width=24,
                height=2,
            )
        )
        dashboard.add_widgets(
            graph("API requests", [api.metric_count(statistic="Sum", period=FIVE_MINUTES, label="requests")]),
            graph(
                "API latency (ms)",
                [
                    api.metric_latency(statistic="p50", period=FIVE_MINUTES, label="p50"),
                    api.metric_latency(statistic="p99", period=FIVE_MINUTES, label="p99"),
                ],
            ),
            graph(
                "API 4xx / 5xx",
                [
                    api.metric_client_error(statistic="Sum", period=FIVE_MINUTES, label="4xx"),
                    api.metric_server_error(statistic="Sum", period=FIVE_MINUTES, label="5xx"),
                ],
            ),
        )
        dashboard.add_widgets(
            graph(
                "4xx per function",
                [_emf("ClientErrors", s, period=FIVE_MINUTES, label=s) for s in ERROR_COUNTING_SERVICES],
                width=12,
            ),
            graph(
                "5xx per function",
                [_emf("ServerErrors", s, period=FIVE_MINUTES, label=s) for s in ERROR_COUNTING_SERVICES],
                width=12,
            ),
        )
        dashboard.add_widgets(
            graph("Lambda errors per function", per_function("Errors", "Sum")),
            graph("Lambda throttles per function", per_function("Throttles", "Sum")),
            graph("Lambda duration p99 per function (ms)", per_function("Duration", "p99")),
        )
        cold_start_functions = {
            _service_of(sf): sf for sf in functions if _service_of(sf) in COLD_START_SERVICES
        }
        dashboard.add_widgets(
            graph(
                "Cold starts",
                [
                    aws_cloudwatch.Metric(
                        namespace=METRICS_NAMESPACE,
                        metric_name="ColdStart",
                        dimensions_map={"function_name": sf.function.function_name, "service": service},
                        statistic="Sum",
                        period=FIVE_MINUTES,
                        label=service,
                    )
                    for service, sf in sorted(cold_start_functions.items())
                ],
            ),
            graph(
                "Predictions and artifact integrity failures",
                [
                    _emf("Predictions", "inference", period=FIVE_MINUTES, label="predictions"),
                    _emf(
                        "ArtifactIntegrityFailures",
                        "inference",
                        period=FIVE_MINUTES,
                        label="integrity failures",
                    ),
                ],
            ),
            graph(
                "Training runs",
                [
                    training.metric_started(statistic="Sum", period=Duration.hours(1), label="started"),
                    training.metric_succeeded(statistic="Sum", period=Duration.hours(1), label="succeeded"),
                    _emf(
                        "TrainingRunsRejected",
                        "training-evaluate",
                        period=Duration.hours(1),
                        label="rejected",
                    ),
                    _emf(
                        "TrainingRunsFailed", "training-mark-failed", period=Duration.hours(1), label="failed"
                    ),
                ],
            ),
        )
        dashboard.add_widgets(
            graph(
                "Drift runs and findings",
                [
                    _emf("DriftRuns", "drift", period=Duration.hours(1), label="runs"),
                    _emf("DriftDetected", "drift", period=Duration.hours(1), label="dataset drift"),
                    _emf(CONCEPT_DRIFT_METRIC, "drift", period=Duration.hours(1), label="concept drift"),
                    _emf("DriftRunFailures", "drift", period=Duration.hours(1), label="failed runs"),
                ],
                width=12,
            ),
            aws_cloudwatch.AlarmStatusWidget(
                title="Operational alarms (the drift alarms are in the alarms list)",
                alarms=[
                    aws_cloudwatch.Alarm.from_alarm_arn(
                        self,
                        f"{name}Ref",
                        Stack.of(self).format_arn(
                            service="cloudwatch",
                            resource="alarm",
                            resource_name=f"{Stack.of(self).stack_name}-{name}",
                            arn_format=ArnFormat.COLON_RESOURCE_NAME,
                        ),
                    )
                    for name in self.alarms
                ],
                width=12,
                height=6,
            ),
        )
        return dashboard

    def _models_dashboard(self, console_model: str) -> aws_cloudwatch.Dashboard:
        dashboard = aws_cloudwatch.Dashboard(
            self,
            "ModelsDashboard",
            dashboard_name=f"{Stack.of(self).stack_name}-models",
            default_interval=Duration.days(7),
            variables=[
                aws_cloudwatch.DashboardVariable(
                    id="model",
                    label="model",
                    type=aws_cloudwatch.VariableType.PATTERN,
                    input_type=aws_cloudwatch.VariableInputType.INPUT,
                    value=console_model,
                    default_value=aws_cloudwatch.DefaultValue.value(console_model),
                    visible=True,
                )
            ],
        )
        arn = self.console.function.function_arn

        def widget(
            title: str, params: dict[str, str], *, width: int, height: int
        ) -> aws_cloudwatch.CustomWidget:
            return aws_cloudwatch.CustomWidget(
                function_arn=arn,
                title=title,
                params=params,
                width=width,
                height=height,
                update_on_resize=False,
                update_on_time_range_change=False,
            )

        dashboard.add_widgets(
            widget("Models", {"page": "models"}, width=24, height=5),
        )
        dashboard.add_widgets(
            widget(
                "Versions, aliases and card", {"page": "model", "model": console_model}, width=12, height=12
            ),
            widget("Training runs", {"page": "runs", "model": console_model}, width=12, height=12),
        )
        dashboard.add_widgets(
            widget("Routing and bandit", {"page": "routing", "model": console_model}, width=12, height=12),
            widget("Drift", {"page": "drift", "model": console_model}, width=12, height=12),
        )
        return dashboard


def _emf(
    name: str, service: str, *, period: Duration, label: str | None = None, statistic: str = "Sum"
) -> aws_cloudwatch.Metric:
    """A metric the functions emit (Powertools EMF: the namespace and the `service` dimension)."""
    return aws_cloudwatch.Metric(
        namespace=METRICS_NAMESPACE,
        metric_name=name,
        dimensions_map={"service": service},
        statistic=statistic,
        period=period,
        label=label,
    )


def _service_of(function: ServiceFunction) -> str:
    return str(function.service_name)


def _name_of(function: ServiceFunction) -> str:
    """An alarm's name part from the function's construct path: `Training/Evaluate` -> TrainingEvaluate."""
    parts = function.node.path.split("/")[1:]
    return "".join(part[:1].upper() + part[1:] for part in parts if part)
