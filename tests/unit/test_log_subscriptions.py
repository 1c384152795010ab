"""The local stack runs the template's log subscription filters: lines a subscribed
function prints while it runs reach the destination as CloudWatch Logs would send them."""

from __future__ import annotations

import base64
import gzip
import json
import sys
import threading
from typing import Any

import pytest

from infra.local.log_subscriptions import LogSubscriptions, UnsupportedFilterPattern, parse_pattern

TEMPLATE = {
    "Resources": {
        "SourceLogs": {"Type": "AWS::Logs::LogGroup"},
        "Source": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"LoggingConfig": {"LogGroup": {"Ref": "SourceLogs"}}},
        },
        "Sink": {"Type": "AWS::Lambda::Function", "Properties": {}},
        "Filter": {
            "Type": "AWS::Logs::SubscriptionFilter",
            "Properties": {
                "LogGroupName": {"Ref": "SourceLogs"},
                "DestinationArn": {"Fn::GetAtt": ["Sink", "Arn"]},
                "FilterPattern": "{ $.mlops_capture = 1 }",
                "FilterName": "prediction-capture",
            },
        },
    }
}


def _decoded(event: dict[str, Any]) -> dict[str, Any]:
    return json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))


def test_matching_lines_of_the_source_function_reach_the_destination() -> None:
    delivered: list[tuple[str, dict[str, Any]]] = []
    subscriptions = LogSubscriptions(
        TEMPLATE, lambda fn, event: delivered.append((fn, event)), flush_seconds=60
    )
    subscriptions.start()
    try:
        with subscriptions.running("Source"):
            sys.stdout.write(
                '{"mlops_capture": 1, "n": 1}\n{"level": "INFO"}\nnot json\n{"mlops_capture": 1, '
            )
            sys.stdout.write('"n": 2}\n')
        with subscriptions.running("Sink"):
            print('{"mlops_capture": 1, "n": 3}')  # not a subscribed source

        other = threading.Thread(target=lambda: print('{"mlops_capture": 1, "n": 4}'))  # not running Source
        other.start()
        other.join()
    finally:
        subscriptions.stop()

    assert [fn for fn, _ in delivered] == ["Sink"]
    payload = _decoded(delivered[0][1])
    assert payload["subscriptionFilters"] == ["prediction-capture"]
    assert [json.loads(e["message"])["n"] for e in payload["logEvents"]] == [1, 2]
    ids = [e["id"] for e in payload["logEvents"]]
    assert len(set(ids)) == 2 and all(len(i) == 56 for i in ids)


@pytest.mark.parametrize(
    ("pattern", "parsed"),
    [("{ $.mlops_capture = 1 }", ("mlops_capture", 1)), ('{$.kind="x"}', ("kind", "x"))],
)
def test_json_equality_patterns_are_understood(pattern: str, parsed: tuple[str, Any]) -> None:
    assert parse_pattern(pattern) == parsed


@pytest.mark.parametrize("pattern", ["ERROR", "{ $.a > 1 }", "[ip, user]", "{ $.a = 1 && $.b = 2 }"])
def test_other_patterns_are_refused_rather_than_silently_ignored(pattern: str) -> None:
    with pytest.raises(UnsupportedFilterPattern):
        parse_pattern(pattern)
