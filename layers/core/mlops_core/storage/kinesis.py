"""The Kinesis adapter: entries onto a data stream, in order per partition key.

``PutRecords`` does not keep the order of a request's records when some of them fail and
are sent again (a later record of the same key may already be in the stream). So a
request here never holds two records of one partition key: entries are sent in rounds,
each round at most one entry per key, a round's failed entries retried before the next
round starts. The stream function sends one entry per key per invocation (its results for
that key, in order), so that is one round.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from mlops_core.errors import Unavailable
from mlops_core.storage.clients import client, translate_errors

#: PutRecords takes at most 500 entries and 5 MiB per request, 1 MiB per record.
MAX_ENTRIES_PER_REQUEST = 500
MAX_RECORD_BYTES = 1_000_000
#: Attempts of an entry that Kinesis refused (throttled), with a doubling pause.
ATTEMPTS = 5
FIRST_PAUSE_SECONDS = 0.1


@dataclass(frozen=True)
class Entry:
    partition_key: str
    data: bytes


def rounds(entries: Sequence[Entry]) -> list[list[Entry]]:
    """The entries in rounds that hold each partition key at most once, keeping each key's order."""
    out: list[list[Entry]] = []
    seen: dict[str, int] = {}
    for entry in entries:
        index = seen.get(entry.partition_key, -1) + 1
        seen[entry.partition_key] = index
        if index == len(out):
            out.append([])
        out[index].append(entry)
    return out


class KinesisStream:
    what = "output stream"

    def __init__(self, stream_name: str, *, sleep: float = FIRST_PAUSE_SECONDS) -> None:
        self.stream_name = stream_name
        self.pause_seconds = sleep

    def put(self, entries: Sequence[Entry]) -> None:
        """Write every entry (each key's in order) or raise ``Unavailable``; an entry may be
        written twice when a call fails after Kinesis took it (consumers dedupe by id)."""
        for entry in entries:
            if len(entry.data) + len(entry.partition_key.encode()) > MAX_RECORD_BYTES:
                raise ValueError(f"a record of {len(entry.data)} bytes is over Kinesis's 1 MB")
        for round_ in rounds(entries):
            for start in range(0, len(round_), MAX_ENTRIES_PER_REQUEST):
                self._put_all(round_[start : start + MAX_ENTRIES_PER_REQUEST])

    def _put_all(self, entries: list[Entry]) -> None:
        pending, pause = entries, self.pause_seconds
        for attempt in range(ATTEMPTS):
            with translate_errors(self.what):
                response = client("kinesis").put_records(
                    StreamName=self.stream_name,
                    Records=[{"PartitionKey": e.partition_key, "Data": e.data} for e in pending],
                )
            if not response.get("FailedRecordCount"):
                return
            pending = [
                entry
                for entry, result in zip(pending, response["Records"], strict=True)
                if result.get("ErrorCode")
            ]
            if attempt + 1 < ATTEMPTS:
                time.sleep(pause)
                pause *= 2
        raise Unavailable(f"{self.what} refused {len(pending)} record(s) (throttled)", retry_after_seconds=1)
