"""Point-in-time joins without AWS: a hand-computed table (no leak from one second later,
ties by created time, TTL expiry, missing entities), agreement with materialization's
choice of the latest row, and zero mismatches against pandas' ``merge_asof`` on 100,000
random label rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_core.errors import Invalid
from mlops_core.features.entities import FeatureViewDefinition
from mlops_core.features.materialization import latest_per_entity
from mlops_core.features.point_in_time import (
    IncompleteTrainingSet,
    InvalidLabels,
    Labels,
    RowStatus,
    apply_policy,
    build_training_set,
    join_view,
    parse_labels,
)
from mlops_core.features.sources import ParsedObject, parse_object, parse_timestamp_ms

VIEW = FeatureViewDefinition(
    name="tumours",
    owner="o",
    entity={"name": "patient_id", "type": "int64"},
    features=[{"name": "x", "type": "float64"}, {"name": "n", "type": "int64"}],
    source={
        "format": "csv",
        "path": "feature-sources/t/",
        "event_timestamp": "at",
        "created_timestamp": "made",
    },
    ttl="1h",
)

SOURCE_A = b"""patient_id,at,made,x,n
1,2026-12-01T10:00:00Z,2026-12-01T10:00:00Z,1.0,1
1,2026-12-01T10:30:00Z,2026-12-01T10:30:05Z,2.0,2
1,2026-12-01T10:30:00Z,2026-12-01T10:30:01Z,3.0,3
1,2026-12-01T11:00:01Z,2026-12-01T11:00:01Z,4.0,4
2,2026-12-01T08:00:00Z,,5.0,5
4,2026-12-01T10:00:00Z,,6.0,6
4,2026-12-01T10:00:00Z,2026-12-01T09:00:00Z,7.0,7
5,2026-12-01T10:00:00Z,,8.0,8
5,2026-12-01T10:00:00Z,,9.0,9
6,2026-12-01T10:00:00Z,,10.0,
"""
SOURCE_B = b"""patient_id,at,made,x,n
5,2026-12-01T10:00:00Z,,11.0,11
"""

# (patient, label time, expected x or None, expected status): worked out by hand.
TABLE = [
    (1, "2026-12-01T09:59:59Z", None, RowStatus.missing),  # before the entity's first row
    (1, "2026-12-01T10:00:00Z", 1.0, RowStatus.ok),  # a row at exactly the label time counts
    (1, "2026-12-01T10:45:00Z", 2.0, RowStatus.ok),  # tie at 10:30: the later created time wins
    (1, "2026-12-01T11:00:00Z", 2.0, RowStatus.ok),  # the 11:00:01 row is one second late: no leak
    (1, "2026-12-01T11:00:01Z", 4.0, RowStatus.ok),
    (2, "2026-12-01T09:00:00Z", 5.0, RowStatus.ok),  # exactly the TTL old: still valid
    (2, "2026-12-01T09:00:00.001Z", None, RowStatus.expired),  # 1 ms past the TTL
    (2, "2026-12-01T09:30:00Z", None, RowStatus.expired),
    (3, "2026-12-01T12:00:00Z", None, RowStatus.missing),  # no rows at all
    (4, "2026-12-01T10:00:00Z", 7.0, RowStatus.ok),  # a row with a created time beats one without
    (5, "2026-12-01T10:10:00Z", 11.0, RowStatus.ok),  # same times: the later object wins
    (6, "2026-12-01T10:10:00Z", 10.0, RowStatus.ok),  # present, but n is null
]


def labels_csv(rows: list[tuple[int, str]]) -> bytes:
    lines = ["patient_id,event_timestamp,label", *(f"{p},{t},{i % 2}" for i, (p, t) in enumerate(rows))]
    return ("\n".join(lines) + "\n").encode()


def hand_labels() -> Labels:
    data = labels_csv([(p, t) for p, t, _, _ in TABLE])
    return parse_labels(data, entity="patient_id", timestamp="event_timestamp", label="label")


def sources() -> list[ParsedObject]:
    return [parse_object(VIEW, "b.csv", SOURCE_B), parse_object(VIEW, "a.csv", SOURCE_A)]


def test_the_hand_computed_table() -> None:
    joined = join_view(VIEW, sources(), hand_labels())
    assert [RowStatus(int(s)) for s in joined.status] == [status for *_, status in TABLE]
    assert [None if math.isnan(v) else v for v in joined.values["x"]] == [x for _, _, x, _ in TABLE]


def test_every_label_row_is_returned_with_its_status_and_the_counts() -> None:
    training_set = build_training_set(hand_labels(), [(VIEW, sources(), 3)])
    report = training_set.report()
    assert report.rows == len(TABLE)
    assert (report.views[0].ok, report.views[0].missing, report.views[0].expired) == (8, 2, 2)
    n = next(f for f in report.features if f.feature == "n")
    assert (n.missing, n.expired, n.null) == (2, 2, 1)
    assert (report.complete, report.incomplete) == (7, 5)
    assert report.examples[0].line == 2
    assert report.examples[0].missing == ["tumours (missing)"]
    text = training_set.to_csv().decode().splitlines()
    assert len(text) == len(TABLE) + 1
    assert text[0] == "patient_id,event_timestamp,label,x,n,tumours__status"
    assert text[1] == "1,2026-12-01T09:59:59.000Z,0,,,missing"
    assert text[4] == "1,2026-12-01T11:00:00.000Z,1,2.0,2,ok"


def test_drop_policy_counts_what_it_leaves_out() -> None:
    training_set = build_training_set(hand_labels(), [(VIEW, sources(), 3)])
    kept, report = apply_policy(training_set, policy="drop", max_incomplete_fraction=0.5)
    assert kept.tolist() == [1, 2, 3, 4, 5, 9, 10]
    assert (report.rows_dropped, report.rows_kept, report.policy) == (5, 7, "drop")


def test_more_incomplete_rows_than_allowed_fails_naming_the_features() -> None:
    training_set = build_training_set(hand_labels(), [(VIEW, sources(), 3)])
    with pytest.raises(IncompleteTrainingSet) as raised:
        apply_policy(training_set, policy="drop", max_incomplete_fraction=0.1)
    assert "5 of 12 label rows (41.7%) lack features" in raised.value.message
    assert "tumours.n: 2 missing, 2 expired, 1 null" in raised.value.message
    with pytest.raises(IncompleteTrainingSet, match="policy fail"):
        apply_policy(training_set, policy="fail", max_incomplete_fraction=1.0)


def test_labels_with_an_unreadable_time_are_refused_with_their_lines() -> None:
    data = b"patient_id,event_timestamp,label\n1,2026-12-01T10:00:00Z,1\n2,yesterday,0\n"
    with pytest.raises(
        InvalidLabels, match=r"1 row\(s\) with no or an unreadable event_timestamp \(lines 3\)"
    ):
        parse_labels(data, entity="patient_id", timestamp="event_timestamp", label="label")
    with pytest.raises(InvalidLabels, match="lacks the column"):
        parse_labels(data, entity="id", timestamp="event_timestamp", label="label")


def test_a_feature_named_like_a_label_column_is_refused() -> None:
    clashing = VIEW.model_copy(update={"name": "other"})
    with pytest.raises(Invalid, match=r"x \(tumours and other\)"):
        build_training_set(hand_labels(), [(VIEW, sources(), 1), (clashing, sources(), 1)])


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(1, 4), st.integers(0, 20), st.one_of(st.none(), st.integers(0, 3)), st.integers(0, 99)
        ),
        min_size=1,
        max_size=30,
    ),
    label_times=st.lists(st.tuples(st.integers(1, 5), st.integers(-1, 22)), min_size=1, max_size=10),
)
def test_the_join_picks_the_row_materialization_would_have_picked_at_the_label_time(
    rows: list[tuple[int, int, int | None, int]], label_times: list[tuple[int, int]]
) -> None:
    half = len(rows) // 2
    objects = [_parsed(key, part) for key, part in (("a", rows[:half]), ("b", rows[half:]))]
    labels = _labels([(e, t * 1000) for e, t in label_times])
    long_ttl = VIEW.model_copy(update={"ttl": 10**6})
    joined = join_view(long_ttl, objects, labels)
    for i, (entity, at) in enumerate(label_times):
        latest, _ = latest_per_entity(objects, start_ms=None, end_ms=at * 1000)
        expected = latest.get(str(entity))
        got = joined.values["x"][i]
        assert (None if math.isnan(got) else got) == (expected.values["x"] if expected else None)


def _parsed(key: str, rows: list[tuple[int, int, int | None, int]]) -> ParsedObject:
    return ParsedObject(
        key=key,
        entity_ids=[str(e) for e, *_ in rows],
        event_ms=[t * 1000 for _, t, _, _ in rows],
        created_ms=[c for _, _, c, _ in rows],
        lines=list(range(2, len(rows) + 2)),
        values={"x": [float(x) for *_, x in rows], "n": [x for *_, x in rows]},
        rows_read=len(rows),
    )


def _labels(rows: list[tuple[int, int]]) -> Labels:
    return Labels(
        entity_ids=[str(e) for e, _ in rows],
        event_ms=np.asarray([t for _, t in rows], dtype=np.int64),
        labels=["1"] * len(rows),
        entity_column="patient_id",
        timestamp_column="event_timestamp",
        label_column="label",
    )


def test_zero_mismatches_against_pandas_merge_asof_on_100000_label_rows() -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(20261201)
    day_ms, ttl_s = 86_400_000, 86_400
    n_entities, n_rows, n_labels = 20_000, 200_000, 100_000
    # Feature rows: times on a 1-minute grid (many exact ties), created times often shared or absent.
    entities = rng.integers(1, n_entities + 1, n_rows)
    events = rng.integers(0, 30 * 24 * 60, n_rows) * 60_000
    created = np.where(rng.random(n_rows) < 0.3, -1, events + rng.integers(0, 3, n_rows) * 1000)
    row_ids = np.arange(n_rows)
    split = n_rows // 2
    objects = [
        ParsedObject(
            key=key,
            entity_ids=[str(e) for e in entities[part]],
            event_ms=events[part].tolist(),
            created_ms=[None if c < 0 else c for c in created[part].tolist()],
            lines=list(range(2, part.stop - part.start + 2)),
            values={"x": (row_ids[part] * 0.5).tolist(), "n": row_ids[part].tolist()},
            rows_read=part.stop - part.start,
        )
        for key, part in (("part-0.csv", slice(0, split)), ("part-1.csv", slice(split, n_rows)))
    ]
    # Label rows: some entities with no rows at all, times on and off the grid.
    label_entities = rng.integers(1, n_entities + 2_000, n_labels)
    label_times = rng.integers(-day_ms, 31 * day_ms, n_labels)
    label_times[: n_labels // 4] = rng.integers(0, 30 * 24 * 60, n_labels // 4) * 60_000  # exact hits
    labels = Labels(
        entity_ids=[str(e) for e in label_entities],
        event_ms=label_times.astype(np.int64),
        labels=["0"] * n_labels,
        entity_column="patient_id",
        timestamp_column="event_timestamp",
        label_column="label",
    )
    view = VIEW.model_copy(update={"ttl": ttl_s})

    joined = join_view(view, objects, labels)

    right = pd.DataFrame(
        {
            "patient_id": entities,
            "t": events,
            # merge_asof takes the last of equal keys in the right frame's order: the tie order
            # (created, a row without one first; then object, line), as materialization's.
            "created": created,
            "object": row_ids >= split,
            "line": row_ids,
            "n": row_ids,
            "feature_t": events,
        }
    ).sort_values(["t", "created", "object", "line"], kind="stable")
    left = pd.DataFrame({"patient_id": label_entities, "t": label_times, "row": np.arange(n_labels)})
    left = left.sort_values("t", kind="stable")
    within_ttl = pd.merge_asof(
        left, right, on="t", by="patient_id", direction="backward", tolerance=ttl_s * 1000
    ).sort_values("row")
    any_age = pd.merge_asof(left, right, on="t", by="patient_id", direction="backward").sort_values("row")

    expected_n = within_ttl["n"].to_numpy()
    ours_n = np.array([math.nan if v is None else v for v in joined.values["n"]], dtype=np.float64)
    mismatches = int(np.count_nonzero(~((ours_n == expected_n) | (np.isnan(ours_n) & np.isnan(expected_n)))))
    assert mismatches == 0
    # Status: missing where merge_asof finds nothing at any age, expired where only the TTL excludes it.
    found_any = any_age["n"].notna().to_numpy()
    found_within = within_ttl["n"].notna().to_numpy()
    assert np.array_equal(joined.status == RowStatus.missing, ~found_any)
    assert np.array_equal(joined.status == RowStatus.expired, found_any & ~found_within)
    assert np.array_equal(joined.feature_event_ms[found_any], any_age["feature_t"].to_numpy()[found_any])
    # The data exercise every case.
    assert (
        min(joined.count(RowStatus.ok), joined.count(RowStatus.missing), joined.count(RowStatus.expired))
        > 1000
    )


def test_timestamps_in_labels_take_the_sources_forms() -> None:
    data = b"patient_id,event_timestamp,label\n1,1796119200,1\n1,2026-12-01T11:00:00+01:00,0\n"
    labels = parse_labels(data, entity="patient_id", timestamp="event_timestamp", label="label")
    assert labels.event_ms.tolist() == [parse_timestamp_ms("2026-12-01T10:00:00Z")] * 2
