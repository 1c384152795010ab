"""Bandit reward updates: recorded feedback added, exactly once, to the arm that served it.

The rewards function receives ``FEEDBACK`` items from the prediction log's stream and
hands them here in batches. Per batch, per model, one DynamoDB transaction (chunked to
DynamoDB's 100 operations) makes of the feedback:

* per feedback, an update of its ``FEEDBACK`` item setting ``counted_at``, conditioned on
  the item existing and not being counted yet: a redelivered or duplicated record, or a
  feedback the TTL has deleted, fails its condition and is dropped;
* the model's ``ARMS`` item, put with the rewards added by ``routing.bandit.update`` (in
  arrival order, with the discount of the model's bandit policy if it has one) under the
  revision it was read at: a concurrent updater that counted first makes it fail, and the
  counts are read again;
* per version, an addition to its ``VARIANT#…`` totals (feedback, rewarded, reward_sum);
* the model's routing history (``routing.history``): the same additions in the bucket of the
  counting time, and the bucket's posterior snapshot (every arm after this commit, with its
  mean and 90% interval under the policy's prior) — cancelled with the rest, so a retried
  feedback is in the history once too.

A cancelled transaction says which operations failed (``cancellation_reasons``): feedback
whose condition failed is counted already (or gone) and is dropped, the rest retried at
once; any other failure — the ``ARMS`` revision moved (another updater counted), a
``TransactionConflict`` (another transaction was changing an item, as DynamoDB reports
concurrent transactions), throttling — is read again after a jittered back-off, at most
``max_attempts`` times, then the chunk fails and its records are reported as failures
(Lambda delivers them again). Nothing is ever half counted: the mark and the counts are
one transaction, and a transaction botocore sends again after a lost response finds its
feedback marked and counts nothing twice.

Throughput. Aggregating per batch writes the hot ``ARMS`` item once per chunk (up to
``TRANSACTION_LIMIT - 2 - versions`` feedback, 88 with ten versions) instead of once per
feedback. Writes to one model's ``ARMS`` item are serialized by its revision, so one
model's rate is bounded by the commits per second one item takes, about 1 / (consistent
read + transaction latency): with ~10-25 ms for both in one Region, 40-100 commits/s,
that is 3,500-9,000 feedback/s per model at full batches (DynamoDB's own limit of 1,000
write units per second per partition is further: a transaction costs 2 units per KB of
each item, ~2 for ``ARMS``). Concurrent batches of one model (several stream shards) only
add retries past that point; beyond it, the counts would have to be sharded
(``ARMS#{shard}`` summed on read). The ``FEEDBACK`` items spread over the prediction log's
partitions and are never hot. See docs/architecture.md, "Bandit reward updates".
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_core.clock import now_iso, parse_iso
from mlops_core.errors import Conflict, Unavailable
from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.routing import bandit, history
from mlops_core.routing.policy import BanditPolicy
from mlops_core.routing.repository import RoutingRepository
from mlops_core.routing.state import ArmsState
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable

LOGGER = logging.getLogger(__name__)

#: TransactWriteItems takes at most 100 operations.
TRANSACTION_LIMIT = 100
#: Attempts at one chunk while other updaters keep changing the model's ARMS item.
DEFAULT_MAX_ATTEMPTS = 8
COUNTED_AT = "counted_at"
#: The cancellation reason of an operation whose condition failed.
CONDITION_FAILED = "ConditionalCheckFailed"


class ArmsContended(Unavailable):
    """The model's counts changed under every attempt: the feedback is left to a redelivery."""


@dataclass
class CountOutcome:
    """What one ``RewardUpdater.count`` did, by prediction id."""

    counted: list[str] = field(default_factory=list)
    #: Counted before (by an earlier delivery), gone (expired), or repeated in this batch.
    already_counted: list[str] = field(default_factory=list)
    failed: dict[str, Exception] = field(default_factory=dict)

    def error_of(self, prediction_id: str) -> Exception | None:
        return self.failed.get(prediction_id)


class RewardUpdater:
    def __init__(
        self,
        metadata: MetadataTable,
        predictions: MetadataTable,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base_seconds: float = 0.02,
        backoff_cap_seconds: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        now: Callable[[], str] = now_iso,
        history_bucket_seconds: int = history.BUCKET_SECONDS,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.metadata = metadata
        self.predictions = predictions
        self.routing = RoutingRepository(metadata)
        self.max_attempts = max_attempts
        self._backoff = (backoff_base_seconds, backoff_cap_seconds)
        self._sleep = sleep
        self._jitter = jitter
        self._now = now
        self.history_bucket_seconds = history_bucket_seconds

    def count(self, feedback: Iterable[FeedbackRecord]) -> CountOutcome:
        """Count each feedback once, in arrival order; models are independent of each other."""
        outcome = CountOutcome()
        by_model: dict[str, list[FeedbackRecord]] = defaultdict(list)
        seen: set[str] = set()
        for record in feedback:
            if record.prediction_id in seen or record.counted_at is not None:
                # Two operations on one item would fail the whole transaction; a counted image
                # (a restored or replayed item) needs no transaction to know it.
                outcome.already_counted.append(record.prediction_id)
                continue
            seen.add(record.prediction_id)
            by_model[record.model_name].append(record)
        for model, records in by_model.items():
            self._count_model(model, records, outcome)
        return outcome

    def _count_model(self, model: str, records: list[FeedbackRecord], outcome: CountOutcome) -> None:
        position = 0
        try:
            policy = self._bandit_policy(model)
            for position, chunk in _chunks(records):  # noqa: B007 (read after a failure)
                counted, already = self._commit(model, chunk, policy)
                outcome.counted.extend(r.prediction_id for r in counted)
                outcome.already_counted.extend(r.prediction_id for r in already)
        except Exception as error:
            # The model's later feedback is not attempted: the stream is redelivered from the
            # first failed record anyway, and discounted counts keep their arrival order.
            LOGGER.exception("feedback of model %r not counted", model, extra={"model_name": model})
            for record in records[position:]:
                outcome.failed[record.prediction_id] = error

    def _bandit_policy(self, model: str) -> BanditPolicy | None:
        """The model's bandit policy (its discount and priors), None under any other policy."""
        stored = self.routing.routing(model)
        policy = None if stored is None else stored.policy
        return policy if isinstance(policy, BanditPolicy) else None

    def _commit(
        self, model: str, chunk: list[FeedbackRecord], policy: BanditPolicy | None
    ) -> tuple[list[FeedbackRecord], list[FeedbackRecord]]:
        """Count ``chunk`` in one transaction; returns (counted now, counted before or gone)."""
        pending, already, contended = list(chunk), list[FeedbackRecord](), 0
        while pending:
            state = self.routing.arms(model, consistent=True)
            operations = self._operations(model, pending, state, policy)
            try:
                self.metadata.transact(operations)
            except (Conflict, Unavailable) as cancelled:
                reasons = cancelled.cancellation_reasons
                if len(reasons) != len(operations):
                    raise  # not a cancelled transaction (unreachable, refused...): nothing to sort out
                marks = reasons[: len(pending)]
                already.extend(
                    r for r, reason in zip(pending, marks, strict=True) if reason == CONDITION_FAILED
                )
                pending = [r for r, reason in zip(pending, marks, strict=True) if reason != CONDITION_FAILED]
                # Anything else that failed is contention (ARMS counted by another updater, a
                # TransactionConflict on an item another transaction was changing, throttling):
                # read again, after a back-off, a bounded number of times.
                if any(m and m != CONDITION_FAILED for m in marks) or any(reasons[len(marks) :]):
                    contended += 1
                    if contended >= self.max_attempts:
                        raise ArmsContended(
                            f"the bandit counts of model '{model}' changed under {contended} attempts",
                            retry_after_seconds=1,
                        ) from cancelled
                    self._sleep(self._delay(contended))
                continue
            return pending, already
        return [], already

    def _operations(
        self, model: str, pending: Sequence[FeedbackRecord], state: ArmsState, policy: BanditPolicy | None
    ) -> list[dict[str, Any]]:
        """The transaction: the feedback marks first (in ``pending``'s order), then the ARMS
        put (unless no feedback carries a reward), then the variant totals, then the history."""
        at = self._now()
        discount = None if policy is None else policy.discount
        operations = [
            self.predictions.update_op(
                keys.prediction_pk(record.prediction_id),
                keys.FEEDBACK_SK,
                update="SET #counted = :at",
                condition=f"attribute_exists({keys.PARTITION_KEY}) AND attribute_not_exists(#counted)",
                names={"#counted": COUNTED_AT},
                values={":at": at},
            )
            for record in pending
        ]
        arms = state.arms
        for version, rewards in _reward_runs(pending):
            arms = bandit.update(arms, version, rewards, discount=discount)
        rewarded = any(record.reward is not None for record in pending)
        if rewarded:
            updated = ArmsState(model_name=model, arms=arms, revision=state.revision + 1, updated_at=at)
            operations.append(self.routing.arms_op(updated, expected_revision=state.revision))
        totals = _variant_totals(pending)
        for version, added in totals.items():
            operations.append(self.routing.add_to_variant_op(model, version, added))
        alpha0, beta0 = (policy.alpha0, policy.beta0) if policy is not None else (1.0, 1.0)
        operations.append(
            self.routing.add_to_history_op(
                model,
                history.bucket_start(parse_iso(at).timestamp(), self.history_bucket_seconds),
                self.history_bucket_seconds,
                totals,
                posterior=history.snapshot(arms, alpha0=alpha0, beta0=beta0) if rewarded else None,
                posterior_at=at,
            )
        )
        return operations

    def _delay(self, attempt: int) -> float:
        base, cap = self._backoff
        return float(self._jitter() * min(cap, base * 2**attempt))  # "full jitter"


def _chunks(records: list[FeedbackRecord]) -> Iterator[tuple[int, list[FeedbackRecord]]]:
    """``records`` in consecutive chunks whose transaction fits ``TRANSACTION_LIMIT``: one
    operation per feedback, one for ARMS, one per version, one for the history bucket (with
    its start position)."""
    start, chunk, versions = 0, list[FeedbackRecord](), set[int]()
    for position, record in enumerate(records):
        grown = versions | {record.model_version}
        if chunk and len(chunk) + 1 + 1 + len(grown) + 1 > TRANSACTION_LIMIT:
            yield start, chunk
            start, chunk, grown = position, [], {record.model_version}
        chunk.append(record)
        versions = grown
    if chunk:
        yield start, chunk


def _reward_runs(records: Sequence[FeedbackRecord]) -> Iterator[tuple[int, list[float]]]:
    """Consecutive rewards of one version, in arrival order (feedback without a reward skipped)."""
    runs: list[tuple[int, list[float]]] = []
    for record in records:
        if record.reward is None:
            continue
        if runs and runs[-1][0] == record.model_version:
            runs[-1][1].append(record.reward)
        else:
            runs.append((record.model_version, [record.reward]))
    return iter(runs)


def _variant_totals(records: Sequence[FeedbackRecord]) -> dict[int, dict[str, float]]:
    """Per version: the feedback, how many carried a reward, and their sum (never discounted)."""
    versions = dict.fromkeys(record.model_version for record in records)
    totals: dict[int, dict[str, float]] = {}
    for version in versions:
        mine = [record for record in records if record.model_version == version]
        rewards = [record.reward for record in mine if record.reward is not None]
        totals[version] = {"feedback": len(mine), "rewarded": len(rewards), "reward_sum": math.fsum(rewards)}
    return totals
