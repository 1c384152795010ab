"""The prediction log: one item per captured prediction, kept for a TTL.

``PREDICTION#{id} / PREDICTION`` holds what served it (model, version, alias) and when as
attributes, and the whole captured row (inputs in signature order, output) as one JSON
string — DynamoDB numbers stop at 1E+126 and 38 digits, model inputs and outputs do not;
feedback is recorded beside it under ``FEEDBACK``. Captured predictions are written in
bulk: a redelivered batch writes the same items again, which changes nothing. Feedback is
written once (``record_feedback``: conditioned on no ``FEEDBACK`` item), and read back with
its prediction in one Query of the partition (``get_with_feedback``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.serving.capture import CapturedPrediction
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable

DEFAULT_TTL_DAYS = 30


@dataclass(frozen=True)
class LoggedPrediction:
    """What the log holds under one prediction id: the prediction and the feedback on it, each
    None when absent, with the items' expiry (``expires_at``, Unix seconds). DynamoDB deletes
    expired items within days, not at once: the reader decides what has expired."""

    prediction_id: str
    prediction: CapturedPrediction | None
    expires_at: int | None
    feedback: FeedbackRecord | None
    feedback_expires_at: int | None
    #: What served the prediction, as the ``PREDICTION`` item's attributes name it.
    model_name: str | None = None
    model_version: int | None = None


class PredictionLog:
    def __init__(self, table: MetadataTable, *, ttl_days: int = DEFAULT_TTL_DAYS) -> None:
        self.table = table
        self.ttl_seconds = ttl_days * 86_400

    def record(self, predictions: Iterable[CapturedPrediction]) -> int:
        items = [self._item(p) for p in predictions]
        self.table.batch_put(items)
        return len(items)

    def get(self, prediction_id: str) -> CapturedPrediction | None:
        item = self.table.get(keys.prediction_pk(prediction_id), keys.PREDICTION_SK)
        if item is None:
            return None
        return CapturedPrediction.model_validate_json(item["row"])

    def get_with_feedback(self, prediction_id: str) -> LoggedPrediction:
        """The prediction and its feedback, in one (eventually consistent) Query."""
        items = {item[keys.SORT_KEY]: item for item in self.table.query(keys.prediction_pk(prediction_id))}
        prediction, feedback = items.get(keys.PREDICTION_SK), items.get(keys.FEEDBACK_SK)
        return LoggedPrediction(
            prediction_id=prediction_id,
            prediction=CapturedPrediction.model_validate_json(prediction["row"]) if prediction else None,
            expires_at=_expiry(prediction),
            feedback=feedback_from_item(feedback) if feedback else None,
            feedback_expires_at=_expiry(feedback),
            model_name=prediction["model_name"] if prediction else None,
            model_version=int(prediction["model_version"]) if prediction else None,
        )

    def feedback(self, prediction_id: str, *, consistent: bool = True) -> FeedbackRecord | None:
        """The feedback recorded on a prediction (consistent by default: read right after a
        conditional write lost, it must see the write that won)."""
        item = self.table.get(keys.prediction_pk(prediction_id), keys.FEEDBACK_SK, consistent=consistent)
        return feedback_from_item(item) if item else None

    def record_feedback(self, record: FeedbackRecord, *, expires_at: int) -> None:
        """Write the ``FEEDBACK`` item once: ``Conflict`` if one is there already."""
        self.table.put(feedback_item(record, expires_at=expires_at), condition="attribute_not_exists(pk)")

    def _item(self, prediction: CapturedPrediction) -> dict[str, Any]:
        return {
            keys.PARTITION_KEY: keys.prediction_pk(prediction.prediction_id),
            keys.SORT_KEY: keys.PREDICTION_SK,
            keys.EXPIRES_AT: prediction.at_ms // 1000 + self.ttl_seconds,
            "model_name": prediction.model_name,
            "model_version": prediction.model_version,
            "alias": prediction.alias,
            "at_ms": prediction.at_ms,
            "row": prediction.model_dump_json(),
        }


def _expiry(item: Mapping[str, Any] | None) -> int | None:
    value = item.get(keys.EXPIRES_AT) if item else None
    return None if value is None else int(value)


def feedback_item(record: FeedbackRecord, *, expires_at: int) -> dict[str, Any]:
    """The ``FEEDBACK`` item of ``record`` (labels and predictions as JSON strings, as the
    captured row keeps them: DynamoDB numbers cannot hold every JSON number)."""
    item: dict[str, Any] = {
        keys.PARTITION_KEY: keys.prediction_pk(record.prediction_id),
        keys.SORT_KEY: keys.FEEDBACK_SK,
        keys.EXPIRES_AT: expires_at,
        "prediction_id": record.prediction_id,
        "model_name": record.model_name,
        "model_version": record.model_version,
        "at_ms": record.at_ms,
        "prediction_at_ms": record.prediction_at_ms,
        "label_json": json.dumps(record.label, allow_nan=False),
        "prediction_json": json.dumps(record.prediction, allow_nan=False),
    }
    if record.reward is not None:
        item["reward"] = record.reward
    if record.counted_at is not None:
        item["counted_at"] = record.counted_at
    return item


def feedback_from_item(item: Mapping[str, Any]) -> FeedbackRecord:
    """A ``FEEDBACK`` item (as ``MetadataTable`` returns it, or a stream image deserialized
    with ``mlops_core.storage.dynamo.deserialize``) back as a record."""
    return FeedbackRecord(
        prediction_id=item["prediction_id"],
        model_name=item["model_name"],
        model_version=int(item["model_version"]),
        reward=None if item.get("reward") is None else float(item["reward"]),
        label=json.loads(item.get("label_json", "null")),
        prediction=json.loads(item.get("prediction_json", "null")),
        at_ms=int(item["at_ms"]),
        prediction_at_ms=int(item["prediction_at_ms"]),
        counted_at=item.get("counted_at"),
    )
