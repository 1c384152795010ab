"""The same feedback from 50 threads at once, then 50 more times: one FEEDBACK write wins,
every other answer is a duplicate carrying the winner's outcome, and the item never changes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from mlops_core.errors import Conflict
from mlops_core.feedback.prediction_log import LoggedPrediction, PredictionLog
from mlops_core.feedback.requests import FeedbackEntry
from mlops_core.feedback.service import FeedbackOutcome, FeedbackService
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.registry.service import ModelRegistry
from mlops_core.serving.capture import CapturedPrediction, prediction_ids
from mlops_core.storage.dynamo import MetadataTable
from tests.support import FEATURES, PREDICTIONS_TABLE, REGION, ROW0, TABLE

THREADS = 50


class RacingLog(PredictionLog):
    """The real log, except that every request's read waits until all of them have read:
    all 50 then find no feedback and race for the conditional write."""

    def __init__(self, table: MetadataTable, parties: int) -> None:
        super().__init__(table)
        self.barrier = threading.Barrier(parties, timeout=60)
        self.writes = 0
        self.conflicts = 0
        self._lock = threading.Lock()

    def get_with_feedback(self, prediction_id: str) -> LoggedPrediction:
        logged = super().get_with_feedback(prediction_id)
        self.barrier.wait()
        return logged

    def record_feedback(self, record: Any, *, expires_at: int) -> None:
        with self._lock:
            self.writes += 1
        try:
            super().record_feedback(record, expires_at=expires_at)
        except Conflict:
            with self._lock:
                self.conflicts += 1
            raise


@pytest.fixture
def prediction_id(registry: ModelRegistry, production_model: int) -> str:
    at_ms = int(time.time() * 1000)
    (prediction_id,) = prediction_ids(1, now_ms=at_ms)
    PredictionLog(MetadataTable(PREDICTIONS_TABLE)).record(
        [
            CapturedPrediction(
                prediction_id=prediction_id,
                model_name="breast-cancer",
                model_version=production_model,
                alias="production",
                at_ms=at_ms,
                features=FEATURES,
                inputs=ROW0,
                prediction=0,
                probabilities=[0.98, 0.02],
            )
        ]
    )
    return prediction_id


def _feedback_items() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=PREDICTIONS_TABLE)["Items"]
    return [item for item in items if item["sk"]["S"] == "FEEDBACK"]


def test_fifty_concurrent_feedbacks_write_once_and_all_answer_the_winner(prediction_id: str) -> None:
    log = RacingLog(MetadataTable(PREDICTIONS_TABLE, what="prediction log"), THREADS)
    service = FeedbackService(log, RegistryLookup(MetadataTable(TABLE)))
    entry = FeedbackEntry(prediction_id=prediction_id, label=0)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        concurrent = list(pool.map(lambda _: service.record(entry), range(THREADS)))
    stored = _feedback_items()
    sequential = [
        FeedbackService(PredictionLog(log.table), service.registry).record(entry) for _ in range(50)
    ]

    outcomes: list[FeedbackOutcome] = concurrent + sequential
    assert (log.writes, log.conflicts) == (THREADS, THREADS - 1)  # every thread raced for the write
    assert sum(not o.duplicate for o in outcomes) == 1
    assert all(o.matches_original for o in outcomes)
    winner = next(o.record for o in outcomes if not o.duplicate)
    assert all(o.record == winner for o in outcomes)
    assert (winner.label, winner.reward, winner.model_version) == (0, 1.0, 1)
    assert len(stored) == 1
    assert _feedback_items() == stored
