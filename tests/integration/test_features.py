"""The feature store's handlers fed the sample events, against moto: a view applied, materialized
(on schedule and on demand), looked up; bad input answered with precise 4xx, nothing
half-written."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from infra.local.sample_data import FEATURE_SOURCE_KEY, breast_cancer_features
from tests.integration.conftest import call
from tests.support import FEATURES_TABLE, REGION, FakeLambdaContext, body, load_event, upload

VIEW = "tumour_measurements"
NOW_MS = 1_796_120_400_000  # 2026-12-01T10:20:00Z


@pytest.fixture
def clock() -> list[float]:
    return [NOW_MS / 1000]


@pytest.fixture
def materialize(aws: None, clock: list[float]) -> Iterator[ModuleType]:
    from functions.materialize import handler

    saved = handler.service.clock
    handler.service.clock = lambda: clock[0]
    yield handler
    handler.service.clock = saved


@pytest.fixture
def lookup(aws: None, clock: list[float]) -> Iterator[ModuleType]:
    from functions.features import handler

    handler.lookup._cache.clear()
    saved = handler.lookup.clock
    handler.lookup.clock = lambda: clock[0]
    yield handler
    handler.lookup.clock = saved
    handler.lookup._cache.clear()


def definition(**changes: Any) -> dict[str, Any]:
    view = copy.deepcopy(json.loads(load_event("materialize/apply_view.json")["body"])["definition"])
    view.update(changes)
    return view


def apply(handler: ModuleType, view: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return call(
        handler, load_event("materialize/apply_view.json", body={"definition": view or definition(), **extra})
    )


def scheduled(handler: ModuleType) -> dict[str, Any]:
    result: dict[str, Any] = handler.lambda_handler(
        load_event("materialize/scheduled.json"), FakeLambdaContext()
    )
    return result


def on_demand(handler: ModuleType, window: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST .../materializations (202), then the event the rule delivers, as EventBridge would."""
    response = call(handler, load_event("materialize/request_materialization.json", body=window or {}))
    assert response["statusCode"] == 202, response["body"]
    requested = body(response)
    event = load_event("materialize/materialization_requested.json")
    event["detail"] |= {"run_id": requested["run_id"], "view": VIEW}
    handler.lambda_handler(event, FakeLambdaContext())
    run = call(
        handler,
        load_event(
            "materialize/get_materialization.json", path_params={"view": VIEW, "run_id": requested["run_id"]}
        ),
    )
    assert run["statusCode"] == 200, run["body"]
    return dict(body(run))


def online_items() -> list[dict[str, Any]]:
    return boto3.client("dynamodb", region_name=REGION).scan(TableName=FEATURES_TABLE)["Items"]


def csv_source(
    rows: list[str],
    header: str = "patient_id,event_time,created_at," + ",".join(f["name"] for f in definition()["features"]),
) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def row(patient: int, at: str, value: float = 1.0, created: str = "") -> str:
    return ",".join([str(patient), at, created, *([str(value)] * 10)])


@pytest.fixture
def sample_source(aws: None) -> None:
    upload(FEATURE_SOURCE_KEY, breast_cancer_features(NOW_MS))


# ---- apply, list, show ---------------------------------------------------------------------------
def test_a_view_is_applied_once_and_versioned_on_change(materialize: ModuleType) -> None:
    first = apply(materialize)
    assert first["statusCode"] == 200, first["body"]
    assert body(first)["changed"] is True and body(first)["view"]["version"] == 1

    again = body(apply(materialize))
    assert again["changed"] is False and again["view"]["version"] == 1  # idempotent

    changed = body(apply(materialize, definition(ttl="7d")))
    assert changed["view"]["version"] == 2 and changed["changes"] == ["~ ttl: 30d -> 7d"]
    listed = body(call(materialize, load_event("materialize/list_views.json")))
    assert [v["definition"]["name"] for v in listed["views"]] == [VIEW]
    shown = body(call(materialize, load_event("materialize/get_view.json")))
    assert [v["version"] for v in shown["versions"]] == [2, 1]
    assert shown["view"]["definition"]["ttl"] == 7 * 86400


def test_a_dry_run_says_what_would_change_and_writes_nothing(materialize: ModuleType) -> None:
    apply(materialize)
    dry = body(
        apply(
            materialize,
            definition(features=[*definition()["features"], {"name": "x", "type": "int64"}]),
            dry_run=True,
        )
    )
    assert dry["dry_run"] is True and dry["changes"] == ["+ feature x (int64)"]
    assert body(call(materialize, load_event("materialize/get_view.json")))["view"]["version"] == 1


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"source": {"format": "parquet", "path": "feature-sources/x/", "event_timestamp": "t"}}, "format"),
        ({"source": {"format": "csv", "path": "datasets/x/", "event_timestamp": "t"}}, "path"),
        ({"ttl": "forever"}, "ttl"),
        ({"schedule": "1m"}, "schedule"),
        ({"features": [{"name": "a", "type": "float64"}, {"name": "a", "type": "int64"}]}, "definition"),
        ({"features": [{"name": "patient_id", "type": "int64"}]}, "definition"),
        ({"name": "Other View"}, "name"),
    ],
)
def test_a_bad_definition_is_refused_at_its_field(
    materialize: ModuleType, change: dict[str, Any], where: str
) -> None:
    response = apply(materialize, definition(**change))
    assert response["statusCode"] == 422, response["body"]
    assert any(where in ".".join(map(str, d["loc"])) for d in body(response)["detail"]), body(response)
    assert body(call(materialize, load_event("materialize/list_views.json")))["views"] == []


def test_the_path_and_the_definition_must_name_the_same_view(materialize: ModuleType) -> None:
    event = load_event("materialize/apply_view.json", body={"definition": definition(name="other")})
    response = call(materialize, event)
    assert response["statusCode"] == 422
    assert body(response)["detail"][0]["loc"] == ["body", "definition", "name"]


def test_unknown_views_are_404(materialize: ModuleType, lookup: ModuleType) -> None:
    assert call(materialize, load_event("materialize/get_view.json"))["statusCode"] == 404
    assert call(materialize, load_event("materialize/get_freshness.json"))["statusCode"] == 404
    assert (
        call(materialize, load_event("materialize/request_materialization.json", body={}))["statusCode"]
        == 404
    )
    assert call(lookup, load_event("features/get_features.json"))["statusCode"] == 404
    assert call(lookup, load_event("features/batch_get_features.json"))["statusCode"] == 404


# ---- materialization -----------------------------------------------------------------------------
def test_the_schedule_materializes_a_due_view_and_then_writes_nothing(
    materialize: ModuleType, lookup: ModuleType, sample_source: None, clock: list[float]
) -> None:
    apply(materialize)

    first = scheduled(materialize)
    assert [r["status"] for r in first["runs"]] == ["succeeded"]
    assert first["runs"][0]["items_written"] == 569 and len(online_items()) == 569

    assert scheduled(materialize)["runs"] == []  # not due again before its schedule (1h)
    clock[0] += 3600
    second = scheduled(materialize)["runs"][0]
    assert second["items_written"] == 0 and second["rows_read"] == 0  # the watermark: nothing new

    found = body(call(lookup, load_event("features/get_features.json")))
    assert found["entity_id"] == "1" and found["values"]["mean_radius"] == 17.99
    assert found["stale"] is False and 3600 < found["age_seconds"] < 3600 + 600 * 60


def test_an_on_demand_run_records_what_it_did(
    materialize: ModuleType, sample_source: None, clock: list[float]
) -> None:
    apply(materialize)
    run = on_demand(materialize)
    assert run["status"] == "succeeded" and run["trigger"] == "on_demand"
    assert (run["rows_read"], run["entities"], run["items_written"], run["rows_rejected"]) == (
        569,
        569,
        569,
        0,
    )
    assert run["write_requests"] == 23  # 569 items, 25 a BatchWriteItem
    assert run["read_requests"] == 0  # nothing stored yet: no stored rows to compare with

    clock[0] += 1
    window = on_demand(materialize, {"end": "2026-12-01T10:20:00Z"})  # the same window again
    assert (window["objects_read"], window["objects_skipped"], window["write_requests"]) == (0, 1, 0)

    clock[0] += 1
    full = on_demand(materialize, {"end": "2026-12-01T10:20:00Z", "full": True})  # every object again
    assert full["incremental"] is False and full["items_written"] == 0 and full["items_unchanged"] == 569
    assert full["write_requests"] == 0 and full["read_requests"] == 6  # 569 stored rows, 100 a call
    listed = body(call(materialize, load_event("materialize/list_materializations.json")))
    assert [m["run_id"] for m in listed["materializations"]] == [
        full["run_id"],
        window["run_id"],
        run["run_id"],
    ]


def test_the_latest_row_per_entity_wins_ties_by_created_time(
    materialize: ModuleType, lookup: ModuleType
) -> None:
    upload(
        "feature-sources/breast-cancer/a.csv",
        csv_source(
            [
                row(1, "2026-12-01T09:00:00Z", 1.0),
                row(1, "2026-12-01T10:00:00Z", 2.0, created="2026-12-01T10:00:01Z"),
                row(1, "2026-12-01T10:00:00Z", 3.0, created="2026-12-01T10:00:05Z"),  # the tie's winner
                row(1, "2026-12-01T10:00:00Z", 4.0),  # no created time: older than any with one
                row(2, "2026-12-01T11:00:00Z", 9.0),  # after the run's end (now): later
            ]
        ),
    )
    apply(materialize)
    run = on_demand(materialize)
    assert (run["entities"], run["rows_superseded"], run["rows_outside_window"]) == (1, 3, 1)
    assert body(call(lookup, load_event("features/get_features.json")))["values"]["mean_radius"] == 3.0
    assert (
        call(lookup, load_event("features/get_features.json", path_params={"entity_id": "2"}))["statusCode"]
        == 404
    )


def test_a_late_older_row_never_overwrites_a_newer_one(
    materialize: ModuleType, lookup: ModuleType, clock: list[float]
) -> None:
    upload("feature-sources/breast-cancer/a.csv", csv_source([row(1, "2026-12-01T10:00:00Z", 5.0)]))
    apply(materialize)
    on_demand(materialize)
    upload("feature-sources/breast-cancer/b.csv", csv_source([row(1, "2026-12-01T08:00:00Z", 1.0)]))
    clock[0] += 60
    late = on_demand(materialize)
    assert (
        late["objects_read"],
        late["objects_skipped"],
        late["items_written"],
        late["items_unchanged"],
    ) == (1, 1, 0, 1)
    assert body(call(lookup, load_event("features/get_features.json")))["values"]["mean_radius"] == 5.0


def test_rows_dated_after_a_run_are_read_once_their_time_comes(
    materialize: ModuleType, lookup: ModuleType, clock: list[float]
) -> None:
    upload(
        "feature-sources/breast-cancer/a.csv",
        csv_source([row(1, "2026-12-01T10:00:00Z", 1.0), row(1, "2026-12-01T11:00:00Z", 2.0)]),
    )
    apply(materialize)
    assert on_demand(materialize)["rows_outside_window"] == 1
    clock[0] += 3600
    later = on_demand(materialize)
    assert later["objects_read"] == 1 and later["items_written"] == 1
    assert body(call(lookup, load_event("features/get_features.json")))["values"]["mean_radius"] == 2.0


def test_a_source_that_does_not_match_the_view_fails_naming_it_and_writes_nothing(
    materialize: ModuleType,
) -> None:
    good = csv_source([row(1, "2026-12-01T10:00:00Z")])
    upload("feature-sources/breast-cancer/a.csv", good)
    header = "patient_id,event_time,created_at," + ",".join(f["name"] for f in definition()["features"][:8])
    upload(
        "feature-sources/breast-cancer/b.csv",
        csv_source(["2,2026-12-01T10:00:00Z,," + ",".join(["1"] * 8)], header),
    )
    apply(materialize)
    run = on_demand(materialize)
    assert run["status"] == "failed" and "mean_symmetry, mean_fractal_dimension" in run["error"]
    assert {d["type"] for d in run["error_detail"]} == {"missing_column"}
    assert online_items() == []  # a.csv was fine, and nothing of it was written either

    upload(
        "feature-sources/breast-cancer/b.csv",
        csv_source([row(2, "2026-12-01T10:00:00Z").replace(",1.0,", ",big,", 1)]),
    )
    typed = on_demand(materialize)
    assert typed["status"] == "failed" and typed["error_detail"][0]["loc"][-1] == "mean_radius"
    assert "line 2" in typed["error_detail"][0]["msg"] and online_items() == []


def test_malformed_rows_are_rejected_counted_and_the_rest_written(materialize: ModuleType) -> None:
    upload(
        "feature-sources/breast-cancer/a.csv",
        csv_source(
            [
                row(1, "2026-12-01T10:00:00Z"),
                row(2, "yesterday-ish"),
                row(3, ""),
                row(4, "2026-12-01T10:00:00Z", created="not a time"),
                ",".join(["x", "2026-12-01T10:00:00Z", "", *["1"] * 10]),
            ]
        ),
    )
    apply(materialize)
    run = on_demand(materialize)
    assert run["status"] == "succeeded" and run["items_written"] == 1 and run["rows_rejected"] == 4
    assert run["rejected_reasons"] == {
        "malformed_event_timestamp": 1,
        "missing_event_timestamp": 1,
        "malformed_created_timestamp": 1,
        "malformed_entity_id": 1,
    }
    assert run["rejected_examples"][0] == {
        "object_key": "a.csv",
        "line": 3,
        "reason": "malformed_event_timestamp",
    }


def test_json_lines_sources_are_typed_by_the_view(materialize: ModuleType, lookup: ModuleType) -> None:
    names = [f["name"] for f in definition()["features"]]
    lines = [
        {"patient_id": 7, "event_time": "2026-12-01T10:00:00Z", **dict.fromkeys(names, 0.5)},
        {"patient_id": 7, "event_time": 1796119200.5, **dict.fromkeys(names, 0.25)},  # Unix seconds, newer
    ]
    upload("feature-sources/jsonl/a.jsonl", "\n".join(map(json.dumps, lines)).encode())
    view = definition(
        source={"format": "jsonl", "path": "feature-sources/jsonl/", "event_timestamp": "event_time"}
    )
    apply(materialize, view)
    assert on_demand(materialize)["items_written"] == 1
    found = body(call(lookup, load_event("features/get_features.json", path_params={"entity_id": "007"})))
    assert found["entity_id"] == "7" and found["values"]["mean_area"] == 0.25

    upload(
        "feature-sources/jsonl/b.jsonl",
        json.dumps({"patient_id": 8, "event_time": 1, **dict.fromkeys(names, "x")}).encode(),
    )
    assert on_demand(materialize)["error_detail"][0]["type"] == "type_mismatch"


def test_items_carry_the_views_ttl(materialize: ModuleType) -> None:
    upload("feature-sources/breast-cancer/a.csv", csv_source([row(1, "2026-12-01T10:00:00Z")]))
    apply(materialize)
    on_demand(materialize)
    (item,) = online_items()
    assert int(item["expires_at"]["N"]) == 1_796_119_200 + 30 * 86400  # 10:00 + 30 days
    assert item["pk"]["S"] == f"{VIEW}#1"


def test_a_running_view_is_not_materialized_twice(materialize: ModuleType, sample_source: None) -> None:
    apply(materialize)
    materialize.service.views.acquire_lease(VIEW, "someone-else", now_ms=NOW_MS, seconds=900)
    waits: list[float] = []
    saved = materialize.service.lease_wait_seconds, materialize.service.sleep
    materialize.service.lease_wait_seconds, materialize.service.sleep = 0, waits.append
    try:
        run = on_demand(materialize)
    finally:
        materialize.service.lease_wait_seconds, materialize.service.sleep = saved
    assert run["status"] == "skipped" and "someone-else" in run["error"]
    assert scheduled(materialize)["busy"] == [VIEW] and online_items() == []


def test_a_redelivered_request_runs_once(materialize: ModuleType, sample_source: None) -> None:
    apply(materialize)
    requested = body(call(materialize, load_event("materialize/request_materialization.json", body={})))
    event = load_event("materialize/materialization_requested.json")
    event["detail"]["run_id"] = requested["run_id"]
    assert materialize.lambda_handler(event, FakeLambdaContext())["status"] == "succeeded"
    assert materialize.lambda_handler(event, FakeLambdaContext())["status"] == "already_claimed"


def test_a_window_must_be_ordered_and_zoned(materialize: ModuleType) -> None:
    apply(materialize)
    for window in (
        {"start": "2026-12-02T00:00:00Z", "end": "2026-12-01T00:00:00Z"},
        {"end": "2026-12-01T00:00:00"},
    ):
        response = call(materialize, load_event("materialize/request_materialization.json", body=window))
        assert response["statusCode"] == 422, window


def test_conditional_writes_lose_to_a_row_stored_meanwhile(
    materialize: ModuleType, lookup: ModuleType
) -> None:
    from mlops_core.features.materialization import Candidate, encode_values, online_item
    from mlops_core.features.service import FeatureStoreService

    upload("feature-sources/breast-cancer/a.csv", csv_source([row(1, "2026-12-01T09:00:00Z", 1.0)]))
    apply(materialize)
    view = materialize.service.get(VIEW)
    newer = Candidate("1", 1_796_119_000_000, None, dict.fromkeys(view.definition.feature_names, 8.0))
    # Another writer stores a newer row of entity 1 after this run read the store (nothing).
    materialize.service.online.write(
        [online_item(view.definition, 1, newer, encode_values(newer.values), NOW_MS)], workers=1
    )
    racing = FeatureStoreService(
        materialize.service.views,
        materialize.service.online,
        materialize.service.sources,
        conditional_writes=True,
    )
    racing.clock = materialize.service.clock
    run = racing.materialize(VIEW, trigger="on_demand")
    assert (run.items_written, run.items_lost_race) == (0, 1)
    assert body(call(lookup, load_event("features/get_features.json")))["values"]["mean_radius"] == 8.0


# ---- lookup --------------------------------------------------------------------------------------
def test_a_batch_lookup_answers_each_entity(
    materialize: ModuleType, lookup: ModuleType, sample_source: None
) -> None:
    apply(materialize)
    on_demand(materialize)
    answer = body(
        call(lookup, load_event("features/batch_get_features.json", body={"entity_ids": [1, "2", 9999, 1]}))
    )
    assert [r["entity_id"] for r in answer["results"]] == ["1", "2", "9999", "1"]
    assert [r["found"] for r in answer["results"]] == [True, True, False, True]
    assert answer["missing"] == ["9999"] and answer["found"] == 3
    assert answer["results"][1]["values"]["mean_texture"] == 17.77


def test_a_hundred_entities_are_one_read(
    materialize: ModuleType, lookup: ModuleType, sample_source: None
) -> None:
    apply(materialize)
    on_demand(materialize)
    table = lookup.lookup.online.table
    before = table.read_requests
    answer = body(
        call(lookup, load_event("features/batch_get_features.json", body={"entity_ids": list(range(1, 101))}))
    )
    assert answer["found"] == 100 and table.read_requests - before == 1


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"entity_ids": []}, ["body", "entity_ids"]),
        ({"entity_ids": list(range(101))}, ["body", "entity_ids"]),
        ({"entity_ids": ["1", "one"]}, ["body", "entity_ids", 1]),
        ({"entity_ids": [1], "extra": 1}, ["body", "extra"]),
    ],
)
def test_bad_lookups_are_422_at_their_field(
    materialize: ModuleType, lookup: ModuleType, payload: dict[str, Any], where: list[Any]
) -> None:
    apply(materialize)
    response = call(lookup, load_event("features/batch_get_features.json", body=payload))
    assert response["statusCode"] == 422, response["body"]
    assert body(response)["detail"][0]["loc"] == where


def test_an_entity_id_of_the_wrong_type_is_422_and_an_absent_one_404(
    materialize: ModuleType, lookup: ModuleType
) -> None:
    apply(materialize)
    wrong = call(lookup, load_event("features/get_features.json", path_params={"entity_id": "abc"}))
    assert wrong["statusCode"] == 422 and body(wrong)["detail"][0]["loc"] == ["path", "entity_id"]
    absent = call(lookup, load_event("features/get_features.json", path_params={"entity_id": "42"}))
    assert absent["statusCode"] == 404 and "patient_id 42" in body(absent)["message"]


def test_a_row_past_its_ttl_is_served_marked_stale(
    materialize: ModuleType, lookup: ModuleType, sample_source: None, clock: list[float]
) -> None:
    apply(materialize)
    on_demand(materialize)
    clock[0] += 31 * 86400  # DynamoDB's TTL deletes lazily; until then the row is stale
    found = body(call(lookup, load_event("features/get_features.json")))
    assert found["stale"] is True and found["age_seconds"] > 30 * 86400


def test_answers_name_no_table_bucket_or_host(materialize: ModuleType, lookup: ModuleType) -> None:
    from tests.support import BUCKET, TABLE

    apply(materialize)
    for response in (
        call(lookup, load_event("features/get_features.json", path_params={"entity_id": "42"})),
        call(materialize, load_event("materialize/get_materialization.json")),
        call(lookup, load_event("features/batch_get_features.json", body={"entity_ids": ["x"]})),
    ):
        assert not any(name in response["body"] for name in (FEATURES_TABLE, TABLE, BUCKET, "127.0.0.1"))


# ---- freshness -----------------------------------------------------------------------------------
def test_freshness_reports_age_and_the_share_past_ttl(
    materialize: ModuleType, sample_source: None, clock: list[float], capsys: pytest.CaptureFixture[str]
) -> None:
    apply(materialize, definition(ttl="5h"))
    on_demand(materialize)
    fresh = body(call(materialize, load_event("materialize/get_freshness.json")))
    assert fresh["entities"] == 569 and fresh["stale"] is False and 50 < fresh["age_seconds"] < 70
    # Rows are a minute apart over the last 569 minutes: those older than 5 hours are expired.
    assert fresh["expired_entities"] == pytest.approx(569 - 300, abs=3)

    clock[0] += 2 * 86400
    capsys.readouterr()
    scheduled(materialize)
    stale = body(call(materialize, load_event("materialize/get_freshness.json")))
    assert stale["stale"] is True and stale["expired_share"] == 1.0
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(m.get("StaleFeatureViews") == [1.0] or m.get("StaleFeatureViews") == 1.0 for m in emitted), (
        emitted
    )
    ages = [m for m in emitted if "FeatureAgeSeconds" in m]
    assert ages and ages[0]["view"] == VIEW


def test_a_window_with_a_start_leaves_the_watermark_alone(
    materialize: ModuleType, lookup: ModuleType
) -> None:
    upload(
        "feature-sources/breast-cancer/a.csv",
        csv_source([row(1, "2026-12-01T08:00:00Z", 1.0), row(2, "2026-12-01T10:00:00Z", 2.0)]),
    )
    apply(materialize)
    backfill = on_demand(materialize, {"start": "2026-12-01T09:00:00Z"})
    assert (backfill["entities"], backfill["rows_outside_window"]) == (1, 1)
    # The rows before the window's start were not applied: the next run reads the object again.
    later = on_demand(materialize)
    assert (later["objects_read"], later["items_written"], later["items_unchanged"]) == (1, 1, 1)
