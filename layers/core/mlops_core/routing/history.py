"""Routing over time: what each variant served and what its posterior said, per time bucket.

The per-version totals (``VARIANT#…``) and the bandit's counts (``ARMS``) hold only the
present. The history keeps one item per model and time bucket (``ROUTING_HISTORY#{start}``,
5 minutes by default, expiring after ``RETENTION_DAYS`` by the table's TTL), written by the
two paths that already count exactly once, inside their own transactions:

* the capture function adds a delivery's predictions, calls, errors and shadow rows to the
  bucket of each prediction's time, in the transaction guarded by the delivery's marker;
* the rewards function adds the feedback it counts to the bucket of the counting time and
  sets the bucket's posterior snapshot (every arm's counts after the commit, with the mean
  and the central credible interval under the prior in force), in the transaction that
  marks the feedback counted and moves ``ARMS`` by its revision.

A redelivery therefore adds nothing twice: the marker (capture) or the ``counted_at``
conditions (rewards) cancel the whole transaction, history included. The snapshot is a SET
of the state that the same transaction's ``ARMS`` put made current, so the last commit in a
bucket leaves the bucket's last state.

This module is pure (no storage): the bucketing, the item's counters, and the series the
API, the CLI and the console read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.routing.bandit import Arm, posterior_summary

#: The default bucket (seconds): 288 buckets a day.
BUCKET_SECONDS = 300
#: How long a bucket is kept (its item's TTL counts from the bucket's end).
RETENTION_DAYS = 35
#: The central credible interval of the snapshot's posterior.
POSTERIOR_LEVEL = 0.90
#: Monte Carlo draws per arm for the snapshot's interval: its ends then sit at tail
#: probabilities within 0.0035 (one standard error) of 5 % and 95 %, enough for a chart, at a
#: fifth of the summary's cost per counted chunk.
POSTERIOR_SAMPLES = 4_000
#: Counters a bucket holds per version (attributes ``v000007_requests`` and so on).
TRAFFIC_COUNTERS = ("requests", "calls", "errors", "shadow_requests")
FEEDBACK_COUNTERS = ("feedback", "rewarded", "reward_sum")
COUNTERS = (*TRAFFIC_COUNTERS, *FEEDBACK_COUNTERS)
#: How many buckets one read returns at most (a day of 5-minute buckets).
DEFAULT_LIMIT = 288
MAX_LIMIT = 2_016  # a week of 5-minute buckets


def bucket_start(at_s: float, seconds: int = BUCKET_SECONDS) -> int:
    """The start (Unix seconds) of the bucket holding ``at_s``."""
    if seconds < 1:
        raise ValueError(f"a bucket is at least 1 s, not {seconds}")
    return int(at_s // seconds) * seconds


def bucket_label(start_s: int) -> str:
    """A bucket's start as the sort key spells it: fixed-width ISO 8601, so that sort-key
    order is time order."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start_s))


def expires_at(start_s: int, seconds: int, *, retention_days: int = RETENTION_DAYS) -> int:
    return start_s + seconds + retention_days * 86_400


def counter_attribute(version: int, counter: str) -> str:
    if counter not in COUNTERS:
        raise ValueError(f"unknown history counter {counter!r}")
    return f"v{version:06d}_{counter}"


def parse_counter_attribute(name: str) -> tuple[int, str] | None:
    """``(version, counter)`` of an attribute ``counter_attribute`` made, else None."""
    head, sep, counter = name.partition("_")
    if not sep or len(head) != 7 or head[0] != "v" or not head[1:].isdigit() or counter not in COUNTERS:
        return None
    return int(head[1:]), counter


def snapshot(arms: Sequence[Arm], *, alpha0: float = 1.0, beta0: float = 1.0) -> dict[str, list[float]]:
    """Every arm's posterior as a bucket stores it: version -> [successes, failures, mean,
    lower, upper] (the ``POSTERIOR_LEVEL`` interval; seeded, so the same counts give the
    same numbers)."""
    summaries = posterior_summary(
        arms, alpha0=alpha0, beta0=beta0, level=POSTERIOR_LEVEL, samples=POSTERIOR_SAMPLES
    )
    return {str(s.version): [s.successes, s.failures, s.mean, s.lower, s.upper] for s in summaries}


def encode_posterior(posterior: Mapping[str, list[float]]) -> str:
    """A snapshot as its item keeps it: one JSON string."""
    return json.dumps(posterior, separators=(",", ":"), sort_keys=True)


def projection(versions: Iterable[int], counters: Iterable[str]) -> list[str]:
    """The attributes a reader of only ``counters`` of ``versions`` needs of each bucket
    (the bucket, its posterior snapshot, and those counters)."""
    wanted = [counter_attribute(v, c) for v in sorted(set(versions)) for c in counters]
    return ["bucket_start", "bucket_seconds", "posterior", "posterior_at", *wanted]


def _decoded(posterior: Any) -> Mapping[str, Sequence[float]]:
    if isinstance(posterior, str):
        decoded: dict[str, list[float]] = json.loads(posterior)
        return decoded
    return posterior or {}


class Posterior(BaseModel):
    model_config = ConfigDict(frozen=True)

    successes: float = Field(description="Rewards counted (discounted), without the prior")
    failures: float = Field(description="Failures counted (discounted), without the prior")
    mean: float = Field(description="Posterior mean of the reward rate")
    lower: float = Field(description="Lower end of the 90% central credible interval (5%)")
    upper: float = Field(description="Upper end of the 90% central credible interval (95%)")
    counted_at: str = Field(description="When the rewards updater left this state (the bucket's last commit)")


class VariantPoint(BaseModel):
    """One version in one bucket."""

    model_config = ConfigDict(frozen=True)

    version: int
    requests: int = Field(default=0, description="Predictions served (rows) in the bucket")
    calls: int = Field(default=0, description="Prediction calls answered or failed")
    errors: int = Field(default=0, description="Calls that failed once this version was chosen")
    shadow_requests: int = Field(default=0, description="Predictions it scored as the shadow")
    feedback: int = Field(default=0, description="Feedback counted in the bucket (when counted)")
    rewarded: int = Field(default=0, description="Of which carried a reward")
    reward_sum: float = Field(default=0.0, description="Sum of those rewards")
    share: float | None = Field(
        description="Its share of the predictions served in the bucket; None when none were"
    )
    posterior: Posterior | None = Field(
        description="Its Beta posterior at the bucket's end: the bucket's snapshot, else the last "
        "earlier one in the series (carried forward); None before any"
    )


class HistoryBucket(BaseModel):
    model_config = ConfigDict(frozen=True)

    start: str = Field(description="The bucket's start (UTC, ISO 8601)")
    seconds: int = Field(description="The bucket's length")
    variants: list[VariantPoint]


class RoutingHistory(BaseModel):
    """A model's routing over time, oldest bucket first (buckets without traffic or feedback
    are absent)."""

    model_name: str
    bucket_seconds: int = Field(description="The length of the newest bucket")
    posterior_level: float = Field(default=POSTERIOR_LEVEL, description="The credible intervals' level")
    versions: list[int] = Field(description="Every version in the series, ascending")
    buckets: list[HistoryBucket]


def series(model_name: str, items: Iterable[Mapping[str, Any]]) -> RoutingHistory:
    """The history from its stored items (any order): counters per version and bucket, the
    share of each bucket's predictions, and the posterior carried forward between snapshots."""
    ordered = sorted(items, key=lambda item: str(item["bucket_start"]))
    versions: set[int] = set()
    parsed: list[tuple[Mapping[str, Any], dict[int, dict[str, float]], dict[int, Posterior]]] = []
    for item in ordered:
        counts: dict[int, dict[str, float]] = {}
        for name, value in item.items():
            found = parse_counter_attribute(name)
            if found is not None:
                counts.setdefault(found[0], {})[found[1]] = float(value)
        at = str(item.get("posterior_at") or item["bucket_start"])
        posteriors = {
            int(version): Posterior(
                successes=float(v[0]),
                failures=float(v[1]),
                mean=float(v[2]),
                lower=float(v[3]),
                upper=float(v[4]),
                counted_at=at,
            )
            for version, v in _decoded(item.get("posterior")).items()
        }
        versions |= set(counts) | set(posteriors)
        parsed.append((item, counts, posteriors))
    buckets: list[HistoryBucket] = []
    last: dict[int, Posterior] = {}
    for item, counts, posteriors in parsed:
        last = {**last, **posteriors} if posteriors else last
        served = sum(c.get("requests", 0.0) for c in counts.values())
        points = []
        for version in sorted(versions):
            mine = counts.get(version, {})
            if not mine and version not in last:
                continue
            requests = int(mine.get("requests", 0))
            points.append(
                VariantPoint(
                    version=version,
                    requests=requests,
                    calls=int(mine.get("calls", 0)),
                    errors=int(mine.get("errors", 0)),
                    shadow_requests=int(mine.get("shadow_requests", 0)),
                    feedback=int(mine.get("feedback", 0)),
                    rewarded=int(mine.get("rewarded", 0)),
                    reward_sum=mine.get("reward_sum", 0.0),
                    share=requests / served if served else None,
                    posterior=last.get(version),
                )
            )
        buckets.append(
            HistoryBucket(
                start=str(item["bucket_start"]), seconds=int(item["bucket_seconds"]), variants=points
            )
        )
    return RoutingHistory(
        model_name=model_name,
        bucket_seconds=buckets[-1].seconds if buckets else BUCKET_SECONDS,
        versions=sorted(versions),
        buckets=buckets,
    )
