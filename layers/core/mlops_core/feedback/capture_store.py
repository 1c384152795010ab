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
from concurrent.futures import ThreadPoolExecutor

from mlops_core.serving.capture import CapturedPrediction
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore

#: Objects read at once by ``window`` (S3 serves many small GETs best in parallel).
READ_CONCURRENCY = 16


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

    def window(
        self, model_name: str, *, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[CapturedPrediction]:
        """The model's captured predictions made in [start_ms, end_ms), oldest first; with
        ``limit``, the newest ``limit`` of them (objects are read newest first, in parallel,
        until the limit is reached). A redelivered batch rewrote its own object, so no
        prediction appears twice."""
        hours = keys.capture_hours(model_name, start_ms, end_ms)
        newest_first = [key for hour in reversed(hours) for key in reversed(list(self.store.keys(hour)))]
        rows: list[CapturedPrediction] = []
        with ThreadPoolExecutor(max_workers=READ_CONCURRENCY) as pool:
            for start in range(0, len(newest_first), READ_CONCURRENCY):
                chunk = newest_first[start : start + READ_CONCURRENCY]
                for data in pool.map(lambda key: self.store.get(key).data, chunk):
                    for line in data.splitlines():
                        if line.strip():
                            row = CapturedPrediction.model_validate_json(line)
                            if start_ms <= row.at_ms < end_ms:
                                rows.append(row)
                if limit is not None and len(rows) >= limit:
                    break
        rows.sort(key=lambda row: row.at_ms)
        return rows[-limit:] if limit is not None else rows
