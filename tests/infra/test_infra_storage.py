"""The artifacts bucket and the metadata table: private, encrypted, recoverable, retained."""

from __future__ import annotations

import pytest
from aws_cdk.assertions import Match, Template
from synthesized_app import SynthesizedApp

pytestmark = pytest.mark.infra


def test_artifacts_bucket_is_versioned_encrypted_and_private(synthesized: SynthesizedApp) -> None:
    bucket = synthesized.resources[synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)]

    properties = bucket["Properties"]
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["BucketEncryption"] == {
        "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
    }
    assert properties["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}


@pytest.mark.parametrize("bucket_name", ["artifacts_bucket", "access_logs_bucket"])
def test_bucket_policy_denies_requests_without_tls_1_2(synthesized: SynthesizedApp, bucket_name: str) -> None:
    bucket_id = synthesized.logical_id(getattr(synthesized.stack.storage, bucket_name))
    bucket_arn = {"Fn::GetAtt": [bucket_id, "Arn"]}
    objects_arn = {"Fn::Join": ["", [bucket_arn, "/*"]]}

    synthesized.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": bucket_id},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        {
                            "Action": "s3:*",
                            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            "Effect": "Deny",
                            "Principal": {"AWS": "*"},
                            "Resource": [bucket_arn, objects_arn],
                        },
                        {
                            "Action": "s3:*",
                            "Condition": {"NumericLessThan": {"s3:TlsVersion": 1.2}},
                            "Effect": "Deny",
                            "Principal": {"AWS": "*"},
                            "Resource": [bucket_arn, objects_arn],
                        },
                    ]
                )
            },
        },
    )


def test_artifacts_bucket_logs_access_to_the_log_bucket(synthesized: SynthesizedApp) -> None:
    storage = synthesized.stack.storage
    bucket = synthesized.resources[synthesized.logical_id(storage.artifacts_bucket)]

    assert bucket["Properties"]["LoggingConfiguration"] == {
        "DestinationBucketName": {"Ref": synthesized.logical_id(storage.access_logs_bucket)},
        "LogFilePrefix": "artifacts-bucket/",
    }


def test_noncurrent_artifact_versions_are_never_expired(synthesized: SynthesizedApp) -> None:
    bucket = synthesized.resources[synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)]

    for rule in bucket["Properties"]["LifecycleConfiguration"]["Rules"]:
        assert not {"NoncurrentVersionExpiration", "ExpirationInDays", "ExpirationDate"} & rule.keys(), rule


def test_storage_is_retained_when_the_stack_is_deleted(synthesized: SynthesizedApp) -> None:
    storage = synthesized.stack.storage
    for construct in (storage.artifacts_bucket, storage.access_logs_bucket, storage.metadata_table):
        resource = synthesized.resources[synthesized.logical_id(construct)]
        assert resource["DeletionPolicy"] == "Retain", construct.node.path
        assert resource["UpdateReplacePolicy"] == "Retain", construct.node.path


def test_metadata_table_has_string_keys_and_the_gsi1_index(template: Template) -> None:
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_equals(
                [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                    {"AttributeName": "gsi1pk", "AttributeType": "S"},
                    {"AttributeName": "gsi1sk", "AttributeType": "S"},
                ]
            ),
            "GlobalSecondaryIndexes": [
                {
                    "IndexName": "gsi1",
                    "KeySchema": [
                        {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                        {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
        },
    )


def test_metadata_table_is_on_demand_recoverable_encrypted_and_protected(template: Template) -> None:
    template.resource_count_is("AWS::DynamoDB::Table", 3)  # metadata, prediction log, features
    template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
            "DeletionProtectionEnabled": True,
            "ProvisionedThroughput": Match.absent(),
        },
    )
