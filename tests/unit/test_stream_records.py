"""Streaming inference's pure parts: what a record is (and what is poison), stable prediction
ids, ordered PutRecords rounds, output records per key, and the CLI's file and result handling."""

from __future__ import annotations

import json
import uuid

import pytest

from infra.cli.stream import BadRecords, Outgoing, calls, records_from_lines, results_by_key
from mlops_core.errors import Invalid
from mlops_core.serving.capture import issued_at_ms
from mlops_core.serving.stream import (
    InputRecord,
    ScoredBatch,
    StreamResult,
    parse_record,
    stable_prediction_id,
)
from mlops_core.storage.kinesis import Entry, rounds


def _record(data: bytes, n: int = 1, key: str = "k") -> InputRecord:
    return InputRecord(f"{n:05d}", key, data, 1_796_115_000_000 + n, f"shardId-000000000000:{n:05d}")


def test_a_record_names_a_model_and_its_features() -> None:
    parsed = parse_record(
        _record(b'{"model": "m", "features": {"a": 1.5}, "record_id": "r", "alias": "staging"}')
    )
    assert (parsed.model, parsed.features, parsed.record_id, parsed.alias) == (
        "m",
        {"a": 1.5},
        "r",
        "staging",
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"features": [1]}', "model: Field required"),
        (b'{"model": "m", "features": 3}', "features"),
        (b'{"model": "m", "features": [1], "extra": 1}', "extra: Extra inputs are not permitted"),
        (b'{"model": "no spaces", "features": [1]}', "model: String should match pattern"),
        (
            b'{"model": "m", "features": [1], "version": 0}',
            "version: Input should be greater than or equal to 1",
        ),
    ],
)
def test_anything_else_is_poison_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(Invalid, match=reason):
        parse_record(_record(data))


def test_prediction_ids_are_stable_time_ordered_uuid7s() -> None:
    first = stable_prediction_id(1_796_115_000_123, "shardId-000000000000:1")

    assert first == stable_prediction_id(1_796_115_000_123, "shardId-000000000000:1")
    assert first != stable_prediction_id(1_796_115_000_123, "shardId-000000000000:2")
    assert uuid.UUID(first).version == 7 and uuid.UUID(first).variant == uuid.RFC_4122
    assert issued_at_ms(first) == 1_796_115_000_123
    assert stable_prediction_id(1_796_115_000_124, "x") > stable_prediction_id(1_796_115_000_123, "x")


def test_a_round_holds_each_key_once_and_keeps_each_keys_order() -> None:
    entries = [Entry(key, f"{key}{i}".encode()) for i, key in enumerate("aabacbbb")]

    found = rounds(entries)

    assert all(len({e.partition_key for e in r}) == len(r) for r in found)
    flattened = [e for r in found for e in r]
    for key in "abc":
        assert [e.data for e in flattened if e.partition_key == key] == [
            e.data for e in entries if e.partition_key == key
        ]
    assert len(found) == 4  # b appears four times


def _result(n: int, size: int = 10) -> StreamResult:
    return StreamResult(sequence_number=f"{n}", record_id="x" * size, model_name="m", prediction=n)


def test_the_output_is_one_record_per_key_in_order_and_split_below_a_megabyte() -> None:
    batch = ScoredBatch(
        results=[(_record(b"", n, key), _result(n)) for n, key in enumerate(["a", "b", "a", "a", "b"])]
    )
    entries = batch.output_entries()
    assert [e.partition_key for e in entries] == ["a", "b"]
    assert [r["prediction"] for r in json.loads(entries[0].data)["results"]] == [0, 2, 3]

    big = ScoredBatch(results=[(_record(b"", n, "a"), _result(n, size=250)) for n in range(5000)])
    chunks = big.output_entries()
    assert len(chunks) > 1 and all(len(e.data) < 1_000_000 for e in chunks)
    assert [r["prediction"] for e in chunks for r in json.loads(e.data)["results"]] == list(range(5000))
    assert all(len(r) == 1 for r in rounds(chunks)[:1]) and len(rounds(chunks)) == len(chunks)


def test_the_cli_reads_features_or_records_and_names_every_bad_line() -> None:
    text = '[1, 2]\n\n{"a": 1}\n{"features": [3], "key": "p-1", "record_id": "mine"}\n'
    records = records_from_lines("m", text, default_key="d")

    assert [r.key for r in records] == ["d", "d", "p-1"]
    assert [json.loads(r.data) for r in records] == [
        {"model": "m", "record_id": "line-1", "features": [1, 2]},
        {"model": "m", "record_id": "line-3", "features": {"a": 1}},
        {"model": "m", "record_id": "mine", "features": [3]},
    ]
    with pytest.raises(
        BadRecords, match=r"line 1: not JSON; line 2: a list .*; line 3: unknown field\(s\) colour"
    ):
        records_from_lines("m", 'nope\n3\n{"features": [1], "colour": 2}\n', default_key="d")
    with pytest.raises(BadRecords, match="no records"):
        records_from_lines("m", "\n", default_key="d")
    with pytest.raises(BadRecords, match="model name"):
        records_from_lines("bad name", "[1]", default_key="d")


def test_the_cli_puts_each_key_at_most_once_per_call_in_order() -> None:
    records = [Outgoing(key, str(i).encode()) for i, key in enumerate("abab" + "c" * 3)]

    sent = list(calls(records))

    assert [[r.key for r in call] for call in sent] == [["a", "b", "c"], ["a", "b", "c"], ["c"]]
    assert [r.data for call in sent for r in call if r.key == "c"] == [b"4", b"5", b"6"]


def test_results_written_again_after_a_retry_are_read_once() -> None:
    result = {"prediction_id": "p1", "sequence_number": "1", "record_id": "r1"}
    refusal = {"prediction_id": None, "sequence_number": "2", "record_id": "r2"}
    documents = [
        {"partition_key": "k", "results": [result, refusal]},
        {"partition_key": "k", "results": [result, refusal]},
    ]
    assert results_by_key(documents) == {"k": [result, refusal]}


def test_reading_the_failure_queue_returns_every_message_and_leaves_them_there(aws: None) -> None:
    import boto3

    from infra.cli.stream import _peek

    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="failed")["QueueUrl"]
    for i in range(23):
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"i": i}))

    first, again = _peek(sqs, url), _peek(sqs, url)

    assert sorted(json.loads(m["Body"])["i"] for m in first) == list(range(23))
    assert len(again) == 23  # nothing was taken off the queue, nothing stays hidden
