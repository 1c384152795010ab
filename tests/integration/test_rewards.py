"""Bandit reward updates against moto: every feedback is counted exactly once, on the arm that
served the prediction, however often and however concurrently its record is delivered."""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest

from mlops_core.feedback.reward_stream import count_stream_batch
from mlops_core.feedback.rewards import RewardUpdater
from mlops_core.routing import bandit
from mlops_core.routing.bandit import Arm
from mlops_core.storage.dynamo import MetadataTable
from tests.integration.rewards_support import (
    arms,
    counted_at,
    feedback,
    feedback_inserts,
    record_feedback,
    stream_records,
    variants,
)
from tests.support import PREDICTIONS_TABLE, TABLE, FakeLambdaContext, load_event


@pytest.fixture
def rewards(aws: None) -> ModuleType:
    from functions.rewards import handler

    return handler


def _updater(**options: Any) -> RewardUpdater:
    return RewardUpdater(
        MetadataTable(TABLE), MetadataTable(PREDICTIONS_TABLE, what="prediction log"), **options
    )


def _deliver(rewards: ModuleType, records: list[dict[str, Any]]) -> list[str]:
    """One invocation as Lambda makes it; the sequence numbers it reports as failed."""
    response = rewards.lambda_handler({"Records": records}, FakeLambdaContext())
    return [failure["itemIdentifier"] for failure in response["batchItemFailures"]]


def test_the_same_feedback_sent_100_times_and_delivered_twice_counts_once(
    rewards: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    given = feedback("p-1", version=2, reward=1.0)
    with ThreadPoolExecutor(max_workers=50) as pool:
        concurrent = list(pool.map(lambda _: record_feedback(given), range(50)))
    sequential = [record_feedback(given) for _ in range(50)]
    assert (concurrent + sequential).count(True) == 1
    records = stream_records()

    first = _deliver(rewards, records)
    again = _deliver(rewards, records)  # the same records in a second invocation
    doubled = _deliver(rewards, records + records)  # and twice within one batch

    assert first == again == doubled == []
    state = arms()
    assert state.arms == (Arm(2, 1.0, 0.0),)
    assert state.revision == 1
    totals = variants()[2]
    assert (totals.feedback, totals.rewarded, totals.reward_sum) == (1, 1, 1.0)
    assert counted_at("p-1") is not None
    out = capsys.readouterr().out
    assert '"RewardsCounted":[1.0]' in out.replace(" ", "") or '"RewardsCounted":1' in out.replace(" ", "")


def test_concurrent_batches_of_one_model_count_each_feedback_exactly_once(aws: None) -> None:
    rng = random.Random(11)
    given = [
        feedback(f"p-{i:03d}", version=rng.choice((1, 2, 3)), reward=rng.choice((0.0, 1.0, 1.0, None)))
        for i in range(240)
    ]
    for record in given:
        assert record_feedback(record)
    records = stream_records()
    batches = [records[i : i + 20] for i in range(0, len(records), 20)]
    deliveries = batches + batches  # every batch twice, by different "shards" at once
    rng.shuffle(deliveries)
    backoffs: list[float] = []
    updater = _updater(sleep=lambda seconds: (backoffs.append(seconds), time.sleep(seconds)))
    counted: list[str] = []

    def deliver(batch: list[dict[str, Any]]) -> None:
        while batch:  # as Lambda: failed records are delivered again
            outcome = count_stream_batch(updater, batch)
            counted.extend(outcome.outcome.counted)
            batch = [r for r in batch if outcome.error_of(r["dynamodb"]["SequenceNumber"])]

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(deliver, deliveries))

    assert sorted(counted) == sorted(r.prediction_id for r in given)  # each once, none twice
    print(f"\n{len(deliveries)} deliveries on 8 threads: {len(backoffs)} ARMS conflicts, read again")
    for version in (1, 2, 3):
        rewarded = [r.reward for r in given if r.model_version == version and r.reward is not None]
        arm = next(a for a in arms().arms if a.version == version)
        assert (arm.successes, arm.failures) == (sum(rewarded), len(rewarded) - sum(rewarded))
        totals = variants()[version]
        assert totals.feedback == sum(1 for r in given if r.model_version == version)
        assert (totals.rewarded, totals.reward_sum) == (len(rewarded), sum(rewarded))
    assert all(counted_at(r.prediction_id) for r in given)


def _set_bandit_policy(versions: tuple[int, ...], discount: float) -> None:
    from mlops_core.routing.policy import BanditPolicy
    from mlops_core.routing.repository import RoutingRepository
    from mlops_core.routing.state import StoredRouting

    repository = RoutingRepository(MetadataTable(TABLE))
    policy = BanditPolicy(versions=versions, discount=discount)
    routing = StoredRouting(model_name="m", policy=policy, revision=1)
    MetadataTable(TABLE).transact([repository.routing_op(routing, expected_revision=0)])


def test_with_a_discount_the_counts_are_bandit_update_applied_in_arrival_order(aws: None) -> None:
    _set_bandit_policy((1, 2), discount=0.9)
    rng = random.Random(5)
    given = [
        feedback(f"p-{i:02d}", version=rng.choice((1, 2)), reward=rng.choice((0.0, 1.0))) for i in range(60)
    ]
    for record in given:
        record_feedback(record)
    records = stream_records()
    updater = _updater()
    for start in range(0, len(records), 25):  # three batches, in stream order
        batch = records[start : start + 25]
        assert count_stream_batch(updater, batch).failed == 0
        assert count_stream_batch(updater, batch).counted == 0  # a replay changes nothing

    expected: tuple[Arm, ...] = ()
    for record in given:
        assert record.reward is not None
        expected = bandit.update(expected, record.model_version, [record.reward], discount=0.9)
    stored = {a.version: a for a in arms().arms}
    for arm in expected:
        assert stored[arm.version].successes == pytest.approx(arm.successes, rel=1e-12)
        assert stored[arm.version].failures == pytest.approx(arm.failures, rel=1e-12)
    assert sum(v.feedback for v in variants().values()) == 60  # the totals are never discounted


def test_a_batch_larger_than_one_transaction_is_counted_in_chunks(aws: None) -> None:
    given = [feedback(f"p-{i:03d}", version=1 + i % 12, reward=float(i % 2)) for i in range(230)]
    for record in given:
        record_feedback(record)

    outcome = count_stream_batch(_updater(), stream_records())

    assert (outcome.counted, outcome.failed) == (230, 0)
    state = arms()
    assert state.revision == 3  # 230 feedback over 12 versions: three transactions of <= 100 operations
    assert sum(a.successes for a in state.arms) == 115
    assert sum(a.failures for a in state.arms) == 115
    assert sum(v.feedback for v in variants().values()) == 230


def test_feedback_without_a_reward_counts_in_the_totals_not_in_the_arms(aws: None) -> None:
    record_feedback(feedback("p-1", version=3, reward=None))

    assert count_stream_batch(_updater(), stream_records()).counted == 1

    assert arms().arms == () and arms().revision == 0
    totals = variants()[3]
    assert (totals.feedback, totals.rewarded, totals.reward_sum) == (1, 0, 0.0)
    assert counted_at("p-1") is not None


def test_only_the_records_that_were_not_counted_are_reported(rewards: ModuleType) -> None:
    for i in range(3):
        record_feedback(feedback(f"a-{i}", version=1, reward=1.0, model="good"))
    record_feedback(feedback("b-0", version=1, reward=1.0, model="broken"))
    # The broken model's routing policy cannot be read: its feedback cannot be counted.
    MetadataTable(TABLE).put({"pk": "MODEL#broken", "sk": "ROUTING", "model_name": "broken", "policy": "?"})
    records = feedback_inserts(stream_records())
    unreadable = copy.deepcopy(records[0])
    unreadable["dynamodb"]["SequenceNumber"] = "999"
    del unreadable["dynamodb"]["NewImage"]["model_version"]

    failed = _deliver(rewards, [*records, unreadable])

    broken = next(r for r in records if "b-0" in r["dynamodb"]["Keys"]["pk"]["S"])
    assert sorted(failed) == sorted([broken["dynamodb"]["SequenceNumber"], "999"])
    assert arms("good").arms == (Arm(1, 3.0, 0.0),)
    assert arms("broken").revision == 0


def test_feedback_deleted_by_its_ttl_before_counting_is_not_counted(aws: None) -> None:
    record_feedback(feedback("p-1", version=1, reward=1.0))
    MetadataTable(PREDICTIONS_TABLE)._client.delete_item(
        TableName=PREDICTIONS_TABLE, Key={"pk": {"S": "PREDICTION#p-1"}, "sk": {"S": "FEEDBACK"}}
    )
    records = stream_records()
    assert [r["eventName"] for r in records] == ["INSERT", "REMOVE"]

    outcome = count_stream_batch(_updater(), records)

    assert (outcome.counted, outcome.already_counted, outcome.failed, outcome.ignored) == (0, 1, 0, 1)
    assert arms().revision == 0
    assert variants() == {}


def test_a_model_whose_counts_keep_changing_fails_its_records_and_writes_nothing(aws: None) -> None:
    for i in range(3):
        record_feedback(feedback(f"p-{i}", version=1, reward=1.0))
    records = stream_records()
    updater = _updater(max_attempts=3, sleep=lambda _: None)
    read_arms: Callable[..., Any] = updater.routing.arms
    rival = _updater()

    def arms_changed_by_a_rival(name: str, *, consistent: bool = False) -> Any:
        state = read_arms(name, consistent=consistent)
        rival.metadata.transact(
            [
                rival.routing.arms_op(
                    state.model_copy(update={"revision": state.revision + 1}),
                    expected_revision=state.revision,
                )
            ]
        )
        return state

    updater.routing.arms = arms_changed_by_a_rival  # type: ignore[method-assign]
    outcome = count_stream_batch(updater, records)

    assert (outcome.counted, outcome.failed) == (0, 3)
    assert "changed under 3 attempts" in str(outcome.error_of(records[0]["dynamodb"]["SequenceNumber"]))
    assert variants() == {} and not any(counted_at(f"p-{i}") for i in range(3))

    redelivered = count_stream_batch(_updater(), records)  # Lambda's retry, once the rival is quiet

    assert redelivered.counted == 3
    assert arms().arms == (Arm(1, 3.0, 0.0),)


def test_the_sample_stream_event_is_counted(rewards: ModuleType) -> None:
    event = load_event("rewards/feedback_stream.json")
    record_feedback(
        feedback("019ad8a3-1f40-7a2b-9c3d-4e5f60718293", version=1, reward=1.0, model="breast-cancer")
    )

    response = rewards.lambda_handler(event, FakeLambdaContext())

    assert response == {"batchItemFailures": []}
    assert arms("breast-cancer").arms == (Arm(1, 1.0, 0.0),)


def test_a_transaction_conflict_is_contention_read_again_not_a_counted_feedback(aws: None) -> None:
    """DynamoDB cancels a transaction with TransactionConflict when another transaction is
    changing one of its items (moto serializes them, so it is injected here)."""
    from botocore.exceptions import ClientError

    from mlops_core.storage.clients import client

    record_feedback(feedback("p-1", version=1, reward=1.0))
    # One reason per operation: the mark, ARMS, the variant totals, the history bucket.
    conflicts = iter([["TransactionConflict", "None", "None", "None"]])

    def cancel_once(**_: Any) -> None:
        codes = next(conflicts, None)
        if codes is not None:
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                    "CancellationReasons": [{"Code": code} for code in codes],
                },
                "TransactWriteItems",
            )

    events = client("dynamodb").meta.events
    events.register("before-call.dynamodb.TransactWriteItems", cancel_once, unique_id="conflict")
    slept: list[float] = []
    try:
        outcome = count_stream_batch(_updater(sleep=slept.append), stream_records())
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="conflict")

    assert (outcome.counted, outcome.already_counted, outcome.failed) == (1, 0, 0)
    assert len(slept) == 1  # backed off once, as for a moved ARMS revision
    assert arms().arms == (Arm(1, 1.0, 0.0),)


def test_a_feedback_image_already_marked_counted_is_not_counted_again(aws: None) -> None:
    """A restored local state writes counted feedback back (an INSERT with counted_at set)."""
    record_feedback(
        feedback("p-1", version=1, reward=1.0).model_copy(update={"counted_at": "2026-12-01T10:00:00.000Z"})
    )

    outcome = count_stream_batch(_updater(), stream_records())

    assert (outcome.counted, outcome.already_counted, outcome.failed) == (0, 1, 0)
    assert arms().revision == 0 and variants() == {}
