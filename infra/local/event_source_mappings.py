"""The template's ``AWS::Lambda::EventSourceMapping`` resources, as the local stack runs them.

``mappings_from_template`` reads each mapping into a ``StreamMapping``: the table whose
stream it reads (or the Kinesis data stream), the function it invokes, and the properties
Lambda's poller applies. Only DynamoDB-stream and Kinesis mappings and the properties in
``HONOURED`` are run locally (``stream_mappings``); anything else — another event source
(SQS), another starting position, a property no one implemented, filter criteria on a
Kinesis stream — is refused when the stack starts, so a template that needs more fails
loudly instead of behaving differently from Lambda.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.local.event_patterns import Pattern, parse_pattern

#: Properties the local poller implements.
HONOURED = frozenset(
    {
        "EventSourceArn",
        "FunctionName",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "StartingPosition",
        "BisectBatchOnFunctionError",
        "MaximumRetryAttempts",
        "FunctionResponseTypes",
        "DestinationConfig",
        "FilterCriteria",
        "Enabled",
    }
)
#: Properties accepted with no local effect, and why.
WITHOUT_EFFECT = {"Tags": "tags of the mapping itself: nothing at run time reads them"}


class UnsupportedEventSourceMapping(Exception):
    """An event source mapping the local stack cannot run the way Lambda does."""


#: The sources a local poller reads: a table's DynamoDB stream, a Kinesis data stream.
DYNAMODB_TABLE, KINESIS_STREAM = "AWS::DynamoDB::Table", "AWS::Kinesis::Stream"


@dataclass(frozen=True)
class StreamMapping:
    logical_id: str
    source: str  # logical id of the AWS::DynamoDB::Table (its stream) or the AWS::Kinesis::Stream
    function: str  # logical id of the AWS::Lambda::Function
    batch_size: int = 100
    batching_window_seconds: float = 0.0
    starting_position: str = "TRIM_HORIZON"
    bisect_on_error: bool = False
    max_retries: int = -1  # Lambda's default: until the record expires
    report_item_failures: bool = False
    on_failure: str | None = None  # logical id of the AWS::SQS::Queue
    patterns: tuple[Pattern, ...] = ()
    enabled: bool = True
    source_type: str = DYNAMODB_TABLE

    @property
    def table(self) -> str:
        """The DynamoDB table whose stream a DynamoDB mapping reads."""
        return self.source

    @property
    def kinesis(self) -> bool:
        return self.source_type == KINESIS_STREAM


def _target(value: Any, attribute: str, resources: dict[str, Any], kind: str, where: str) -> str:
    """The logical id a ``Ref`` / ``Fn::GetAtt`` in the template names, of the expected type."""
    if isinstance(value, dict) and attribute == "Ref" and "Ref" in value:
        logical_id = value["Ref"]
    elif isinstance(value, dict) and value.get("Fn::GetAtt", [None, None])[1] == attribute:
        logical_id = value["Fn::GetAtt"][0]
    else:
        raise UnsupportedEventSourceMapping(f"{where}: {value!r} is not a {kind} of this stack")
    if resources.get(logical_id, {}).get("Type") != kind:
        raise UnsupportedEventSourceMapping(f"{where}: {logical_id} is not a {kind} of this stack")
    return str(logical_id)


def mappings_from_template(template: dict[str, Any]) -> list[StreamMapping]:
    resources = template.get("Resources", {})
    found = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        properties = resource.get("Properties", {})
        unknown = sorted(set(properties) - HONOURED - set(WITHOUT_EFFECT))
        if unknown:
            raise UnsupportedEventSourceMapping(f"{logical_id}: {', '.join(unknown)} not run locally")
        function = properties["FunctionName"]
        function_id = (
            _target(function, "Arn", resources, "AWS::Lambda::Function", logical_id)
            if "Fn::GetAtt" in function
            else _target(function, "Ref", resources, "AWS::Lambda::Function", logical_id)
        )
        starting = properties.get("StartingPosition", "TRIM_HORIZON")
        if starting not in ("TRIM_HORIZON", "LATEST"):
            raise UnsupportedEventSourceMapping(f"{logical_id}: StartingPosition {starting} not run locally")
        responses = set(properties.get("FunctionResponseTypes", []))
        if responses - {"ReportBatchItemFailures"}:
            raise UnsupportedEventSourceMapping(f"{logical_id}: FunctionResponseTypes {sorted(responses)}")
        on_failure = properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        filters = properties.get("FilterCriteria", {}).get("Filters", [])
        source_arn = properties["EventSourceArn"]
        attribute = (source_arn if isinstance(source_arn, dict) else {}).get("Fn::GetAtt", [None, None])
        kinesis = attribute[1] == "Arn" and resources.get(attribute[0], {}).get("Type") == KINESIS_STREAM
        if kinesis and filters:  # Kinesis filters match the decoded data: not run locally
            raise UnsupportedEventSourceMapping(f"{logical_id}: FilterCriteria on a Kinesis stream")
        found.append(
            StreamMapping(
                logical_id=logical_id,
                source=_target(source_arn, "Arn", resources, KINESIS_STREAM, logical_id)
                if kinesis
                else _target(source_arn, "StreamArn", resources, DYNAMODB_TABLE, logical_id),
                function=function_id,
                batch_size=int(properties.get("BatchSize", 100)),
                batching_window_seconds=float(properties.get("MaximumBatchingWindowInSeconds", 0)),
                starting_position=starting,
                bisect_on_error=bool(properties.get("BisectBatchOnFunctionError", False)),
                max_retries=int(properties.get("MaximumRetryAttempts", -1)),
                report_item_failures="ReportBatchItemFailures" in responses,
                on_failure=None
                if on_failure is None
                else _target(on_failure, "Arn", resources, "AWS::SQS::Queue", logical_id),
                patterns=tuple(parse_pattern(f["Pattern"]) for f in filters),
                enabled=bool(properties.get("Enabled", True)),
                source_type=KINESIS_STREAM if kinesis else DYNAMODB_TABLE,
            )
        )
    return found
