"""The template's DynamoDB-stream and Kinesis event source mappings, run by the local stack.

Given an ``AWS::Lambda::EventSourceMapping``, moto calls the function synchronously inside
every write to the table, with every change since the last success, no filter criteria,
no batch size and no partial batch response — and, under the local stack's atomic
DynamoDB requests, while the writer's request holds the lock the function's own
DynamoDB calls need. So the local stack keeps the mappings out of moto (``stack.for_moto``)
and runs them itself, like Lambda's stream poller: every ``poll_seconds`` it reads each
mapped table's stream through the DynamoDB Streams API (``get_shard_iterator``,
``get_records``), keeps the records that match the mapping's ``FilterCriteria``
(``event_patterns``), and invokes the function through the in-process invoker with up to
``BatchSize`` of them once ``MaximumBatchingWindowInSeconds`` has passed. A function error
retries the batch (halved first with ``BisectBatchOnFunctionError``); with
``ReportBatchItemFailures`` a response naming failed records retries from the first of
them; after ``MaximumRetryAttempts`` the batch's description goes to the ``OnFailure``
queue, as Lambda sends it. What a mapping declares is read by ``event_source_mappings``,
which refuses any property it does not know when the stack starts. A Kinesis data stream's
mapping is run the same way by ``KinesisPoller`` (moto does not invoke functions from
Kinesis at all): its shards are read through the Kinesis API, one batch of a shard at a
time, as Lambda does with a parallelization factor of 1.

Reading moto's stream safely needs two things moto does not give: a cancelled transaction
replaces the table (and its stream shard) with a copy taken before it, so an iterator
created earlier reads a shard that no longer exists — every read starts from a fresh
iterator after the last sequence number seen, and runs while DynamoDB requests are held
(``lambda_runtime.dynamodb_requests_held``) so that no transaction is half applied or
rolled back between the two calls; and moto keeps every iterator it hands out, so the
used ones are forgotten (``_forget_iterators``).
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from infra.local.event_patterns import matches_any
from infra.local.event_source_mappings import (
    StreamMapping,
    UnsupportedEventSourceMapping,
    mappings_from_template,
)

LOGGER = logging.getLogger(__name__)
Invoke = Callable[[str, dict[str, Any]], Any]


def lambda_record(record: dict[str, Any], stream_arn: str, region: str) -> dict[str, Any]:
    """A record from ``get_records`` as Lambda hands it to the function (JSON, times in seconds)."""
    change = dict(record["dynamodb"])
    created = change.get("ApproximateCreationDateTime")
    if isinstance(created, datetime.datetime):
        change["ApproximateCreationDateTime"] = int(created.timestamp())
    shaped = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": change,
        "eventSourceARN": stream_arn,
    }
    return dict(json.loads(json.dumps(shaped, default=_binary_as_base64)))


def _binary_as_base64(value: Any) -> str:
    import base64

    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} in a stream record")


def _forget_iterators(stream_arn: str, iterators: list[str]) -> None:
    """moto keeps every shard iterator it hands out (one per call): drop the used ones."""
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    _, _, _, region, account, _ = stream_arn.split(":", 5)
    kept = dynamodbstreams_backends[account][region].shard_iterators
    for iterator in iterators:
        kept.pop(iterator, None)


class StreamPoller:
    """One mapping: reads its stream, filters, batches, invokes, retries, gives up."""

    def __init__(
        self,
        mapping: StreamMapping,
        stream_arn: str,
        queue_url: str | None,
        invoke: Invoke,
        *,
        function_name: str = "",
    ) -> None:
        import boto3

        self.mapping, self.stream_arn, self.queue_url = mapping, stream_arn, queue_url
        self._invoke = invoke
        self._streams = self._client()
        self._sqs = boto3.client("sqs")
        self._region = stream_arn.split(":")[3]
        self._positions: dict[str, str | None] = {}
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._first_pending_at: dict[str, float] = {}
        self.retry_delay_seconds = 0.1
        _, _, _, region, account, _ = stream_arn.split(":", 5)
        self.function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        if mapping.starting_position == "LATEST":  # what is in the stream now is never delivered
            for shard in self._shards():
                self._read(shard)

    def _client(self) -> Any:
        import boto3
        from botocore.config import Config

        # Account-based endpoints are DynamoDB's, not its streams' (under mock_aws, moto does not
        # recognise them as DynamoDB Streams requests).
        return boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))

    def _shape(self, record: dict[str, Any], shard: str) -> dict[str, Any]:  # noqa: ARG002 - Kinesis's needs it
        return lambda_record(record, self.stream_arn, self._region)

    @staticmethod
    def _sequence(record: dict[str, Any]) -> str:
        """The identifier a partial batch response names a record by."""
        return str(record["dynamodb"]["SequenceNumber"])

    def _batch_info(self, shard: str, records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        return "DDBStreamBatchInfo", {
            "shardId": shard,
            "startSequenceNumber": self._sequence(records[0]),
            "endSequenceNumber": self._sequence(records[-1]),
            "batchSize": len(records),
            "streamArn": self.stream_arn,
        }

    def _shards(self) -> list[str]:
        shards = self._streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]
        return [shard["ShardId"] for shard in shards]

    def _read(self, shard: str) -> list[dict[str, Any]]:
        from infra.local.lambda_runtime import dynamodb_requests_held

        records: list[dict[str, Any]] = []
        while True:
            after = self._positions.get(shard)
            start = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                if after
                else {"ShardIteratorType": "TRIM_HORIZON"}
            )
            with dynamodb_requests_held():
                iterator = self._streams.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard, **start)
                page = self._streams.get_records(ShardIterator=iterator["ShardIterator"], Limit=1000)
            _forget_iterators(self.stream_arn, [iterator["ShardIterator"], page.get("NextShardIterator", "")])
            if not page["Records"]:
                return records
            self._positions[shard] = page["Records"][-1]["dynamodb"]["SequenceNumber"]
            records.extend(page["Records"])

    def poll(self, *, drain: bool = False) -> None:
        """Read what is new; invoke with what is due (``drain``: everything pending)."""
        now = time.monotonic()
        for shard in self._shards():
            matched = [
                shaped
                for record in self._read(shard)
                if matches_any(
                    list(self.mapping.patterns),
                    shaped := self._shape(record, shard),
                )
            ]
            pending = self._pending.setdefault(shard, [])
            if matched and not pending:
                self._first_pending_at[shard] = now
            pending.extend(matched)
            for batch in self._due(shard, pending, now, drain):
                self._process(shard, batch, retries=0)

    def _due(self, shard: str, pending: list[dict[str, Any]], now: float, drain: bool) -> Iterator[list[Any]]:
        size = self.mapping.batch_size
        waited = now - self._first_pending_at.get(shard, now) >= self.mapping.batching_window_seconds
        while pending and (len(pending) >= size or waited or drain):
            batch, pending[:] = pending[:size], pending[size:]
            self._first_pending_at[shard] = now
            yield batch

    def _process(self, shard: str, records: list[dict[str, Any]], *, retries: int) -> None:
        try:
            result = self._invoke(self.mapping.function, {"Records": records})
        except Exception as error:
            # One line in the terminal (a poison record is bisected and retried: a dozen failures);
            # the function's own log has what it raised.
            LOGGER.warning(
                "%s: %s failed on %d record(s): %s: %s",
                self.mapping.logical_id,
                self.mapping.function,
                len(records),
                type(error).__name__,
                str(error)[:200],
            )
            LOGGER.debug("the invocation's error", exc_info=True)
            if self.mapping.bisect_on_error and len(records) > 1:  # a split is not a retry
                half = len(records) // 2
                self._process(shard, records[:half], retries=retries)
                self._process(shard, records[half:], retries=retries)
                return
            failed_from: int | None = 0
        else:
            failed_from = self._first_failure(result, records)
            if failed_from is None:
                return
        if self.mapping.max_retries < 0 or retries < self.mapping.max_retries:
            time.sleep(self.retry_delay_seconds)
            self._process(shard, records[failed_from:], retries=retries + 1)
        else:
            self._give_up(shard, records[failed_from:], retries + 1)

    def _first_failure(self, result: Any, records: list[dict[str, Any]]) -> int | None:
        """Where Lambda resumes after a response: the first failed record; None if all done."""
        if not self.mapping.report_item_failures or not isinstance(result, dict):
            return None
        failures = result.get("batchItemFailures") or []
        positions: dict[Any, int] = {self._sequence(r): i for i, r in enumerate(records)}
        found = [positions.get(f.get("itemIdentifier")) if isinstance(f, dict) else None for f in failures]
        if any(position is None for position in found):
            return 0  # an identifier that is not in the batch fails the whole batch, as on Lambda
        return min((p for p in found if p is not None), default=None)

    def _give_up(self, shard: str, records: list[dict[str, Any]], invocations: int) -> None:
        info_key, info = self._batch_info(shard, records)
        message = {
            "requestContext": {
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
                "functionArn": self.function_arn,
            },
            "version": "1.0",
            "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
            info_key: info,
        }
        LOGGER.error(
            "%s: %d record(s) not processed after %d invocation(s)",
            self.mapping.logical_id,
            len(records),
            invocations,
        )
        if self.queue_url is not None:
            self._sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(message))


class KinesisPoller(StreamPoller):
    """A Kinesis data stream's mapping: every shard read through the Kinesis API
    (``list_shards``, ``get_shard_iterator``, ``get_records``), records shaped as Lambda
    delivers them (``data`` in base64, times in seconds, ``eventID`` = shard:sequence),
    partial batch responses naming sequence numbers, and ``KinesisBatchInfo`` in the failure
    message. moto hands out stateless iterators (nothing to forget) and never trims a shard."""

    def _client(self) -> Any:
        import boto3

        return boto3.client("kinesis")

    def _shards(self) -> list[str]:
        shards = self._streams.list_shards(StreamARN=self.stream_arn)["Shards"]
        return [shard["ShardId"] for shard in shards]

    def _read(self, shard: str) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        after = self._positions.get(shard)
        start = (
            {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": after}
            if after
            else {"ShardIteratorType": "TRIM_HORIZON"}
        )
        iterator = self._streams.get_shard_iterator(StreamARN=self.stream_arn, ShardId=shard, **start)[
            "ShardIterator"
        ]
        while iterator:
            page = self._streams.get_records(ShardIterator=iterator, Limit=1000, StreamARN=self.stream_arn)
            if not page["Records"]:
                break
            self._positions[shard] = page["Records"][-1]["SequenceNumber"]
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
        return records

    def _shape(self, record: dict[str, Any], shard: str) -> dict[str, Any]:
        import base64

        arrived = record.get("ApproximateArrivalTimestamp")
        seconds = (
            arrived.timestamp() if isinstance(arrived, datetime.datetime) else float(arrived or time.time())
        )
        return {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": record["PartitionKey"],
                "sequenceNumber": record["SequenceNumber"],
                "data": base64.b64encode(record["Data"]).decode(),
                "approximateArrivalTimestamp": round(seconds, 3),
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": f"{shard}:{record['SequenceNumber']}",
            "eventName": "aws:kinesis:record",
            "awsRegion": self._region,
            "eventSourceARN": self.stream_arn,
        }

    @staticmethod
    def _sequence(record: dict[str, Any]) -> str:
        return str(record["kinesis"]["sequenceNumber"])

    def _batch_info(self, shard: str, records: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        def arrival(record: dict[str, Any]) -> str:
            seconds = float(record["kinesis"]["approximateArrivalTimestamp"])
            return datetime.datetime.fromtimestamp(seconds, datetime.UTC).isoformat(timespec="milliseconds")

        return "KinesisBatchInfo", {
            "shardId": shard,
            "startSequenceNumber": self._sequence(records[0]),
            "endSequenceNumber": self._sequence(records[-1]),
            "approximateArrivalOfFirstRecord": arrival(records[0]),
            "approximateArrivalOfLastRecord": arrival(records[-1]),
            "batchSize": len(records),
            "streamArn": self.stream_arn,
        }


class StreamMappings:
    """Every enabled stream mapping of the template, polled in one thread."""

    def __init__(
        self,
        template: dict[str, Any],
        physical_ids: dict[str, str],
        invoke: Invoke,
        *,
        poll_seconds: float = 0.25,
    ) -> None:
        self.mappings = [m for m in mappings_from_template(template) if m.enabled]
        self._physical, self._invoke, self._poll_seconds = physical_ids, invoke, poll_seconds
        self.pollers: list[StreamPoller] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, *, background: bool = True) -> None:
        import boto3

        dynamodb, kinesis = boto3.client("dynamodb"), boto3.client("kinesis")
        for mapping in self.mappings:
            poller: type[StreamPoller] = StreamPoller
            if mapping.kinesis:
                poller = KinesisPoller
                name = self._physical[mapping.source]
                stream_arn = kinesis.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"][
                    "StreamARN"
                ]
            else:
                table = dynamodb.describe_table(TableName=self._physical[mapping.table])["Table"]
                if "LatestStreamArn" not in table:
                    raise UnsupportedEventSourceMapping(
                        f"{mapping.logical_id}: {mapping.table} has no stream"
                    )
                stream_arn = table["LatestStreamArn"]
            queue = None if mapping.on_failure is None else self._physical[mapping.on_failure]
            self.pollers.append(
                poller(
                    mapping,
                    stream_arn,
                    queue,
                    self._invoke,
                    function_name=self._physical.get(mapping.function, mapping.function),
                )
            )
        if background and self.pollers:
            self._thread = threading.Thread(target=self._run, name="stream-mappings", daemon=True)
            self._thread.start()

    def poll(self, *, drain: bool = False) -> None:
        for poller in self.pollers:
            poller.poll(drain=drain)

    def _run(self) -> None:
        while not self._stop.wait(self._poll_seconds):
            try:
                self.poll()
            except Exception:
                LOGGER.exception("reading the event source mappings' streams failed")

    def stop(self) -> None:
        """Stop polling, after delivering what the stream holds now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        try:
            self.poll(drain=True)
        except Exception:
            LOGGER.exception("delivering the streams' last records failed")
