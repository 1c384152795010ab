"""`mlops routing history`: the API's buckets as one row per bucket and version, the query
options passed through, an empty window said in words, --json as the API answered."""

from __future__ import annotations

import json
from typing import Any

from infra.cli.routing_history import timeline_table
from tests.unit.test_cli import FakeClient, cli  # noqa: F401 - the fixture

HISTORY = {
    "model_name": "m",
    "bucket_seconds": 300,
    "posterior_level": 0.9,
    "versions": [1, 2],
    "buckets": [
        {
            "start": "2026-12-01T10:00:00Z",
            "seconds": 300,
            "variants": [
                {
                    "version": 1,
                    "requests": 30,
                    "calls": 30,
                    "errors": 1,
                    "shadow_requests": 0,
                    "feedback": 0,
                    "rewarded": 0,
                    "reward_sum": 0.0,
                    "share": 0.75,
                    "posterior": None,
                },
                {
                    "version": 2,
                    "requests": 10,
                    "calls": 10,
                    "errors": 0,
                    "shadow_requests": 4,
                    "feedback": 6,
                    "rewarded": 6,
                    "reward_sum": 5.0,
                    "share": 0.25,
                    "posterior": {
                        "successes": 5.0,
                        "failures": 1.0,
                        "mean": 0.75,
                        "lower": 0.5,
                        "upper": 0.93,
                        "counted_at": "2026-12-01T10:04:00.000Z",
                    },
                },
            ],
        }
    ],
}


def test_the_history_is_a_row_per_bucket_and_version(cli: Any) -> None:  # noqa: F811
    client = FakeClient(routing_history=HISTORY)

    result = cli(client, "routing", "history", "m", "--since", "2026-12-01T09:00:00Z", "--limit", "12")

    assert result.exit_code == 0, result.output
    assert client.calls == [("routing_history", ("m",), {"since": "2026-12-01T09:00:00Z", "limit": 12})]
    assert "1 buckets of 300 s" in result.output
    assert "2026-12-01T10:00:00Z" in result.output  # an id column: never wrapped
    table = timeline_table(HISTORY)
    assert table.rows == [
        ("2026-12-01T10:00:00Z", "v1", "30", "75%", "1 of 30", "", ""),
        ("2026-12-01T10:00:00Z", "v2", "10 (+4 shadow)", "25%", "0 of 10", "6", "0.7500 [0.5000, 0.9300]"),
    ]


def test_an_empty_window_is_said_and_json_is_the_api_answer(cli: Any) -> None:  # noqa: F811
    empty = HISTORY | {"buckets": []}
    assert (
        "no traffic or feedback counted"
        in cli(FakeClient(routing_history=empty), "routing", "history", "m").output
    )

    result = cli(FakeClient(routing_history=HISTORY), "--json", "routing", "history", "m")
    assert json.loads(result.stdout) == HISTORY
