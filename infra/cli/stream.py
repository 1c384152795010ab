"""`mlops stream`: put records on the streaming-inference input stream, read the results.

    mlops stream put M --file rows.jsonl [--key K]   one record per line, in order per key
    mlops stream read [--key K] [--expect N]         the results, in order per key
    mlops stream failed                              poison records the mapping gave up on

A line of the file is the features (a list in the signature's order, or an object keyed by
feature name), or a record ``{"features": ..., "key": K, "record_id": ID}``. Records of one
key are scored and written in order (the key is the Kinesis partition key; default
``--key``, else ``default``). The streams and the failure queue are the stack's outputs
``StreamInputName``, ``StreamOutputName`` and ``StreamFailedRecordsQueueUrl``.
"""

from __future__ import annotations

import importlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer

from infra.cli.client import StackNotFound
from infra.cli.tables import Rows

stream_app = typer.Typer(help="Streaming inference: records in, results out (Kinesis).", no_args_is_help=True)
_host: list[ModuleType] = []
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RECORD_FIELDS = {"features", "key", "record_id", "alias", "version", "request_key"}
#: Kinesis PutRecords: at most 500 records a call; a call holds each key at most once (order).
MAX_PER_CALL = 500


def bind(cli_module: ModuleType) -> None:
    """The `mlops` module whose helpers and state the commands use (see drift.bind)."""
    _host[:] = [cli_module]


def _cli() -> Any:
    return _host[0] if _host else importlib.import_module("infra.cli.main")


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts), as `mlops --json ...`")]


class StreamRefused(Exception):
    """Kinesis kept refusing (throttling) records of a call."""


class BadRecords(ValueError):
    """Lines of the file that cannot be records (each named by its line number)."""


@dataclass(frozen=True)
class Outgoing:
    key: str
    data: bytes


def records_from_lines(model: str, text: str, *, default_key: str) -> list[Outgoing]:
    """The file's lines as input records, or ``BadRecords`` naming every bad line."""
    if not MODEL_NAME.match(model):
        raise BadRecords(f"model name {model!r} is not valid")
    records, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            problems.append(f"line {number}: not JSON")
            continue
        if isinstance(value, dict) and "features" in value:
            unknown = sorted(set(value) - RECORD_FIELDS)
            if unknown:
                problems.append(f"line {number}: unknown field(s) {', '.join(unknown)}")
                continue
            record = {k: v for k, v in value.items() if k != "key"}
            key = str(value.get("key") or default_key)
        elif isinstance(value, list | dict):
            record, key = {"features": value}, default_key
        else:
            problems.append(f"line {number}: a list of feature values or an object")
            continue
        record = {"model": model, "record_id": f"line-{number}", **record}
        if not 1 <= len(key) <= 256:
            problems.append(f"line {number}: a key has 1 to 256 characters")
            continue
        records.append(Outgoing(key, json.dumps(record, separators=(",", ":")).encode()))
    if problems:
        shown = "; ".join(problems[:10]) + ("" if len(problems) <= 10 else f" (+{len(problems) - 10} more)")
        raise BadRecords(shown)
    if not records:
        raise BadRecords("the file holds no records")
    return records


def calls(records: list[Outgoing]) -> Iterator[list[Outgoing]]:
    """PutRecords calls that hold each key at most once, each key's records in order: a call
    whose records partly fail is retried without a later record of a key overtaking it."""
    pending = list(records)
    while pending:
        call: list[Outgoing] = []
        keys: set[str] = set()
        rest: list[Outgoing] = []
        for record in pending:
            # A key deferred once stays deferred: its later records are in it already, or the call is full.
            if record.key in keys or len(call) == MAX_PER_CALL:
                rest.append(record)
            else:
                call.append(record)
                keys.add(record.key)
        yield call
        pending = rest


def _outputs() -> dict[str, str]:
    import boto3

    cli = _cli()
    cli._target()  # the local stack's endpoint (os.environ), or the deployed stack's region
    name = cli.state.stack or _local_stack_name()
    stack = boto3.client("cloudformation").describe_stacks(StackName=name)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if "StreamInputName" not in outputs:
        raise StackNotFound(f"stack {name!r} has no StreamInputName output: is it deployed with streaming?")
    return outputs


def _local_stack_name() -> str:
    from infra.local.stack import STACK_NAME

    return STACK_NAME


def _put(kinesis: Any, stream: str, records: list[Outgoing]) -> None:
    for call in calls(records):
        pending = call
        for attempt in range(6):
            response = kinesis.put_records(
                StreamName=stream, Records=[{"PartitionKey": r.key, "Data": r.data} for r in pending]
            )
            if not response.get("FailedRecordCount"):
                break
            pending = [
                r for r, result in zip(pending, response["Records"], strict=True) if result.get("ErrorCode")
            ]
            time.sleep(0.1 * 2**attempt)
        else:
            raise StreamRefused(
                f"the input stream refused {len(pending)} record(s) (throttled); the rest were not sent"
            )


@stream_app.command("put")
def put(
    model: Annotated[str, typer.Argument(help="The model that scores the records")],
    file: Annotated[Path, typer.Option(help="JSON Lines: features per line, or {features, key, record_id}")],
    key: Annotated[str, typer.Option(help="Partition key of lines that name none")] = "default",
    json_output: JsonFlag = False,
) -> None:
    """Put the file's records on the input stream (each key's in the file's order)."""
    import boto3

    cli = _cli()
    try:
        text = file.read_text()
    except OSError as error:
        raise cli._usage(f"cannot read {str(file)!r}: {error.strerror or error}", "--file") from None
    try:
        records = records_from_lines(model, text, default_key=key)
    except BadRecords as error:
        raise cli._usage(str(error), str(file)) from None
    with cli._calls():
        outputs = _outputs()
        try:
            _put(boto3.client("kinesis"), outputs["StreamInputName"], records)
        except StreamRefused as error:
            cli._error(str(error))
            raise typer.Exit(1) from None
    summary = {"records": len(records), "keys": len({r.key for r in records}), "model": model}
    if cli._as_json(json_output):
        cli._print_json(summary)
    else:
        cli._say(f"put {summary['records']} record(s) for {model} under {summary['keys']} key(s)")


#: Empty pages in a row after which a shard is taken as read.
MAX_EMPTY_PAGES = 20


def _read_all(kinesis: Any, stream: str) -> list[dict[str, Any]]:
    """Every output record, shard by shard (each in order), as {key, results}."""
    found: list[dict[str, Any]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        empty = 0  # Kinesis may answer empty pages before the records (a trimmed shard's start)
        while iterator and empty < MAX_EMPTY_PAGES:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
            found.extend(json.loads(record["Data"]) for record in page["Records"])
            caught_up = page.get("MillisBehindLatest", 0) == 0
            if not page["Records"] and caught_up:
                break
            empty = 0 if page["Records"] else empty + 1
            iterator = page.get("NextShardIterator")
    return found


def results_by_key(documents: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each key's results in order, a result written again after a retry kept once (by prediction
    id, or by sequence number for a refusal)."""
    by_key: dict[str, list[dict[str, Any]]] = {}
    seen: set[str] = set()
    for document in documents:
        for result in document["results"]:
            identity = result.get("prediction_id") or f"{result['sequence_number']}"
            if identity in seen:
                continue
            seen.add(identity)
            by_key.setdefault(document["partition_key"], []).append(result)
    return by_key


@stream_app.command("read")
def read(
    key: Annotated[str | None, typer.Option(help="Only this partition key's results")] = None,
    expect: Annotated[int, typer.Option(help="Wait until at least this many results are there", min=0)] = 0,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for --expect (exit 1 after)", min=0)] = 120,
    limit: Annotated[int, typer.Option(help="Show at most this many rows (the table; --json has all)")] = 50,
    json_output: JsonFlag = False,
) -> None:
    """The results on the output stream, in order per key (from the stream's start)."""
    import boto3

    cli = _cli()
    with cli._calls():
        stream = _outputs()["StreamOutputName"]
        kinesis = boto3.client("kinesis")
        deadline = time.monotonic() + timeout
        while True:
            by_key = results_by_key(_read_all(kinesis, stream))
            if key is not None:
                by_key = {k: v for k, v in by_key.items() if k == key}
            count = sum(len(v) for v in by_key.values())
            if count >= expect or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
    if cli._as_json(json_output):
        cli._print_json({"count": count, "results": by_key})
    else:
        table = Rows("key", "record", "version", "prediction", "error")
        shown = 0
        for partition, results in sorted(by_key.items()):
            for result in results:
                if shown == limit:
                    break
                error = result.get("error") or {}
                table.add_row(
                    partition,
                    str(result.get("record_id") or result["sequence_number"]),
                    str(result.get("model_version") or "-"),
                    json.dumps(result.get("prediction")) if not error else "-",
                    error.get("message", "")[:80],
                )
                shown += 1
        table.print(cli.out)
        cli._say(f"{count} result(s) under {len(by_key)} key(s)")
    if count < expect:
        cli._error(f"only {count} of the {expect} expected result(s) after {timeout:g} s")
        raise typer.Exit(1)


#: Seconds the messages `stream failed` reads stay hidden while it pages past them.
PEEK_SECONDS = 30


def _peek(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    """Every message of the queue, left on it: read in pages of 10, each page hidden while the
    next receive returns the next ones, then all made visible again."""
    found: dict[str, dict[str, Any]] = {}
    try:
        while True:
            page = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=PEEK_SECONDS
            ).get("Messages", [])
            new = [m for m in page if m["MessageId"] not in found]
            if not new:
                return list(found.values())
            found.update((m["MessageId"], m) for m in new)
    finally:
        handles = [m["ReceiptHandle"] for m in found.values()]
        for start in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(handles[start : start + 10])
                ],
            )


@stream_app.command("failed")
def failed(json_output: JsonFlag = False) -> None:
    """Poison records the event source mapping gave up on (the failure queue's messages, and
    each record read back from the input stream while it keeps them: 24 hours). The messages
    stay on the queue."""
    import boto3

    cli = _cli()
    with cli._calls():
        outputs = _outputs()
        sqs, kinesis = boto3.client("sqs"), boto3.client("kinesis")
        messages = _peek(sqs, outputs["StreamFailedRecordsQueueUrl"])
        found = []
        for message in messages:
            body = json.loads(message["Body"])
            info = body.get("KinesisBatchInfo", {})
            records = kinesis.get_records(
                ShardIterator=kinesis.get_shard_iterator(
                    StreamName=outputs["StreamInputName"],
                    ShardId=info["shardId"],
                    ShardIteratorType="AT_SEQUENCE_NUMBER",
                    StartingSequenceNumber=info["startSequenceNumber"],
                )["ShardIterator"],
                Limit=int(info.get("batchSize", 1)),
            )["Records"]
            found.append(
                {
                    "shard": info.get("shardId"),
                    "sequence_numbers": [r["SequenceNumber"] for r in records],
                    "keys": [r["PartitionKey"] for r in records],
                    "data": [r["Data"].decode(errors="replace")[:200] for r in records],
                    "invocations": body.get("requestContext", {}).get("approximateInvokeCount"),
                    "condition": body.get("requestContext", {}).get("condition"),
                }
            )
    if cli._as_json(json_output):
        cli._print_json({"failed": found})
        return
    for item in found:
        cli._say(
            f"{item['shard']} {', '.join(item['sequence_numbers'])} (key {', '.join(item['keys'])}): "
            f"{item['condition']} after {item['invocations']} invocation(s): {' | '.join(item['data'])}"
        )
    cli._say(f"{len(found)} failed batch(es)")
