"""Template properties moto's CloudFormation misreads or drops, and how the local stack makes up for them.

moto 5.2.5's ``create_stack`` builds each resource from a subset of its properties: a
bucket keeps its encryption and tags and loses everything else (versioning, public
access block, ownership controls, lifecycle, logging); a table loses point-in-time
recovery and its TTL; a function loses its tags, tracing, logging config and layers;
bucket and queue policies are skipped. Left alone, the local bucket would be
unversioned and nothing would be pinned by S3 object version.

This module is the one place that knows it. Before creation, ``respell_for_moto``
writes the properties moto reads under another name or shape (an archive's event
pattern, a key's policy, a table's SSE flag, a Ref to an event bus). moto's CloudFormation
creates no alarms and no topic policies: they are made through the API after creation. After creation,
``apply_dropped_properties`` applies every dropped property that moto can represent,
through the AWS API, from the template's own (resolved) property values.
``KNOWN_GAPS`` names the properties that do not hold locally and why, and
``NOT_EMULATED`` the resource types the local stack does not rely on moto for.
``tests/infra/test_local_fidelity.py`` compares every declared property with what the
local resource reports, and fails on any mismatch that is not listed here, or on a
listed gap that moto starts to represent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: Resource types the comparison leaves out, and why.
NOT_EMULATED: dict[str, str] = {
    "AWS::CDK::Metadata": "removed before deploying (no runtime effect)",
    **dict.fromkeys(
        (
            "AWS::ApiGateway::RestApi",
            "AWS::ApiGateway::Resource",
            "AWS::ApiGateway::Method",
            "AWS::ApiGateway::Deployment",
            "AWS::ApiGateway::Stage",
            "AWS::ApiGateway::ApiKey",
            "AWS::ApiGateway::UsagePlan",
            "AWS::ApiGateway::UsagePlanKey",
            "AWS::ApiGateway::RequestValidator",
            "AWS::ApiGateway::Account",
        ),
        "the local gateway (infra/local/gateway.py) serves the template's routes; moto's API "
        "Gateway is not in the request path (no stage throttling, usage plan or quota; one local API key)",
    ),
    "AWS::ApiGateway::GatewayResponse": "rendered by the local gateway from the template itself "
    "(infra/local/gateway.py; tests/infra/test_infra_gateway_responses.py compares its answers)",
    **dict.fromkeys(
        ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::Lambda::Permission"),
        "created, never enforced: moto authorises every call (tests/infra checks each grant)",
    ),
    "AWS::Lambda::LayerVersion": "created without content; see Layers of AWS::Lambda::Function",
    "AWS::CloudWatch::Alarm": "never evaluated locally: the functions' EMF metrics go to "
    ".local-stack/functions.log, not to CloudWatch (`mlops features freshness` reports what the feature "
    "store's alarm watches); tests/infra checks the alarm's declaration",
    "AWS::Logs::SubscriptionFilter": "delivered by the local stack itself (infra/local/log_subscriptions.py: "
    "the matching lines a function prints reach the destination within a second); moto never delivers",
    "AWS::Lambda::EventSourceMapping": "run by the local stack itself (infra/local/stream_mappings.py: "
    "DynamoDB-stream mappings polled through the Streams API, with their filter criteria, batch size and "
    "window, bisection, partial batch responses, retries and on-failure queue; Kinesis mappings the same "
    "way through the Kinesis API (no filter criteria); any other property is refused at start); moto's "
    "would invoke the function inside the writer's request, unfiltered, and never from Kinesis",
    "AWS::Lambda::EventInvokeConfig": "not applied: a local delivery that fails is logged with its trace, "
    "not retried or sent to the failure destination",
}

#: (resource type, property) -> why the property does not hold locally. "*" is the whole resource.
KNOWN_GAPS: dict[tuple[str, str], str] = {
    ("AWS::S3::BucketPolicy", "*"): (
        "not applied: moto evaluates a policy's Deny statements without their conditions (it evaluates "
        "StringEquals only), so the TLS-only statements (aws:SecureTransport false, s3:TlsVersion < 1.2) "
        "would deny every object request; the local endpoint is plain HTTP anyway"
    ),
    ("AWS::S3::Bucket", "LoggingConfiguration"): (
        "not applied: moto accepts it only if the target bucket's policy grants log delivery (that policy "
        "is not applied, see AWS::S3::BucketPolicy), and moto never delivers access logs"
    ),
    ("AWS::Events::EventBus", "Description"): (
        "moto's CloudFormation drops it and moto has no UpdateEventBus; a description has no runtime effect"
    ),
    ("AWS::Lambda::Function", "TracingConfig"): (
        "moto's CloudFormation drops it and its UpdateFunctionConfiguration ignores it; there is no "
        "X-Ray locally (the local stack sets POWERTOOLS_TRACE_DISABLED)"
    ),
    ("AWS::Lambda::Function", "LoggingConfig"): (
        "moto has no logging configuration; the functions' logs go to .local-stack/functions.log"
    ),
    ("AWS::Lambda::Function", "Layers"): (
        "not attached: layer assets are not built for the local stack; handlers import the same pinned "
        "packages from the project's environment"
    ),
    ("AWS::Lambda::Function", "Code"): (
        "handlers are imported from this checkout (the mlops:source tag), not from the code asset"
    ),
}


#: What the local stack does differently from AWS on purpose, beyond the template: setting ->
#: what and why. (Set by ``infra.local.stack``; tests/unit/test_local_behaviour.py checks each.)
LOCAL_BEHAVIOUR: dict[str, str] = {
    "MLOPS_ROLLOUT_MAX_WAIT_SECONDS": (
        "a rollout's Bake waits at most 20 s locally (the record keeps the bake asked for and the "
        "wait used): moto's interpreter waits in real time, and a `--bake 10m` rollout of three "
        "steps would take half an hour. Set it before `mlops up` to change it; AWS waits the bake"
    ),
    "MLOPS_SAGEMAKER_UNAVAILABLE": (
        "training never leaves the Lambda trainer locally: moto accepts CreateTrainingJob but runs "
        'nothing, so `compute: sagemaker` is refused with a 422 ("not available on the local stack") '
        "before a run starts, and the dataset-size threshold that sends large datasets to SageMaker "
        "on AWS does not apply"
    ),
    "MLOPS_ROUTING_HISTORY_BUCKET_SECONDS": (
        "the routing history's time buckets are 10 s locally (5 minutes on AWS): a local session's "
        "predictions and feedback span minutes, which 5-minute buckets would chart as one or two "
        "points. Set it before `mlops up` to change it"
    ),
}


def respell_for_moto(template: dict[str, Any]) -> dict[str, Any]:
    """The template with the properties moto reads under another name or shape spelled its way."""
    for resource in template["Resources"].values():
        properties = resource.get("Properties", {})
        kind = resource["Type"]
        if kind == "AWS::Events::Archive" and isinstance(properties.get("EventPattern"), dict):
            # moto's Archive keeps the pattern as given and fails on an object (its Rule dumps it).
            properties["EventPattern"] = json.dumps(properties["EventPattern"])
        elif kind == "AWS::KMS::Key" and isinstance(properties.get("KeyPolicy"), dict):
            # moto's Key keeps the policy as given and fails to describe itself with an object;
            # as text its Refs stay unresolved, so the resolved policy is put after creation.
            properties["KeyPolicy"] = json.dumps(properties["KeyPolicy"])
        elif kind == "AWS::DynamoDB::Table" and "SSEEnabled" in properties.get("SSESpecification", {}):
            # CloudFormation spells it SSEEnabled, the API (which moto's table reads) Enabled.
            properties["SSESpecification"]["Enabled"] = properties["SSESpecification"]["SSEEnabled"]
    return _bus_refs_as_names(template, template)


def _bus_refs_as_names(template: dict[str, Any], node: Any) -> Any:
    """moto resolves a Ref to an event bus to its model object, not its name: use the name."""
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Events::EventBus" and "Name" in resource.get("Properties", {}):
            node = _replace(node, {"Ref": logical_id}, resource["Properties"]["Name"])
    return node


def _replace(node: Any, old: Any, new: Any) -> Any:
    if node == old:
        return new
    if isinstance(node, dict):
        return {k: _replace(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace(v, old, new) for v in node]
    return node


# ---- after creation ------------------------------------------------------------------------
Applier = Callable[[str, Any], None]


def _client(service: str) -> Any:
    import boto3

    return boto3.client(service)


def _bucket_versioning(bucket: str, value: Any) -> None:
    _client("s3").put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": value["Status"]})


def _public_access_block(bucket: str, value: Any) -> None:
    _client("s3").put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=value)


def _ownership_controls(bucket: str, value: Any) -> None:
    _client("s3").put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={"Rules": value["Rules"]})


# CloudFormation's lifecycle rule properties -> the API's (PutBucketLifecycleConfiguration).
_LIFECYCLE_RULE = {
    "Id": lambda v: {"ID": v},
    "Status": lambda v: {"Status": v},
    "Prefix": lambda v: {"Filter": {"Prefix": v}},
    "ExpirationInDays": lambda v: {"Expiration": {"Days": v}},
    "ExpirationDate": lambda v: {"Expiration": {"Date": v}},
    "ExpiredObjectDeleteMarker": lambda v: {"Expiration": {"ExpiredObjectDeleteMarker": v}},
    "AbortIncompleteMultipartUpload": lambda v: {"AbortIncompleteMultipartUpload": v},
    "NoncurrentVersionExpiration": lambda v: {"NoncurrentVersionExpiration": v},
    "NoncurrentVersionExpirationInDays": lambda v: {"NoncurrentVersionExpiration": {"NoncurrentDays": v}},
}


def lifecycle_rule_for_api(rule: dict[str, Any]) -> dict[str, Any]:
    """One CloudFormation lifecycle rule in the API's shape; an unknown property is an error, not a drop."""
    unknown = sorted(set(rule) - set(_LIFECYCLE_RULE))
    if unknown:
        raise ValueError(
            f"lifecycle rule property {', '.join(unknown)} is not translated for the local stack"
        )
    converted: dict[str, Any] = {"Filter": {}}
    for name, value in rule.items():
        for key, part in _LIFECYCLE_RULE[name](value).items():
            converted[key] = (
                {**converted[key], **part} if isinstance(part, dict) and key in converted else part
            )
    return converted


def _lifecycle(bucket: str, value: Any) -> None:
    _client("s3").put_bucket_lifecycle_configuration(
        Bucket=bucket, LifecycleConfiguration={"Rules": [lifecycle_rule_for_api(r) for r in value["Rules"]]}
    )


def _point_in_time_recovery(table: str, value: Any) -> None:
    _client("dynamodb").update_continuous_backups(
        TableName=table,
        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": value["PointInTimeRecoveryEnabled"]},
    )


def _time_to_live(table: str, value: Any) -> None:
    _client("dynamodb").update_time_to_live(
        TableName=table,
        TimeToLiveSpecification={"AttributeName": value["AttributeName"], "Enabled": value["Enabled"]},
    )


def _function_tags(function: str, value: Any) -> None:
    lambda_client = _client("lambda")
    arn = lambda_client.get_function(FunctionName=function)["Configuration"]["FunctionArn"]
    lambda_client.tag_resource(Resource=arn, Tags={t["Key"]: t["Value"] for t in value})


def _stream_encryption(stream: str, value: Any) -> None:
    _client("kinesis").start_stream_encryption(
        StreamName=stream, EncryptionType=value["EncryptionType"], KeyId=value["KeyId"]
    )


def _state_machine_logging(arn: str, value: Any) -> None:
    _client("stepfunctions").update_state_machine(
        stateMachineArn=arn,
        loggingConfiguration={
            "level": value.get("Level", "OFF"),
            "includeExecutionData": value.get("IncludeExecutionData", False),
            "destinations": [
                {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
                for d in value.get("Destinations", [])
            ],
        },
    )


def _state_machine_tracing(arn: str, value: Any) -> None:
    _client("stepfunctions").update_state_machine(
        stateMachineArn=arn, tracingConfiguration={"enabled": bool(value.get("Enabled", False))}
    )


def _queue_policy(_: str, value: Any) -> None:
    sqs = _client("sqs")
    for queue_url in value["Queues"]:
        sqs.set_queue_attributes(
            QueueUrl=queue_url, Attributes={"Policy": json.dumps(value["PolicyDocument"])}
        )


def _key_policy(key_id: str, value: Any) -> None:
    _client("kms").put_key_policy(KeyId=key_id, PolicyName="default", Policy=json.dumps(value))


def _topic_policy(_: str, value: Any) -> None:
    sns = _client("sns")
    for topic_arn in value["Topics"]:
        sns.set_topic_attributes(
            TopicArn=topic_arn, AttributeName="Policy", AttributeValue=json.dumps(value["PolicyDocument"])
        )


def _alarm(logical_id: str, value: Any) -> None:
    """moto's CloudFormation has no alarms: create it through the API, named after its
    logical id when the template names it not (CloudFormation would add a suffix)."""
    properties = dict(value)
    properties.setdefault("AlarmName", logical_id)
    _client("cloudwatch").put_metric_alarm(**properties)


#: (resource type, property) -> how to apply it to the created resource (its physical id;
#: for a resource moto does not create, its logical id).
#: "*" takes the resource's whole property map (a resource moto does not create at all).
APPLIED: dict[tuple[str, str], Applier] = {
    ("AWS::S3::Bucket", "VersioningConfiguration"): _bucket_versioning,
    ("AWS::S3::Bucket", "PublicAccessBlockConfiguration"): _public_access_block,
    ("AWS::S3::Bucket", "OwnershipControls"): _ownership_controls,
    ("AWS::S3::Bucket", "LifecycleConfiguration"): _lifecycle,
    ("AWS::DynamoDB::Table", "PointInTimeRecoverySpecification"): _point_in_time_recovery,
    ("AWS::DynamoDB::Table", "TimeToLiveSpecification"): _time_to_live,
    ("AWS::Lambda::Function", "Tags"): _function_tags,
    ("AWS::StepFunctions::StateMachine", "LoggingConfiguration"): _state_machine_logging,
    ("AWS::StepFunctions::StateMachine", "TracingConfiguration"): _state_machine_tracing,
    ("AWS::SQS::QueuePolicy", "*"): _queue_policy,
    ("AWS::KMS::Key", "KeyPolicy"): _key_policy,
    ("AWS::SNS::TopicPolicy", "*"): _topic_policy,
    ("AWS::CloudWatch::Alarm", "*"): _alarm,
    ("AWS::Kinesis::Stream", "StreamEncryption"): _stream_encryption,
}


def resolver(template: dict[str, Any], stack_name: str) -> Callable[[Any], Any]:
    """Resolve Ref / Fn::GetAtt / Fn::Join ... in the template's values as moto resolved them.

    Uses moto's own resolver and the stack's resource map (the moto server runs in this
    process), so a value applied here is what moto would have applied.
    """
    import boto3
    from moto.cloudformation.models import cloudformation_backends
    from moto.cloudformation.parsing import clean_json

    session = boto3.session.Session()
    account = boto3.client("sts").get_caller_identity()["Account"]
    resource_map = cloudformation_backends[account][session.region_name].get_stack(stack_name).resource_map
    return lambda value: clean_json(_bus_refs_as_names(template, value), resource_map)


def apply_dropped_properties(
    template: dict[str, Any], physical_ids: dict[str, str], stack_name: str
) -> list[str]:
    """Apply every property of ``APPLIED`` that the template declares; return what was applied."""
    resolve = resolver(template, stack_name)
    applied = []
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        whole = APPLIED.get((resource["Type"], "*"))
        if whole is not None:
            whole(physical_ids.get(logical_id) or logical_id, resolve(properties))
            applied.append(f"{logical_id}")
            continue
        for name, value in properties.items():
            apply = APPLIED.get((resource["Type"], name))
            if apply is not None:
                apply(physical_ids[logical_id], resolve(value))
                applied.append(f"{logical_id}.{name}")
    return applied
