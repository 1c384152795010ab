"""The bulk capture: captured predictions as JSON Lines in S3, by model and hour.

One object per model and delivery, named after the delivery's first log event id, so a
redelivered batch overwrites its own object with the same lines and nothing is counted
twice by a reader of the prefix. Drift checks and retraining read these in bulk: scanning
the prediction log for a million-row window would be neither fast nor cheap.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable

from mlops_core.serving.capture import CapturedPrediction
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore


class CaptureStore:
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    def write(self, predictions: Iterable[CapturedPrediction], *, batch_id: str) -> list[str]:
        """Write one JSON Lines object per model (and hour); returns their keys."""
        by_object: dict[str, list[str]] = defaultdict(list)
        for prediction in predictions:
            key = keys.capture_object(prediction.model_name, prediction.at_ms, batch_id)
            by_object[key].append(json.dumps(prediction.model_dump(mode="json"), separators=(",", ":")))
        for key, lines in by_object.items():
            self.store.put(key, ("\n".join(lines) + "\n").encode(), content_type="application/x-ndjson")
        return sorted(by_object)
