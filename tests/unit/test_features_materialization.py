"""Materialization's decisions, without AWS: parsing sources, the latest row per entity,
newest wins against a stored row, and the freshness histogram."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlops_core.features.entities import FeatureViewDefinition
from mlops_core.features.materialization import (
    Histogram,
    encode_values,
    latest_per_entity,
    needs_write,
    online_item,
)
from mlops_core.features.sources import SourceMismatch, parse_object, parse_timestamp_ms

VIEW = FeatureViewDefinition(
    name="v",
    owner="o",
    entity={"name": "id", "type": "int64"},
    features=[
        {"name": "x", "type": "float64"},
        {"name": "n", "type": "int64"},
        {"name": "ok", "type": "bool"},
    ],
    source={
        "format": "csv",
        "path": "feature-sources/v/",
        "event_timestamp": "at",
        "created_timestamp": "made",
    },
    ttl="1d",
)


def csv(*rows: str) -> bytes:
    return ("id,at,made,x,n,ok\n" + "\n".join(rows) + "\n").encode()


def test_csv_values_are_typed_and_empty_fields_are_null() -> None:
    parsed = parse_object(VIEW, "a.csv", csv("1,2026-12-01T00:00:00Z,,1.5,2,true", "2,1796083200,,,,"))
    assert parsed.entity_ids == ["1", "2"]
    assert parsed.event_ms == [1_796_083_200_000, 1_796_083_200_000]
    assert parsed.values == {"x": [1.5, None], "n": [2, None], "ok": [True, None]}


def test_nan_is_null_and_inf_is_a_mismatch() -> None:
    assert parse_object(VIEW, "a.csv", csv("1,1,,nan,1,1")).values["x"] == [None]
    with pytest.raises(SourceMismatch) as raised:
        parse_object(VIEW, "a.csv", csv("1,1,,inf,1,1"))
    assert raised.value.details[0]["loc"] == ["source", "a.csv", "x"]


def test_every_mismatching_column_is_named_with_its_first_line() -> None:
    with pytest.raises(SourceMismatch) as raised:
        parse_object(VIEW, "a.csv", csv("1,1,,1.0,1,yes", "2,1,,1.0,2.5,maybe"))
    assert [(d["loc"][-1], d["msg"]) for d in raised.value.details] == [
        ("n", "line 3: '2.5' is not int64"),
        ("ok", "line 3: 'maybe' is not bool"),
    ]


def test_timestamps_iso_with_or_without_zone_and_unix_seconds() -> None:
    assert parse_timestamp_ms("2026-12-01T00:00:00Z") == 1_796_083_200_000
    assert parse_timestamp_ms("2026-12-01T01:00:00+01:00") == 1_796_083_200_000
    assert parse_timestamp_ms("2026-12-01T00:00:00") == 1_796_083_200_000  # no zone: UTC
    assert parse_timestamp_ms(1_796_083_200.25) == 1_796_083_200_250
    assert parse_timestamp_ms("soon") is None and parse_timestamp_ms(True) is None


@given(
    st.lists(
        st.tuples(st.integers(1, 5), st.integers(0, 20), st.one_of(st.none(), st.integers(0, 3))), max_size=60
    )
)
def test_the_latest_row_per_entity_is_the_maximum_by_event_then_created_time(
    rows: list[tuple[int, int, int | None]],
) -> None:
    lines = [f"{e},{t},{'' if c is None else c},{i}.0,1,1" for i, (e, t, c) in enumerate(rows)]
    parsed = parse_object(VIEW, "a.csv", csv(*lines)) if rows else parse_object(VIEW, "a.csv", csv())
    winners, counts = latest_per_entity([parsed], start_ms=None, end_ms=10**15)
    for entity in {e for e, _, _ in rows}:
        ranked = [
            (t * 1000, -1 if c is None else c * 1000, i) for i, (e, t, c) in enumerate(rows) if e == entity
        ]
        best = max(ranked)  # ties by the later line
        assert winners[str(entity)].values["x"] == float(best[2])
    assert counts.superseded == len(rows) - len(winners)


def test_a_window_keeps_rows_inside_it_and_remembers_what_comes_later() -> None:
    parsed = parse_object(VIEW, "a.csv", csv("1,10,,1,1,1", "1,20,,2,1,1", "1,30,,3,1,1"))
    winners, counts = latest_per_entity([parsed], start_ms=15_000, end_ms=25_000)
    assert winners["1"].values["x"] == 2.0
    assert (counts.outside_window, counts.next_after_end_ms) == (2, 30_000)


def test_newest_wins_against_the_stored_row() -> None:
    parsed = parse_object(VIEW, "a.csv", csv("1,100,5,1,1,1"))
    (candidate,) = latest_per_entity([parsed], start_ms=None, end_ms=10**15)[0].values()
    encoded = encode_values(candidate.values)
    stored = online_item(VIEW, 1, candidate, encoded, 0)
    assert needs_write(candidate, None, 1, encoded)
    assert not needs_write(candidate, stored, 1, encoded)  # the same row: nothing to write
    assert needs_write(candidate, stored, 2, encoded)  # a new view version rewrites it
    assert needs_write(candidate, stored | {"v": "{}"}, 1, encoded)  # as new, other values
    assert not needs_write(candidate, stored | {"t": 100_001}, 1, encoded)  # stored is newer
    assert not needs_write(candidate, stored | {"c": 6_000}, 1, encoded)  # a later created time
    assert needs_write(candidate, {k: v for k, v in stored.items() if k != "c"}, 1, encoded)


def test_items_carry_the_ttl_and_compact_values() -> None:
    parsed = parse_object(VIEW, "a.csv", csv("7,1796083200,,0.5,3,false"))
    (candidate,) = latest_per_entity([parsed], start_ms=None, end_ms=10**15)[0].values()
    item = online_item(VIEW, 3, candidate, encode_values(candidate.values), 42)
    assert item["pk"] == "v#7" and item["expires_at"] == 1_796_083_200 + 86400 and item["ver"] == 3
    assert json.loads(item["v"]) == {"x": 0.5, "n": 3, "ok": False} and "c" not in item


def test_the_histogram_counts_rows_past_a_cutoff_as_they_move() -> None:
    histogram = Histogram({}, 60_000)
    times = [random.Random(1).randrange(0, 3_600_000) for _ in range(500)]
    for at in times:
        histogram.add(at)
    for at in times[:100]:
        histogram.remove(at)
        histogram.add(at + 3_600_000)
    cutoff = 1_800_000
    exact = sum(1 for at in times[100:] if at < cutoff)
    assert abs(histogram.older_than(cutoff) - exact) <= max(
        sum(1 for at in times[100:] if cutoff - 60_000 <= at < cutoff), 0
    )
    assert histogram.total == 500
    histogram.compact(cutoff)
    assert histogram.total == 500 and histogram.older_than(cutoff) <= exact


def test_the_column_fast_path_agrees_with_the_row_by_row_one() -> None:
    rows = [f"00{i},2026-12-01T10:00:0{i}Z,2026-12-01T10:00:0{i}.5Z,{i}.5,{i},true" for i in range(5)]
    fast = parse_object(VIEW, "a.csv", csv(*rows))  # every value plain: columns at once
    # One value with an offset sends the whole object row by row: the same rows result.
    slow = parse_object(VIEW, "a.csv", csv(*rows, "9,2026-12-01T11:00:00+01:00,,1,1,1"))
    assert fast.entity_ids == ["0", "1", "2", "3", "4"] == slow.entity_ids[:5]
    assert fast.event_ms == slow.event_ms[:5] and fast.created_ms == slow.created_ms[:5]
    assert slow.event_ms[5] == 1_796_119_200_000 and fast.lines == [2, 3, 4, 5, 6]
