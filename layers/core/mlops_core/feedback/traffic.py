"""Counting the traffic each version served, exactly once per capture delivery.

The capture function adds a delivery's rows to each version's ``requests`` (and its shadow
version's ``shadow_requests``) in one transaction with a marker item named after the
delivery (``CAPTURE_BATCH#{first log event id}``, with a TTL): a redelivered batch finds the
marker and adds nothing. The counts are aggregated per delivery, so each version's totals
item takes one write per delivery, not one per prediction.

The same transaction adds them to the model's routing history (``routing.history``): per
model and time bucket of the predictions' own time, one item with every version's rows,
calls, errors and shadow rows — one more write per delivery and model (two when a delivery
straddles a bucket's end), under the same marker.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence

from mlops_core.errors import Conflict, Unavailable
from mlops_core.routing import history
from mlops_core.routing.repository import LATENCY_PREFIX, RoutingRepository
from mlops_core.routing.state import latency_bucket
from mlops_core.serving.capture import CapturedPrediction, ErrorLine
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable

#: DynamoDB's limit of operations per transaction (one of them is the marker).
MAX_OPERATIONS = 100
#: How long a delivery's marker is kept: CloudWatch Logs and Lambda stop redelivering long before.
MARKER_TTL_SECONDS = 2 * 86_400
#: Attempts at a transaction another one keeps cancelling (the rewards updater adds feedback
#: to the same totals items in transactions of its own: DynamoDB's TransactionConflict).
MAX_ATTEMPTS = 6


def serving_ms(latency_ms: float, model_load_ms: float | None) -> float:
    """A call's latency without the loading of its version: the first call of each container
    to a version fetches and opens it (tens to hundreds of ms), and with a few hundred calls
    a step those few calls would be its p99 — the guardrail would judge a candidate by its
    loads, not by how it serves. Loads are counted apart (``model_loads``)."""
    return max(latency_ms - (model_load_ms or 0.0), 0.0)


class TrafficCounter:
    def __init__(
        self,
        predictions: MetadataTable,
        metadata: MetadataTable,
        *,
        sleep: Callable[[float], None] = time.sleep,
        history_bucket_seconds: int = history.BUCKET_SECONDS,
    ) -> None:
        self.predictions = predictions
        self.routing = RoutingRepository(metadata)
        self.sleep = sleep
        self.history_bucket_seconds = history_bucket_seconds

    def count(
        self,
        rows: Iterable[CapturedPrediction],
        *,
        batch_id: str,
        now_s: int,
        errors: Iterable[ErrorLine] = (),
    ) -> bool:
        """Add the delivery's counts (rows served, calls, failed calls, latency per call);
        False when this delivery was counted before."""
        rows, errors = list(rows), list(errors)
        counts: Counter[tuple[str, int, str]] = Counter()
        calls: dict[tuple[str, int, str, int], tuple[float | None, float | None]] = {}
        for row in rows:
            counts[(row.model_name, row.model_version, "requests")] += 1
            if row.shadow_version is not None:
                counts[(row.model_name, row.shadow_version, "shadow_requests")] += 1
            # One call per request id and time (its rows, and the lines a large call is split into).
            call = (row.model_name, row.model_version, row.request_id or row.prediction_id, row.at_ms)
            calls.setdefault(call, (row.latency_ms, row.model_load_ms))
        for (model, version, _, _), (latency, load) in calls.items():
            counts[(model, version, "calls")] += 1
            if load is not None:
                counts[(model, version, "model_loads")] += 1
            if latency is not None:
                counts[(model, version, LATENCY_PREFIX + latency_bucket(serving_ms(latency, load)))] += 1
        for failed in errors:
            latency = serving_ms(failed.latency_ms, failed.model_load_ms)
            for counter in ("calls", "errors", LATENCY_PREFIX + latency_bucket(latency)):
                counts[(failed.model_name, failed.model_version, counter)] += 1
            if failed.model_load_ms is not None:
                counts[(failed.model_name, failed.model_version, "model_loads")] += 1
        by_variant: dict[tuple[str, int], dict[str, float]] = {}
        for (model, version, counter), n in counts.items():
            by_variant.setdefault((model, version), {})[counter] = n
        operations = [
            self.routing.add_to_variant_op(model, version, added)
            for (model, version), added in by_variant.items()
        ]
        operations += self._history_operations(rows, errors)
        counted_any = False
        chunk = MAX_OPERATIONS - 1
        for part, start in enumerate(range(0, max(len(operations), 1), chunk)):
            marker = self.predictions.put_op(
                {
                    keys.PARTITION_KEY: keys.capture_batch_pk(f"{batch_id}#{part}"),
                    keys.SORT_KEY: keys.CAPTURE_BATCH_SK,
                    keys.EXPIRES_AT: now_s + MARKER_TTL_SECONDS,
                },
                condition="attribute_not_exists(pk)",
            )
            try:
                self._transact([marker, *operations[start : start + chunk]])
            except Conflict as error:
                if error.cancellation_reasons[:1] != ["ConditionalCheckFailed"]:
                    raise
                continue  # this part of the delivery was counted before
            counted_any = True
        return counted_any

    def _history_operations(
        self, rows: Sequence[CapturedPrediction], errors: Sequence[ErrorLine]
    ) -> list[dict[str, object]]:
        """The delivery's rows, calls, errors and shadow rows per model and bucket of their time
        (one history item each, every version in it)."""
        seconds = self.history_bucket_seconds
        counts: Counter[tuple[str, int, int, str]] = Counter()
        calls: set[tuple[str, int, str, int]] = set()
        for row in rows:
            bucket = history.bucket_start(row.at_ms / 1000, seconds)
            counts[(row.model_name, bucket, row.model_version, "requests")] += 1
            if row.shadow_version is not None:
                counts[(row.model_name, bucket, row.shadow_version, "shadow_requests")] += 1
            calls.add((row.model_name, row.model_version, row.request_id or row.prediction_id, row.at_ms))
        for model, version, _, at_ms in calls:
            counts[(model, history.bucket_start(at_ms / 1000, seconds), version, "calls")] += 1
        for failed in errors:
            bucket = history.bucket_start(failed.at_ms / 1000, seconds)
            for counter in ("calls", "errors"):
                counts[(failed.model_name, bucket, failed.model_version, counter)] += 1
        by_bucket: dict[tuple[str, int], dict[int, dict[str, float]]] = {}
        for (model, bucket, version, counter), n in sorted(counts.items()):
            by_bucket.setdefault((model, bucket), {}).setdefault(version, {})[counter] = n
        return [
            self.routing.add_to_history_op(model, bucket, seconds, added)
            for (model, bucket), added in by_bucket.items()
        ]

    def _transact(self, operations: list[dict[str, object]]) -> None:
        for attempt in range(MAX_ATTEMPTS):
            try:
                self.predictions.transact(operations)
                return
            except Unavailable as error:
                contended = "TransactionConflict" in error.cancellation_reasons
                if not contended or attempt == MAX_ATTEMPTS - 1:
                    raise  # the delivery fails and is retried whole (every write is idempotent)
                self.sleep(random.uniform(0, 0.02 * 2**attempt))  # noqa: S311 (jitter, not a secret)
