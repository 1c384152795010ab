"""Storage: the S3 artifacts bucket and the DynamoDB metadata table.

The bucket holds model artifacts (`models/{name}/{version}/...`), datasets and drift
reports; the table is the single-table registry (model versions, aliases, runs,
routing, audit). Both are retained when the stack is deleted: they are the system
of record. The grant methods are the only place that knows which actions and ARNs
each kind of access needs, so every function's role stays narrow and uniform.
"""

from __future__ import annotations

from typing import cast

from aws_cdk import (
    Acknowledgment,
    Duration,
    RemovalPolicy,
    Stack,
    Validations,
    aws_dynamodb,
    aws_iam,
    aws_s3,
)
from constructs import Construct

from mlops_core.storage import keys

# Prefixes and index names come from the one module that owns them (the deployed code's).
MODELS_PREFIX = keys.MODELS_PREFIX
METADATA_GSI = keys.LIST_INDEX

#: DynamoDB actions for reading items. (BatchGetItem is not needed; TransactGetItems
#: is authorised as GetItem.)
ITEM_READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query")
#: DynamoDB actions for writing items. TransactWriteItems has no IAM action of its own:
#: each item in the transaction is authorised as PutItem, UpdateItem or ConditionCheckItem.
#: No DeleteItem: nothing deletes, so a compromised function cannot erase the audit trail.
ITEM_WRITE_ACTIONS = (
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:ConditionCheckItem",
)
#: Reading an object and a specific version of it (the registry pins S3 version ids).
OBJECT_READ_ACTIONS = ("s3:GetObject", "s3:GetObjectVersion")
OBJECT_WRITE_ACTIONS = ("s3:PutObject",)


class StorageConstruct(Construct):
    """The artifacts bucket (plus its access-log bucket) and the metadata table."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)

        # Receives the artifacts bucket's server access logs. It does not log its own
        # access: that would loop, and cdk-nag (S1) accepts a log-destination bucket as is.
        self.access_logs_bucket = aws_s3.Bucket(
            self,
            "AccessLogsBucket",
            # Server access logging can only deliver to SSE-S3 buckets (not SSE-KMS).
            encryption=aws_s3.BucketEncryption.S3_MANAGED,
            block_public_access=aws_s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=aws_s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            lifecycle_rules=[
                aws_s3.LifecycleRule(id="expire-access-logs", expiration=Duration.days(365)),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.artifacts_bucket = aws_s3.Bucket(
            self,
            "ArtifactsBucket",
            # Versioned: the registry records the S3 version id of every artifact, so a
            # model version keeps pointing at the exact bytes it was registered with.
            versioned=True,
            encryption=aws_s3.BucketEncryption.S3_MANAGED,
            block_public_access=aws_s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=aws_s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="artifacts-bucket/",
            lifecycle_rules=[
                # Non-current versions are *not* expired: registered models reference them.
                aws_s3.LifecycleRule(
                    id="abort-incomplete-multipart-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )

        self.metadata_table = aws_dynamodb.Table(
            self,
            "MetadataTable",
            partition_key=aws_dynamodb.Attribute(name="pk", type=aws_dynamodb.AttributeType.STRING),
            sort_key=aws_dynamodb.Attribute(name="sk", type=aws_dynamodb.AttributeType.STRING),
            billing_mode=aws_dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=aws_dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=aws_dynamodb.TableEncryption.AWS_MANAGED,
            # Only the routing history's buckets carry it (routing.history.RETENTION_DAYS).
            time_to_live_attribute=keys.EXPIRES_AT,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.metadata_table.add_global_secondary_index(
            index_name=METADATA_GSI,
            partition_key=aws_dynamodb.Attribute(name="gsi1pk", type=aws_dynamodb.AttributeType.STRING),
            sort_key=aws_dynamodb.Attribute(name="gsi1sk", type=aws_dynamodb.AttributeType.STRING),
            projection_type=aws_dynamodb.ProjectionType.ALL,
        )

    # -- grants: exact actions on exact ARNs ------------------------------------------

    @property
    def metadata_index_arn(self) -> str:
        return f"{self.metadata_table.table_arn}/index/{METADATA_GSI}"

    def grant_metadata_read(self, role: aws_iam.IRole, *, index: bool = False, query: bool = True) -> None:
        """Get and query items of the metadata table (and query its index if ``index``);
        with ``query=False``, get items by key only."""
        actions = list(ITEM_READ_ACTIONS) if query else ["dynamodb:GetItem"]
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(actions=actions, resources=[self.metadata_table.table_arn])
        )
        if index:
            role.add_to_principal_policy(
                aws_iam.PolicyStatement(actions=["dynamodb:Query"], resources=[self.metadata_index_arn])
            )

    def grant_metadata_read_write(self, role: aws_iam.IRole, *, index: bool = True) -> None:
        """Read and write items of the metadata table, and query its index (unless not ``index``)."""
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=[*ITEM_READ_ACTIONS, *ITEM_WRITE_ACTIONS], resources=[self.metadata_table.table_arn]
            )
        )
        if index:
            role.add_to_principal_policy(
                aws_iam.PolicyStatement(actions=["dynamodb:Query"], resources=[self.metadata_index_arn])
            )

    def grant_prefix_read(self, role: aws_iam.IRole, prefix: str, *, versions: bool = True) -> None:
        """Read objects (any version) whose keys start with `prefix` ("" for the whole bucket);
        with ``versions=False`` the current version only (s3:GetObject: a reader that never
        asks for a version id)."""
        actions = OBJECT_READ_ACTIONS if versions else ("s3:GetObject",)
        self._grant_objects(role, actions, f"{prefix}*")

    def grant_prefix_get(self, role: aws_iam.IRole, prefix: str) -> None:
        """Read current objects (``s3:GetObject`` only, no older versions) under `prefix`."""
        self._grant_objects(role, ("s3:GetObject",), f"{prefix}*")

    def grant_prefix_list(self, role: aws_iam.IRole, prefix: str) -> None:
        """List keys under `prefix`. Without it S3 answers a read of a missing key with 403,
        not 404, and a caller's typo would look like a permissions failure (a 503)."""
        condition = {"StringLike": {"s3:prefix": [f"{prefix}*"]}} if prefix else None
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=["s3:ListBucket"], resources=[self.artifacts_bucket.bucket_arn], conditions=condition
            )
        )

    def grant_prefix_write(self, role: aws_iam.IRole, prefix: str) -> None:
        """Write objects whose keys start with `prefix`; never delete (versions are the audit trail)."""
        self._grant_objects(role, OBJECT_WRITE_ACTIONS, f"{prefix}*")

    def _grant_objects(self, role: aws_iam.IRole, actions: tuple[str, ...], key_pattern: str) -> None:
        role.add_to_principal_policy(
            aws_iam.PolicyStatement(
                actions=list(actions), resources=[self.artifacts_bucket.arn_for_objects(key_pattern)]
            )
        )
        # Object ARNs need a key pattern; the wildcard stays inside this one bucket.
        bucket_resource = cast(aws_s3.CfnBucket, self.artifacts_bucket.node.default_child)
        logical_id = Stack.of(self).get_logical_id(bucket_resource)
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{logical_id}.Arn>/{key_pattern}]",
                reason=f"Object-level {', '.join(actions)} needs a key pattern; it is limited to "
                f"'{key_pattern}' in the artifacts bucket only.",
            )
        )
