"""The `ServerlessMlops` stack: storage, layers, and the API with its functions.

Operational knobs come from CDK context (cdk.json, or `-c key=value` on the command
line) so that an operator can tune them without editing code; the defaults here are
what the project is tested with.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack, aws_logs
from constructs import Construct

from infra.cdk.constructs.api import ApiConstruct, ApiLimits, SnapStartOption
from infra.cdk.constructs.batch import ROUTES as BATCH_ROUTES
from infra.cdk.constructs.batch import BatchConstruct
from infra.cdk.constructs.capture import CaptureConstruct
from infra.cdk.constructs.console import ConsoleConstruct, Watched
from infra.cdk.constructs.events import EventsConstruct
from infra.cdk.constructs.features import FeaturesConstruct
from infra.cdk.constructs.feedback import FeedbackConstruct
from infra.cdk.constructs.feedback_capture import FeedbackCaptureConstruct
from infra.cdk.constructs.functions import ServiceFunction
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.monitoring import DRIFT_ROUTES, MonitoringConstruct
from infra.cdk.constructs.retraining import RetrainingConstruct
from infra.cdk.constructs.rewards import RewardsConstruct
from infra.cdk.constructs.rollout import RolloutConstruct
from infra.cdk.constructs.storage import StorageConstruct
from infra.cdk.constructs.stream_inference import StreamInferenceConstruct
from infra.cdk.constructs.training import TrainingConstruct

#: Prefix of this project's context keys in cdk.json.
CONTEXT_PREFIX = "serverless-mlops:"


@dataclass(frozen=True)
class StackSettings:
    """Tunable settings of the stack, read from `serverless-mlops:<field>` context keys.

    `log_retention` is the name of a CloudWatch retention period (`aws_logs.RetentionDays`,
    e.g. "THREE_MONTHS"); the API limits are numbers. `snapstart` (true/false) deploys the
    inference function with Lambda SnapStart behind a `live` alias, preloading the models
    named in `snapstart_models` (comma-separated); see docs/infrastructure.md.
    """

    log_retention: str = "THREE_MONTHS"
    api: ApiLimits = field(default_factory=ApiLimits)
    snapstart: SnapStartOption = field(default_factory=SnapStartOption)

    @classmethod
    def from_context(cls, scope: Construct) -> StackSettings:
        def read(name: str, default: Any) -> Any:
            value = scope.node.try_get_context(f"{CONTEXT_PREFIX}{name}")
            if value is None:
                return default
            try:  # `-c key=value` on the command line arrives as a string
                return _boolean(value) if isinstance(default, bool) else type(default)(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"context {CONTEXT_PREFIX}{name}={value!r}: {error}") from error

        defaults = cls()
        limits = {
            limit.name: read(limit.name, getattr(defaults.api, limit.name)) for limit in fields(ApiLimits)
        }
        settings = cls(
            log_retention=read("log_retention", defaults.log_retention),
            api=ApiLimits(**limits),
            snapstart=SnapStartOption(
                enabled=read("snapstart", defaults.snapstart.enabled),
                models=read("snapstart_models", defaults.snapstart.models),
            ),
        )
        settings.log_retention_period()  # fail at synth, not at deploy, on a bad name
        return settings

    def log_retention_period(self) -> aws_logs.RetentionDays:
        try:
            return aws_logs.RetentionDays[self.log_retention]
        except KeyError:
            valid = ", ".join(member.name for member in aws_logs.RetentionDays)
            raise ValueError(
                f"context {CONTEXT_PREFIX}log_retention={self.log_retention!r} is not one of: {valid}"
            ) from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "false"):
        return text == "true"
    raise ValueError("expected true or false")


class ServerlessMlopsStack(Stack):
    """Everything the deployed system needs, one construct per domain."""

    def __init__(self, scope: Construct, construct_id: str, *, repo_root: Path, **kwargs: Any) -> None:
        super().__init__(scope, construct_id, **kwargs)
        settings = StackSettings.from_context(self)

        self.storage = StorageConstruct(self, "Storage")
        self.layers = LayersConstruct(self, "Layers", repo_root=repo_root)
        self.events = EventsConstruct(self, "Events")
        self.api = ApiConstruct(
            self,
            "Api",
            storage=self.storage,
            event_bus=self.events.bus,
            layers=self.layers,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
            limits=settings.api,
            snapstart=settings.snapstart,
        )

        self.capture = CaptureConstruct(
            self,
            "Capture",
            storage=self.storage,
            layers=self.layers,
            source=self.api.inference,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.feedback = FeedbackConstruct(
            self,
            "Feedback",
            storage=self.storage,
            capture=self.capture,
            api=self.api,
            layers=self.layers,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.rewards = RewardsConstruct(
            self,
            "Rewards",
            storage=self.storage,
            layers=self.layers,
            predictions_table=self.capture.predictions_table,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.feedback_capture = FeedbackCaptureConstruct(
            self,
            "FeedbackCapture",
            storage=self.storage,
            layers=self.layers,
            predictions_table=self.capture.predictions_table,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.training = TrainingConstruct(
            self,
            "Training",
            storage=self.storage,
            layers=self.layers,
            event_bus=self.events.bus,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
            code_version=code_version(repo_root),
        )
        self.retraining = RetrainingConstruct(
            self,
            "Retraining",
            storage=self.storage,
            layers=self.layers,
            event_bus=self.events.bus,
            state_machine=self.training.state_machine,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.features = FeaturesConstruct(
            self,
            "Features",
            storage=self.storage,
            layers=self.layers,
            api=self.api,
            event_bus=self.events.bus,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.api.add_iam_routes(
            self.training.api.function,
            [("/training", "POST"), ("/runs/{run_id}", "GET"), ("/models/{name}/runs", "GET")],
        )
        self.rollout = RolloutConstruct(
            self,
            "Rollout",
            storage=self.storage,
            layers=self.layers,
            event_bus=self.events.bus,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.monitoring = MonitoringConstruct(
            self,
            "Monitoring",
            storage=self.storage,
            layers=self.layers,
            event_bus=self.events.bus,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.api.add_iam_routes(
            self.rollout.api.function,
            [
                ("/models/{name}/rollouts", "POST"),
                ("/models/{name}/rollouts", "GET"),
                ("/models/{name}/rollouts/{rollout_id}", "GET"),
                ("/models/{name}/rollouts/{rollout_id}/abort", "POST"),
            ],
        )
        self.api.add_iam_routes(self.monitoring.api.function, DRIFT_ROUTES)
        # Streaming inference (constructs/stream_inference.py).
        self.stream_inference = StreamInferenceConstruct(
            self,
            "StreamInference",
            storage=self.storage,
            layers=self.layers,
            capture=self.capture,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.batch = BatchConstruct(
            self,
            "Batch",
            storage=self.storage,
            layers=self.layers,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
        )
        self.api.add_iam_routes(self.batch.api.function, BATCH_ROUTES)
        # Seeing it: the console function, the dashboards and the operations alarms (one topic),
        # declared last so that every function above is watched.
        self.console = ConsoleConstruct(
            self,
            "Console",
            storage=self.storage,
            layers=self.layers,
            functions_dir=repo_root / "functions",
            log_retention=settings.log_retention_period(),
            alarm_topic=self.monitoring.alarm_topic,
            watched=Watched(
                rest_api=self.api.rest_api,
                training=self.training.state_machine,
                functions=[c for c in self.node.find_all() if isinstance(c, ServiceFunction)],
            ),
        )
        self.console.adopt_alarm(self.features.freshness_alarm)

        CfnOutput(self, "ApiUrl", value=self.api.rest_api.url, description="Base URL of the prod stage")
        CfnOutput(self, "ArtifactsBucketName", value=self.storage.artifacts_bucket.bucket_name)
        CfnOutput(self, "MetadataTableName", value=self.storage.metadata_table.table_name)
        CfnOutput(
            self,
            "PredictApiKeyId",
            value=self.api.predict_api_key.key_id,
            description="`aws apigateway get-api-key --include-value --api-key <id>` prints the key",
        )
        CfnOutput(self, "InferenceFunctionName", value=self.api.inference.function.function_name)
        CfnOutput(self, "RegistryFunctionName", value=self.api.registry.function.function_name)
        CfnOutput(self, "TrainingStateMachineArn", value=self.training.state_machine.state_machine_arn)
        CfnOutput(self, "RolloutStateMachineArn", value=self.rollout.state_machine.state_machine_arn)
        CfnOutput(self, "EventBusName", value=self.events.bus.event_bus_name)
        CfnOutput(self, "PredictionsTableName", value=self.capture.predictions_table.table_name)
        CfnOutput(self, "FeaturesTableName", value=self.features.table.table_name)
        CfnOutput(
            self,
            "RewardsFailedRecordsQueueUrl",
            value=self.rewards.failed_records.queue_url,
            description="Feedback stream batches the rewards function could not count after its retries",
        )
        CfnOutput(self, "DriftFunctionName", value=self.monitoring.drift.function.function_name)
        CfnOutput(self, "ConsoleFunctionName", value=self.console.console.function.function_name)
        CfnOutput(
            self,
            "OperationsDashboardName",
            value=self.console.operations.dashboard_name,
            description="CloudWatch dashboard: requests, latency, errors, training, drift, alarms",
        )
        CfnOutput(
            self,
            "ModelsDashboardName",
            value=self.console.models.dashboard_name,
            description="CloudWatch dashboard: the model console (custom widgets); pick the model at the top",
        )
        CfnOutput(
            self,
            "AlarmTopicArn",
            value=self.monitoring.alarm_topic.topic_arn,
            description="Operations alarms (API, functions, integrity, training, drift): subscribe here",
        )
        CfnOutput(
            self,
            "FailedFeedbackBatchesQueueUrl",
            value=self.feedback_capture.failed_batches.queue_url,
            description="Feedback batches the feedback-capture function could not write after its retries",
        )
        CfnOutput(
            self,
            "FailedRetrainEventsQueueUrl",
            value=self.retraining.failed_events.queue_url,
            description="DriftDetected events the retrain function could not handle after its retries",
        )
        CfnOutput(
            self,
            "NotificationsQueueUrl",
            value=self.events.notifications.queue_url,
            description="Model lifecycle, training-failure and drift events, for notifiers",
        )
        CfnOutput(self, "BatchStateMachineArn", value=self.batch.state_machine.state_machine_arn)

        CfnOutput(
            self,
            "StreamInputName",
            value=self.stream_inference.input_stream.stream_name,
            description="Kinesis stream of records to score: {model, features, [record_id]}",
        )
        CfnOutput(
            self,
            "StreamOutputName",
            value=self.stream_inference.output_stream.stream_name,
            description="Kinesis stream of the results, one record per partition key and batch, in order",
        )
        CfnOutput(
            self,
            "StreamFailedRecordsQueueUrl",
            value=self.stream_inference.failed_records.queue_url,
            description="Poison records of the input stream (shard and sequence numbers), after the retries",
        )


def code_version(repo_root: Path) -> str:
    """The commit being deployed (recorded on every training run), or "unknown"."""
    git = shutil.which("git")
    if git is None:
        return "unknown"
    try:
        result = subprocess.run(  # noqa: S603 - fixed arguments; git found by shutil.which
            [git, "rev-parse", "--short=12", "HEAD"],
            cwd=repo_root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"
