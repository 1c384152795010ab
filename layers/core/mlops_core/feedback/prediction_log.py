"""The prediction log: one item per captured prediction, kept for a TTL.

``PREDICTION#{id} / PREDICTION`` holds what served it (model, version, alias) and when as
attributes, and the whole captured row (inputs in signature order, output) as one JSON
string — DynamoDB numbers stop at 1E+126 and 38 digits, model inputs and outputs do not;
feedback is recorded beside it under ``FEEDBACK``. Captured predictions are written in
bulk: a redelivered batch writes the same items again, which changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.serving.capture import CapturedPrediction
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable

DEFAULT_TTL_DAYS = 30


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
