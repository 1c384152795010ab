"""The prediction log: one item per captured prediction, kept for a TTL.

``PREDICTION#{id} / PREDICTION`` holds what served it (model, version, alias) and when as
attributes, and the whole captured row (inputs in signature order, output) as one JSON
string — DynamoDB numbers stop at 1E+126 and 38 digits, model inputs and outputs do not;
feedback is recorded beside it under ``FEEDBACK``. Captured predictions are written in
bulk: a redelivered batch writes the same items again, which changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

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
