"""The feature store: the features table (the online store), the lookup function, the
materialize function with its schedule and its on-demand rule, and the freshness alarm.

  GET  /features/{view}/{entity_id}                         lookup        API key + usage plan
  POST /features/{view}                                     lookup        API key (up to 100 entities)
  GET  /feature-views                                       materialize   IAM
  PUT  /feature-views/{view}, GET /feature-views/{view}     materialize   IAM
  POST /feature-views/{view}/materializations (+ GET)       materialize   IAM
  GET  /feature-views/{view}/materializations/{run_id}      materialize   IAM
  GET  /feature-views/{view}/freshness                      materialize   IAM

The batch route is ``POST /features/{view}``, not ``/features/{view}:batch-get``: an API
Gateway path part is either a whole ``{parameter}`` or literal text, so ``{view}:batch-get``
cannot be declared (and a literal ``batch-get`` beside ``{entity_id}`` would hide the entity
of that id). See docs/decision_log.md.

Roles: the lookup function may only GetItem/BatchGetItem the features table and GetItem the
views' items of the metadata table; the materialize function reads sources under
``feature-sources/``, reads and writes the features table (no deletes: DynamoDB's TTL
expires rows) and the ``FEATURE_VIEW#`` items of the metadata table, puts events, and
starts the partitioned workflow (``features_partitions.py``) for a run too large for it.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import (
    Duration,
    RemovalPolicy,
    aws_cloudwatch,
    aws_dynamodb,
    aws_events,
    aws_events_targets,
    aws_iam,
    aws_logs,
)
from constructs import Construct

from infra.cdk.constructs.api import ApiConstruct
from infra.cdk.constructs.features_partitions import FeaturePartitionsConstruct, single_run_max_bytes
from infra.cdk.constructs.functions import METRICS_NAMESPACE, ServiceFunction
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.events import EVENT_SOURCE
from mlops_core.features.entities import DISPATCH_MINUTES
from mlops_core.features.events import FeatureMaterializationRequested
from mlops_core.storage import keys

LOOKUP_ROUTES = (("/features/{view}/{entity_id}", "GET"), ("/features/{view}", "POST"))
ADMIN_ROUTES = [
    ("/feature-views", "GET"),
    ("/feature-views/{view}", "PUT"),
    ("/feature-views/{view}", "GET"),
    ("/feature-views/{view}/materializations", "POST"),
    ("/feature-views/{view}/materializations", "GET"),
    ("/feature-views/{view}/materializations/{run_id}", "GET"),
    ("/feature-views/{view}/freshness", "GET"),
]
#: The materializer's timeout: one run (and the view's writer lease) lasts at most this long.
MATERIALIZE_TIMEOUT = Duration.minutes(15)
#: The materializer's memory: what one run holds decides when a run is partitioned.
MATERIALIZE_MEMORY_MB = 2048
#: What the freshness alarm watches (emitted by the dispatcher every DISPATCH_MINUTES).
STALE_VIEWS_METRIC = "StaleFeatureViews"


class FeaturesConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        layers: LayersConstruct,
        api: ApiConstruct,
        event_bus: aws_events.IEventBus,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)

        # One item per (view, entity), keyed `{view}#{entity}` alone: any 100 of them, of
        # any views, are one BatchGetItem. Derived data (rebuilt from the sources), but kept
        # with PITR like every table of the stack; TTL deletes rows past their view's TTL.
        self.table = aws_dynamodb.Table(
            self,
            "FeaturesTable",
            partition_key=aws_dynamodb.Attribute(
                name=keys.FEATURE_KEY, type=aws_dynamodb.AttributeType.STRING
            ),
            billing_mode=aws_dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=keys.EXPIRES_AT,
            point_in_time_recovery_specification=aws_dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=aws_dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.lookup = ServiceFunction(
            self,
            "Lookup",
            service_name="features",
            description="Online features by entity id (one GetItem, or one BatchGetItem for up to 100).",
            code_dir=functions_dir / "features",
            handler="handler.lambda_handler",
            layers=[layers.core],
            memory_size=512,
            timeout=Duration.seconds(10),
            environment={
                "METADATA_TABLE": storage.metadata_table.table_name,
                "FEATURES_TABLE": self.table.table_name,
            },
            log_retention=log_retention,
        )
        self.lookup.role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:BatchGetItem"], resources=[self.table.table_arn]
            )
        )
        self.lookup.role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem"],
                resources=[storage.metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.feature_view_pk("*")]}},
            )
        )

        self.materialize = ServiceFunction(
            self,
            "Materialize",
            service_name="materialize",
            description="Feature views (apply, list), materialization (scheduled and on demand), freshness.",
            code_dir=functions_dir / "materialize",
            handler="handler.lambda_handler",
            layers=[layers.core],
            # 1,769 MB is one full vCPU: parsing 300,000 rows and encoding 100,000 items is CPU work.
            memory_size=MATERIALIZE_MEMORY_MB,
            timeout=MATERIALIZE_TIMEOUT,
            environment={
                "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
                "METADATA_TABLE": storage.metadata_table.table_name,
                "FEATURES_TABLE": self.table.table_name,
                "EVENT_BUS_NAME": event_bus.event_bus_name,
                "MATERIALIZE_WORKERS": "8",
            },
            log_retention=log_retention,
        )
        role = self.materialize.role
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:BatchGetItem",
                    "dynamodb:PutItem",
                    "dynamodb:BatchWriteItem",
                ],
                resources=[self.table.table_arn],
            )
        )
        # Views, versions, state, lease, source marks and run records: FEATURE_VIEW# items only
        # (transactions are authorised per item, as PutItem).
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=[
                    "dynamodb:GetItem",
                    "dynamodb:Query",
                    "dynamodb:PutItem",
                    "dynamodb:UpdateItem",
                    "dynamodb:BatchWriteItem",
                ],
                resources=[storage.metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.feature_view_pk("*")]}},
            )
        )
        # Listing views queries the index (partition FEATURE_VIEWS); LeadingKeys names the
        # table's partition key, not the index's, so this read is by index ARN only.
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(actions=["dynamodb:Query"], resources=[storage.metadata_index_arn])
        )
        # apply refuses a definition that breaks a deployed model: it reads the USED_BY# items
        # (above), and of those models their aliases, routing policy and versions (read only).
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["dynamodb:GetItem", "dynamodb:Query"],
                resources=[storage.metadata_table.table_arn],
                conditions={"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [keys.model_pk("*")]}},
            )
        )
        storage.grant_prefix_read(role, keys.FEATURE_SOURCES_PREFIX)
        storage.grant_prefix_list(role, keys.FEATURE_SOURCES_PREFIX)
        event_bus.grant_put_events_to(role)

        # Predictions by entity id: the inference function reads online rows with one
        # BatchGetItem per request, its only call on the store (no GetItem: read_many is used
        # even for one row); the views are named in the signatures (no definitions read).
        api.inference.function.add_environment("FEATURES_TABLE", self.table.table_name)
        api.inference.role.add_to_principal_policy(
            aws_iam.PolicyStatement(actions=["dynamodb:BatchGetItem"], resources=[self.table.table_arn])
        )

        # A run whose chosen objects are more than this function holds: a Distributed Map.
        self.partitions = FeaturePartitionsConstruct(
            self,
            "Partitions",
            storage=storage,
            layers=layers,
            features_table=self.table,
            event_bus=event_bus,
            functions_dir=functions_dir,
            log_retention=log_retention,
        )
        self.materialize.function.add_environment(
            "MATERIALIZE_PARTITION_STATE_MACHINE_ARN", self.partitions.state_machine.state_machine_arn
        )
        self.materialize.function.add_environment(
            "MATERIALIZE_SINGLE_RUN_MAX_BYTES", str(single_run_max_bytes(MATERIALIZE_MEMORY_MB))
        )
        self.partitions.state_machine.grant_start_execution(role)

        target = aws_events_targets.LambdaFunction(
            self.materialize.function, retry_attempts=2, max_event_age=Duration.hours(1)
        )
        # One template schedule for every view: each view's own `schedule` is data, checked
        # by the dispatcher on every tick (a view is due once its schedule has passed).
        self.schedule = aws_events.Rule(
            self,
            "Dispatch",
            description="Materialize the feature views that are due; emit every view's freshness",
            schedule=aws_events.Schedule.rate(Duration.minutes(DISPATCH_MINUTES)),
            targets=[target],
        )
        self.on_demand = aws_events.Rule(
            self,
            "OnDemand",
            event_bus=event_bus,
            description="On-demand materializations requested through the API",
            event_pattern=aws_events.EventPattern(
                source=[EVENT_SOURCE], detail_type=[FeatureMaterializationRequested.detail_type()]
            ),
            targets=[target],
        )

        # A view whose newest row is older than its freshness target; missing data (the
        # dispatcher not running) is breaching too: freshness then cannot be vouched for.
        # No action yet: the stack's alarm topic (a MonitoringConstruct) adds its own with
        # `features.freshness_alarm.add_alarm_action(...)`.
        self.freshness_alarm = aws_cloudwatch.Alarm(
            self,
            "StaleFeatureViews",
            alarm_description="A feature view's newest row is older than its freshness target "
            "(`mlops features freshness` names it), or the materializer's schedule stopped reporting. "
            "Runbook: docs/operations.md#stalefeatureviews.",
            metric=aws_cloudwatch.Metric(
                namespace=METRICS_NAMESPACE,
                metric_name=STALE_VIEWS_METRIC,
                dimensions_map={"service": "materialize"},
                statistic="Maximum",
                period=Duration.minutes(DISPATCH_MINUTES),
            ),
            threshold=1,
            comparison_operator=aws_cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluation_periods=2,
            datapoints_to_alarm=2,
            treat_missing_data=aws_cloudwatch.TreatMissingData.BREACHING,
        )

        for path, method in LOOKUP_ROUTES:
            api.add_api_key_route(
                self.lookup.function,
                path,
                method,
                reason="Online features are read by the application teams that call predict, with the "
                "same API key and usage plan (throttle and daily quota).",
            )
        api.add_iam_routes(self.materialize.function, ADMIN_ROUTES)
