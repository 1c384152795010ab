"""The prediction log's stream records, as the rewards function receives them, counted.

Only the ``INSERT`` of a ``FEEDBACK`` item carries a feedback to count (the event source
mapping's filter lets nothing else through; the checks here hold without it): a
``MODIFY`` is the updater's own ``counted_at``, a ``REMOVE`` the TTL deleting an item,
and predictions are not feedback. Those are ignored.

``count_stream_batch`` counts a whole batch first (the updater aggregates per model),
then answers per record, by sequence number, whether it was counted: the handler reports
the records that were not as the batch's item failures, and Lambda delivers them again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.feedback.prediction_log import feedback_from_item
from mlops_core.feedback.rewards import CountOutcome, RewardUpdater
from mlops_core.storage import keys
from mlops_core.storage.dynamo import deserialize

INSERT = "INSERT"


class UnreadableFeedback(ValueError):
    """A stream record whose feedback cannot be read (or carries a reward outside [0, 1])."""


class FeedbackNotCounted(Exception):
    """A record of the batch that was not counted; the reason is its ``__cause__``."""


def feedback_of(record: Mapping[str, Any]) -> FeedbackRecord | None:
    """The feedback a stream record inserts, or None for any other change."""
    if record.get("eventName") != INSERT:
        return None
    change = record.get("dynamodb") or {}
    try:
        item_keys = deserialize(change.get("Keys") or {})
    except (TypeError, ValueError) as error:
        raise UnreadableFeedback(f"unreadable keys: {error}") from error
    if item_keys.get(keys.SORT_KEY) != keys.FEEDBACK_SK:
        return None
    image = change.get("NewImage")
    if not image:
        raise UnreadableFeedback("the record has no new image (the stream must carry NEW_IMAGE)")
    try:
        feedback = feedback_from_item(deserialize(image))
    except (KeyError, TypeError, ValueError) as error:  # pydantic's and json's errors are ValueErrors
        raise UnreadableFeedback(f"unreadable feedback: {type(error).__name__}: {error}") from error
    if feedback.reward is not None and not 0.0 <= feedback.reward <= 1.0:
        raise UnreadableFeedback(f"a reward is in [0, 1], not {feedback.reward!r}")
    return feedback


@dataclass
class StreamBatchOutcome:
    """One batch counted: per record (by sequence number), what happened to it."""

    outcome: CountOutcome
    #: sequence number -> the prediction id it carries, None (ignored) or why it is unreadable.
    records: dict[str, str | UnreadableFeedback | None] = field(default_factory=dict)

    @property
    def counted(self) -> int:
        return len(self.outcome.counted)

    @property
    def already_counted(self) -> int:
        return len(self.outcome.already_counted)

    @property
    def ignored(self) -> int:
        return sum(1 for carried in self.records.values() if carried is None)

    @property
    def failed(self) -> int:
        return sum(1 for sequence_number in self.records if self.error_of(sequence_number) is not None)

    def error_of(self, sequence_number: str | None) -> Exception | None:
        if sequence_number is None or sequence_number not in self.records:
            return FeedbackNotCounted(f"record {sequence_number!r} is not part of this batch")
        carried = self.records[sequence_number]
        if carried is None:
            return None
        if isinstance(carried, UnreadableFeedback):
            return carried
        return self.outcome.error_of(carried)

    def check(self, sequence_number: str | None) -> None:
        """Raise ``FeedbackNotCounted`` unless the record was counted, counted before, or ignored."""
        error = self.error_of(sequence_number)
        if error is not None:
            raise FeedbackNotCounted(f"record {sequence_number} not counted: {error}") from error


def count_stream_batch(updater: RewardUpdater, records: Iterable[Mapping[str, Any]]) -> StreamBatchOutcome:
    """Count the feedback of a batch of stream records (Lambda's ``event["Records"]``)."""
    carried: dict[str, str | UnreadableFeedback | None] = {}
    feedback: list[FeedbackRecord] = []
    for record in records:
        sequence_number = str((record.get("dynamodb") or {}).get("SequenceNumber"))
        try:
            found = feedback_of(record)
        except UnreadableFeedback as error:
            carried[sequence_number] = error
            continue
        carried[sequence_number] = None if found is None else found.prediction_id
        if found is not None:
            feedback.append(found)
    return StreamBatchOutcome(outcome=updater.count(feedback), records=carried)
