"""The bulk feedback: recorded feedback as JSON Lines in S3, by model and hour of recording.

The ``feedback-capture`` function reads the prediction log's stream (the same ``FEEDBACK``
inserts the rewards updater counts, through a second event source mapping) and writes one
object per model, hour and stream batch, named after the batch's first sequence number:
``feedback/{model}/{yyyy}/{mm}/{dd}/{hh}/{sequence}.jsonl``. A batch that fails is delivered
again whole (the mapping neither bisects nor reports partial failures), so a redelivery
rewrites its own object with the same lines. Concept drift and retraining datasets read
these in bulk (``FeedbackStore.window``), as drift reads the captured predictions.

Each line is a ``FeedbackRecord`` without ``counted_at``: prediction id, model, the version
that served the prediction, reward, label, the prediction, when the feedback was recorded
(``at_ms``) and when the prediction was made (``prediction_at_ms``). A prediction has at
most one feedback (the ``FEEDBACK`` item is written once), so a reader keeps one line per
prediction id even where two objects hold it (a batch that went to the mapping's failure
queue and was redriven by hand in other batches, say).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.feedback.reward_stream import UnreadableFeedback, feedback_of
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore

#: Objects read at once by ``window`` (S3 serves many small GETs best in parallel).
READ_CONCURRENCY = 16
#: What a line leaves out of the record: the rewards updater's mark, set after the insert.
_NOT_WRITTEN = {"counted_at"}


@dataclass
class StreamFeedback:
    """The feedback a batch of stream records inserts, and what else the batch held."""

    batch_id: str
    feedback: list[FeedbackRecord] = field(default_factory=list)
    #: Records that were not a feedback insert (a MODIFY, a REMOVE, a prediction).
    ignored: int = 0
    #: Sequence number -> why its feedback cannot be read (the rewards function reports
    #: the same records as failures; retrying would not make them readable).
    unreadable: dict[str, str] = field(default_factory=dict)


def stream_feedback(records: Iterable[Mapping[str, Any]]) -> StreamFeedback:
    """The feedback inserted by ``records`` (Lambda's ``event["Records"]``), in stream order;
    the batch is named after its first record's sequence number."""
    listed = list(records)
    first = (listed[0].get("dynamodb") or {}).get("SequenceNumber") if listed else None
    batch = StreamFeedback(batch_id=str(first) if first else "empty")
    seen: set[str] = set()
    for record in listed:
        sequence_number = str((record.get("dynamodb") or {}).get("SequenceNumber"))
        try:
            found = feedback_of(record)
        except UnreadableFeedback as error:
            batch.unreadable[sequence_number] = str(error)
            continue
        if found is None:
            batch.ignored += 1
        elif found.prediction_id not in seen:
            seen.add(found.prediction_id)
            batch.feedback.append(found)
    return batch


class FeedbackStore:
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def write(self, feedback: Iterable[FeedbackRecord], *, batch_id: str) -> list[str]:
        """Write one JSON Lines object per model (and hour of recording); returns their keys."""
        by_object: dict[str, list[str]] = defaultdict(list)
        for record in feedback:
            key = keys.feedback_object(record.model_name, record.at_ms, batch_id)
            line = record.model_dump(mode="json", exclude=_NOT_WRITTEN)
            by_object[key].append(json.dumps(line, separators=(",", ":")))
        for key, lines in by_object.items():
            self.store.put(key, ("\n".join(lines) + "\n").encode(), content_type="application/x-ndjson")
        return sorted(by_object)

    def window(
        self, model_name: str, *, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[FeedbackRecord]:
        """The model's feedback recorded in [start_ms, end_ms), oldest first (by recording
        time, then prediction id), one per prediction; with ``limit``, the newest ``limit``
        (objects are read newest first, in parallel, until the limit is reached)."""
        hours = keys.feedback_hours(model_name, start_ms, end_ms)
        newest_first = [key for hour in reversed(hours) for key in reversed(list(self.store.keys(hour)))]
        found: dict[str, FeedbackRecord] = {}
        with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
            for start in range(0, len(newest_first), READ_CONCURRENCY):
                chunk = newest_first[start : start + READ_CONCURRENCY]
                for data in pool.map(lambda key: self.store.get(key).data, chunk):
                    for line in data.splitlines():
                        if not line.strip():
                            continue
                        record = FeedbackRecord.model_validate_json(line)
                        if record.model_name == model_name and start_ms <= record.at_ms < end_ms:
                            found.setdefault(record.prediction_id, record)
                if limit is not None and len(found) >= limit:
                    break
        rows = sorted(found.values(), key=lambda record: (record.at_ms, record.prediction_id))
        return rows[-limit:] if limit is not None else rows
