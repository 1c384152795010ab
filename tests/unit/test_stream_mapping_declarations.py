"""What the local stack reads from an event source mapping: its filter patterns (evaluated as
Lambda does) and its properties; anything it would not run as Lambda does is refused."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.event_patterns import UnsupportedEventPattern, matches, matches_any, parse_pattern
from infra.local.event_source_mappings import UnsupportedEventSourceMapping, mappings_from_template

FEEDBACK_ONLY = '{"eventName":["INSERT"],"dynamodb":{"Keys":{"sk":{"S":["FEEDBACK"]}}}}'


def _record(event_name: str, sk: str) -> dict[str, Any]:
    return {"eventName": event_name, "dynamodb": {"Keys": {"pk": {"S": "PREDICTION#1"}, "sk": {"S": sk}}}}


def test_the_templates_feedback_pattern_lets_only_feedback_inserts_through() -> None:
    pattern = parse_pattern(FEEDBACK_ONLY)

    assert matches(pattern, _record("INSERT", "FEEDBACK"))
    assert not matches(pattern, _record("MODIFY", "FEEDBACK"))  # the updater's own counted_at
    assert not matches(pattern, _record("REMOVE", "FEEDBACK"))  # the TTL deleting it
    assert not matches(pattern, _record("INSERT", "PREDICTION"))
    assert not matches(pattern, {"eventName": "INSERT"})  # a field the pattern names is missing


def test_a_list_of_values_matches_any_of_them_and_array_values_by_intersection() -> None:
    pattern = parse_pattern('{"kind": ["a", 2, true, null], "tags": ["x"]}')

    assert matches(pattern, {"kind": "a", "tags": ["y", "x"]})
    assert matches(pattern, {"kind": 2.0, "tags": "x"})
    assert matches(pattern, {"kind": None, "tags": ["x"]})
    assert not matches(pattern, {"kind": 1, "tags": ["x"]})
    assert not matches(pattern, {"kind": True, "tags": ["y"]})
    assert not matches(parse_pattern('{"n": [1]}'), {"n": True})  # true is not 1


def test_no_patterns_let_everything_through_and_several_are_alternatives() -> None:
    inserts, removes = parse_pattern('{"eventName": ["INSERT"]}'), parse_pattern('{"eventName": ["REMOVE"]}')

    assert matches_any([], _record("MODIFY", "X"))
    assert matches_any([inserts, removes], _record("REMOVE", "X"))
    assert not matches_any([inserts, removes], _record("MODIFY", "X"))


@pytest.mark.parametrize(
    "pattern",
    [
        '{"eventName": [{"prefix": "IN"}]}',
        '{"dynamodb": {"NewImage": {"reward": {"N": [{"numeric": [">", 0]}]}}}}',
        '{"eventName": [{"anything-but": "REMOVE"}]}',
        '{"eventName": [{"exists": true}]}',
        '{"$or": [{"a": ["b"]}, {"c": ["d"]}]}',
        '{"eventName": "INSERT"}',
        '{"eventName": []}',
        '{"dynamodb": {}}',
        "[]",
        "not json",
    ],
)
def test_other_patterns_are_refused_rather_than_filtering_differently(pattern: str) -> None:
    with pytest.raises(UnsupportedEventPattern):
        parse_pattern(pattern)


def _template(**properties: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "Table": {"Type": "AWS::DynamoDB::Table"},
            "Fn": {"Type": "AWS::Lambda::Function"},
            "Dlq": {"Type": "AWS::SQS::Queue"},
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]},
                    "FunctionName": {"Ref": "Fn"},
                    **properties,
                },
            },
        }
    }


def test_a_stream_mapping_is_read_with_every_property_it_declares() -> None:
    (mapping,) = mappings_from_template(
        _template(
            BatchSize=50,
            MaximumBatchingWindowInSeconds=2,
            StartingPosition="LATEST",
            BisectBatchOnFunctionError=True,
            MaximumRetryAttempts=4,
            FunctionResponseTypes=["ReportBatchItemFailures"],
            DestinationConfig={"OnFailure": {"Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}},
            FilterCriteria={"Filters": [{"Pattern": FEEDBACK_ONLY}]},
            Tags=[{"Key": "k", "Value": "v"}],
        )
    )

    assert (mapping.table, mapping.function, mapping.on_failure) == ("Table", "Fn", "Dlq")
    assert (mapping.batch_size, mapping.batching_window_seconds, mapping.starting_position) == (
        50,
        2.0,
        "LATEST",
    )
    assert mapping.bisect_on_error and mapping.report_item_failures and mapping.max_retries == 4
    assert mapping.patterns == (parse_pattern(FEEDBACK_ONLY),)


def test_lambdas_defaults_apply_to_what_a_mapping_leaves_out() -> None:
    (mapping,) = mappings_from_template(_template())

    assert (mapping.batch_size, mapping.batching_window_seconds, mapping.max_retries) == (100, 0.0, -1)
    assert not mapping.report_item_failures and mapping.on_failure is None and mapping.patterns == ()


@pytest.mark.parametrize(
    ("properties", "message"),
    [
        ({"ParallelizationFactor": 2}, "ParallelizationFactor not run locally"),
        ({"TumblingWindowInSeconds": 60}, "TumblingWindowInSeconds not run locally"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "AT_TIMESTAMP"),
        ({"EventSourceArn": {"Fn::GetAtt": ["Dlq", "Arn"]}}, "not a AWS::DynamoDB::Table"),
        (
            {"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sns:us-east-1:1:t"}}},
            "AWS::SQS::Queue",
        ),
        ({"FilterCriteria": {"Filters": [{"Pattern": '{"a": [{"prefix": "x"}]}'}]}}, "content filters"),
    ],
)
def test_what_the_local_poller_would_not_run_as_lambda_does_is_refused(
    properties: dict[str, Any], message: str
) -> None:
    with pytest.raises((UnsupportedEventSourceMapping, UnsupportedEventPattern), match=message):
        mappings_from_template(_template(**properties))


def test_a_kinesis_mapping_is_read_with_its_stream_and_filters_on_it_are_refused() -> None:
    template = {
        "Resources": {
            "Input": {"Type": "AWS::Kinesis::Stream"},
            "Fn": {"Type": "AWS::Lambda::Function"},
            "Dlq": {"Type": "AWS::SQS::Queue"},
            "Mapping": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {
                    "EventSourceArn": {"Fn::GetAtt": ["Input", "Arn"]},
                    "FunctionName": {"Ref": "Fn"},
                    "StartingPosition": "LATEST",
                    "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": ["Dlq", "Arn"]}}},
                },
            },
        }
    }
    (mapping,) = mappings_from_template(template)
    assert (mapping.kinesis, mapping.source, mapping.starting_position) == (True, "Input", "LATEST")
    assert (mapping.function, mapping.on_failure) == ("Fn", "Dlq")

    template["Resources"]["Mapping"]["Properties"]["FilterCriteria"] = {"Filters": [{"Pattern": "{}"}]}
    with pytest.raises(UnsupportedEventSourceMapping, match="FilterCriteria on a Kinesis stream"):
        mappings_from_template(template)
