"""The routing history's pure parts: buckets, the item's counters, and the series read back."""

from __future__ import annotations

import pytest

from mlops_core.routing import history
from mlops_core.routing.bandit import Arm, posterior_summary


def test_a_moment_falls_in_the_bucket_that_starts_at_or_before_it() -> None:
    assert history.bucket_start(1_800_000_299.9, 300) == 1_800_000_000
    assert history.bucket_start(1_800_000_300, 300) == 1_800_000_300
    assert history.bucket_start(1_800_000_009, 10) == 1_800_000_000
    with pytest.raises(ValueError, match="at least 1 s"):
        history.bucket_start(1.0, 0)


def test_bucket_labels_sort_in_time_order_and_expire_after_the_retention() -> None:
    starts = [0, 300, 86_400 * 400, 1_800_000_000]
    labels = [history.bucket_label(s) for s in starts]
    assert labels == sorted(labels)
    assert labels[0] == "1970-01-01T00:00:00Z"
    assert {len(label) for label in labels} == {20}
    assert history.expires_at(1_800_000_000, 300) == 1_800_000_300 + history.RETENTION_DAYS * 86_400


def test_counter_attributes_name_their_version_and_counter_and_nothing_else_parses() -> None:
    assert history.counter_attribute(7, "requests") == "v000007_requests"
    assert history.parse_counter_attribute("v000007_reward_sum") == (7, "reward_sum")
    for other in ("bucket_start", "posterior", "v7_requests", "v000007_latency", "vabcdef_calls"):
        assert history.parse_counter_attribute(other) is None
    with pytest.raises(ValueError, match="unknown history counter"):
        history.counter_attribute(1, "latency_le_5")


def test_a_snapshot_keeps_the_counts_and_the_90_percent_interval_of_each_arm() -> None:
    arms = (Arm(1, 30.0, 10.0), Arm(2, 2.0, 8.0))

    stored = history.snapshot(arms, alpha0=1.0, beta0=1.0)

    assert set(stored) == {"1", "2"}
    successes, failures, mean, lower, upper = stored["1"]
    assert (successes, failures, mean) == (30.0, 10.0, pytest.approx(31 / 42))
    assert lower < mean < upper
    wide = posterior_summary(arms, level=0.95)[0]
    assert wide.lower < lower and upper < wide.upper  # 90% sits inside 95%
    assert history.snapshot(arms) == stored  # seeded: the same counts, the same numbers


def _item(
    start: str, seconds: int = 300, posterior: dict[str, list[float]] | None = None, **counts: float
) -> dict:
    item: dict = {"bucket_start": start, "bucket_seconds": seconds, **counts}
    if posterior is not None:
        item |= {"posterior": posterior, "posterior_at": start[:-1] + ".500Z"}
    return item


def test_the_series_gives_shares_per_bucket_and_carries_the_posterior_forward() -> None:
    items = [  # newest first, as the repository reads them
        _item("2026-12-01T10:10:00Z", v000002_requests=9, v000003_requests=1),
        _item(
            "2026-12-01T10:05:00Z",
            posterior={"2": [3.0, 1.0, 0.66, 0.4, 0.9]},
            v000002_feedback=4,
            v000002_rewarded=4,
            v000002_reward_sum=3.0,
        ),
        _item("2026-12-01T10:00:00Z", v000002_requests=5, v000003_requests=15, v000003_shadow_requests=2),
    ]

    series = history.series("m", items)

    assert [b.start for b in series.buckets] == [
        "2026-12-01T10:00:00Z",
        "2026-12-01T10:05:00Z",
        "2026-12-01T10:10:00Z",
    ]
    assert series.versions == [2, 3]
    first, second, third = ({p.version: p for p in b.variants} for b in series.buckets)
    assert (first[2].share, first[3].share) == (0.25, 0.75)
    assert first[3].shadow_requests == 2
    assert first[2].posterior is None  # nothing counted before the window's first snapshot
    assert set(second) == {2} and second[2].share is None  # feedback only: no traffic, no share
    assert (second[2].feedback, second[2].rewarded, second[2].reward_sum) == (4, 4, 3.0)
    assert third[2].posterior == second[2].posterior  # carried forward to the next bucket
    assert third[2].posterior is not None and third[2].posterior.mean == 0.66
    assert third[3].posterior is None and third[3].share == 0.1


def test_an_empty_history_has_no_buckets_and_the_default_bucket_length() -> None:
    series = history.series("m", [])
    assert (series.buckets, series.versions, series.bucket_seconds) == ([], [], history.BUCKET_SECONDS)
