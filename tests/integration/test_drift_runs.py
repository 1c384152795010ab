"""The drift function and the drift API, fed the sample events in events/drift/, against moto."""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import pytest

from infra.local import lambda_runtime
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage import keys
from tests.integration.drift_support import (
    MODEL,
    TRAINING_RUN,
    capture,
    monitored_model,
    shifted,
    training_rows,
)
from tests.support import BUCKET, FEATURES, REGION, TABLE, FakeLambdaContext, body, load_event

DRIFT_FUNCTION = "drift-test"
os.environ.setdefault("DRIFT_FUNCTION_NAME", DRIFT_FUNCTION)


@pytest.fixture
def drift(aws: None) -> ModuleType:
    from functions.drift import handler

    return handler


@pytest.fixture
def drift_api(aws: None, drift: ModuleType) -> Iterator[ModuleType]:
    """The API, with the drift function deployed in moto under the name it invokes."""
    iam = boto3.client("iam", region_name=REGION)
    role = iam.create_role(RoleName="drift", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    code = io.BytesIO()
    with zipfile.ZipFile(code, "w") as archive:
        archive.writestr("handler.py", "")
    boto3.client("lambda", region_name=REGION).create_function(
        FunctionName=DRIFT_FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="handler.lambda_handler",
        Code={"ZipFile": code.getvalue()},
        Tags={lambda_runtime.SOURCE_TAG: "functions/drift"},
        Timeout=900,
    )
    from functions.drift import api

    yield api
    lambda_runtime.wait_for_asynchronous_invocations()


@pytest.fixture
def registry(aws: None) -> ModelRegistry:
    from functions.registry import handler

    return handler.registry


@pytest.fixture
def bus_queue(aws: None) -> str:
    """Every serverless-mlops event on the default bus (the tests' EVENT_BUS_NAME), in a queue."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="drift-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="all", EventPattern=json.dumps({"source": ["serverless-mlops"]}))
    events.put_targets(Rule="all", Targets=[{"Id": "queue", "Arn": arn}])
    return str(url)


def _events(url: str) -> list[dict[str, Any]]:
    """The monitoring events in the queue (registry events are there too)."""
    sqs = boto3.client("sqs", region_name=REGION)
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    received = [json.loads(m["Body"]) for m in messages]
    return [e for e in received if e["detail-type"] in ("DriftDetected", "DriftRunFailed")]


class DriftContext(FakeLambdaContext):
    def get_remaining_time_in_millis(self) -> int:
        return 900_000  # the drift function's timeout


def _call(module: ModuleType, event: dict[str, Any]) -> dict[str, Any]:
    return module.lambda_handler(event, DriftContext())  # type: ignore[no-any-return]


def _configure(api: ModuleType, config: dict[str, Any]) -> dict[str, Any]:
    return _call(api, load_event("drift/configure_monitoring.json", body=config))


def _monitoring_item() -> dict[str, Any] | None:
    return (
        boto3.client("dynamodb", region_name=REGION)
        .get_item(TableName=TABLE, Key={"pk": {"S": keys.model_pk(MODEL)}, "sk": {"S": keys.MONITORING_SK}})
        .get("Item")
    )


# ---- the schedule ----------------------------------------------------------------------------
def test_a_scheduled_tick_runs_a_due_model_and_flags_the_shifted_features(
    drift: ModuleType, drift_api: ModuleType, registry: ModelRegistry, bus_queue: str
) -> None:
    monitored_model(registry)
    assert _configure(drift_api, {"every_minutes": 60})["statusCode"] == 200
    capture(shifted(training_rows(500), [0, 2, 3], sd=2.0))

    answer = _call(drift, load_event("drift/scheduled.json"))

    (ran,) = answer["ran"]
    assert ran["status"] == "drift"
    assert set(ran["drifted_features"]) == {"mean_radius", "mean_perimeter", "mean_area"}
    run = body(
        _call(drift_api, load_event("drift/get_drift_run.json", path_params={"run_id": ran["run_id"]}))
    )
    assert run["run"]["trigger"] == "schedule" and run["run"]["model_version"] == 1
    assert run["run"]["reference_run_id"] == TRAINING_RUN and run["run"]["window_rows"] == 500
    numbers = {f["feature"]: f for f in run["result"]["features"]}
    assert numbers["mean_radius"]["drifted"] and numbers["mean_radius"]["corrected_p_value"] < 0.05
    assert not numbers["mean_texture"]["drifted"]
    (detected,) = [e for e in _events(bus_queue) if e["detail-type"] == "DriftDetected"]
    assert detected["detail"]["run_id"] == ran["run_id"] and detected["detail"]["kinds"] == ["data"]
    # The next tick, moments later: not due again for an hour.
    assert _call(drift, load_event("drift/scheduled.json"))["ran"] == []


def test_models_never_configured_or_disabled_are_not_scheduled(
    drift: ModuleType, drift_api: ModuleType, registry: ModelRegistry
) -> None:
    monitored_model(registry)
    capture(training_rows(200))
    assert _call(drift, load_event("drift/scheduled.json")) == {
        "due": 0,
        "ran": [],
        "deferred": [],
        "not_recorded": [],
    }
    _configure(drift_api, {"enabled": False})
    assert _call(drift, load_event("drift/scheduled.json"))["due"] == 0


def test_when_time_runs_short_the_remaining_models_wait_for_the_next_tick(
    drift: ModuleType, drift_api: ModuleType, registry: ModelRegistry
) -> None:
    monitored_model(registry)
    _configure(drift_api, {})

    class AlmostOut(FakeLambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 60_000  # less than the 120 s reserve

    answer = drift.lambda_handler(load_event("drift/scheduled.json"), AlmostOut())
    assert answer["deferred"] == [MODEL] and answer["ran"] == []
    assert "last_run_at" not in (_monitoring_item() or {})  # still due


# ---- one run ---------------------------------------------------------------------------------
def test_an_on_demand_run_of_unshifted_traffic_finds_no_drift_and_writes_both_reports(
    drift: ModuleType, registry: ModelRegistry, bus_queue: str
) -> None:
    monitored_model(registry)
    capture(training_rows(500, seed=3))
    event = load_event("drift/on_demand.json")

    answer = _call(drift, event)

    assert answer["status"] == "no_drift" and answer["drifted_features"] == []
    s3 = boto3.client("s3", region_name=REGION)
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{keys.DRIFT_REPORTS_PREFIX}{MODEL}/")
    names = sorted(item["Key"].rsplit("/", 1)[1] for item in listed["Contents"])
    assert names == ["report.html", "report.json"]
    assert not [e for e in _events(bus_queue) if e["detail-type"] == "DriftDetected"]
    # Delivered again (Lambda's at-least-once): the ended run is answered as it is.
    assert _call(drift, event) == answer


def test_a_model_without_a_reference_profile_ends_cleanly_as_no_reference(
    drift: ModuleType, registry: ModelRegistry
) -> None:
    monitored_model(registry, with_profile=False)
    capture(training_rows(200))

    answer = _call(drift, {"model_name": MODEL})

    assert answer["status"] == "no_reference"
    assert f"training run {TRAINING_RUN} (version 1) has no reference profile" in answer["message"]


def test_a_version_registered_without_a_run_is_no_reference_too(
    drift: ModuleType, registry: ModelRegistry
) -> None:
    monitored_model(registry, run_id=None)
    assert _call(drift, {"model_name": MODEL})["status"] == "no_reference"


def test_too_few_rows_is_insufficient_data_not_drift(
    drift: ModuleType, registry: ModelRegistry, bus_queue: str
) -> None:
    monitored_model(registry)
    capture(shifted(training_rows(40), [0], sd=5.0))

    answer = _call(drift, {"model_name": MODEL})

    assert answer["status"] == "insufficient_data"
    assert "min_rows" in answer["message"]
    assert _events(bus_queue) == []


def test_rows_of_versions_with_other_feature_orders_line_up_by_name(
    drift: ModuleType, registry: ModelRegistry
) -> None:
    monitored_model(registry)
    rows = training_rows(300, seed=5)
    capture(rows[:150])
    # Another version whose signature lists the features in reverse order (and a shift
    # of 3 sd on mean_radius, which would land on mean_fractal_dimension if read by position).
    capture(shifted(rows[150:], [0], sd=3.0)[:, ::-1], version=2, features=FEATURES[::-1])

    answer = _call(drift, {"model_name": MODEL})

    assert answer["drifted_features"] == ["mean_radius"]


def test_an_unreadable_profile_fails_the_run_and_says_so(
    drift: ModuleType, registry: ModelRegistry, bus_queue: str
) -> None:
    monitored_model(registry)
    boto3.client("s3", region_name=REGION).put_object(
        Bucket=BUCKET, Key=keys.reference_profile(TRAINING_RUN), Body=b'{"rows": "many"}'
    )
    capture(training_rows(200))

    answer = _call(drift, {"model_name": MODEL})

    assert answer["status"] == "failed" and "cannot be read" in answer["message"]
    (failed,) = _events(bus_queue)
    assert failed["detail-type"] == "DriftRunFailed" and failed["detail"]["run_id"] == answer["run_id"]


def test_a_malformed_invocation_is_refused_without_raising(drift: ModuleType) -> None:
    answer = _call(drift, {"model_name": "has spaces", "run_id": "nope"})
    assert answer["error"] == "invalid_request"
    assert {tuple(p["loc"]) for p in answer["detail"]} == {("model_name",), ("run_id",)}


# ---- the API ---------------------------------------------------------------------------------
def test_configuration_round_trips_and_defaults_show_before_it_is_set(
    drift_api: ModuleType, registry: ModelRegistry
) -> None:
    monitored_model(registry)
    before = body(_call(drift_api, load_event("drift/get_monitoring.json")))
    assert before["configured"] is False and before["scheduled"] is False
    assert before["config"]["every_minutes"] == 60 and before["config"]["drift"]["alpha"] == 0.05

    stored = body(_configure(drift_api, json.loads(load_event("drift/configure_monitoring.json")["body"])))

    assert stored["configured"] and stored["scheduled"] and stored["revision"] == 1
    assert stored["config"]["drift"]["numeric_threshold"] == 0.1
    assert stored["actor"] == "arn:aws:sts::123456789012:assumed-role/MLEngineer/ml-engineer"
    assert body(_call(drift_api, load_event("drift/get_monitoring.json"))) == stored


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"every_minutes": 1}, ["body", "every_minutes"]),
        ({"drift": {"alpha": 2}}, ["body", "drift", "alpha"]),
        ({"drift": {"correction": "holm"}}, ["body", "drift", "correction"]),
        ({"window": 24}, ["body", "window"]),
        (
            {"drift": {"thresholds": {"mean_radius": 0.2, "radius": 0.1}}},
            ["body", "drift", "thresholds", "radius"],
        ),
        ({"max_rows": 500, "drift": {"min_rows": 1000}}, ["body", "drift", "min_rows"]),
    ],
)
def test_a_malformed_configuration_is_422_with_its_location_and_nothing_is_saved(
    drift_api: ModuleType, registry: ModelRegistry, config: dict[str, Any], loc: list[str]
) -> None:
    monitored_model(registry)

    response = _configure(drift_api, config)

    assert response["statusCode"] == 422, response
    assert loc in [d["loc"] for d in body(response)["detail"]]
    assert _monitoring_item() is None


def test_unknown_models_are_404(drift_api: ModuleType) -> None:
    for event in (
        "configure_monitoring",
        "get_monitoring",
        "start_drift_run",
        "list_drift_runs",
        "get_drift",
    ):
        response = _call(drift_api, load_event(f"drift/{event}.json", path_params={"name": "nope"}))
        assert response["statusCode"] == 404, event
        assert body(response)["message"] == "model 'nope' not found"
    assert _monitoring_item() is None


def test_a_started_run_is_202_then_finishes_asynchronously(
    drift_api: ModuleType, registry: ModelRegistry
) -> None:
    monitored_model(registry)
    capture(shifted(training_rows(400), [1, 4], sd=2.0))

    response = _call(drift_api, load_event("drift/start_drift_run.json"))

    assert response["statusCode"] == 202
    started = body(response)
    assert started["status"] == "running"
    lambda_runtime.wait_for_asynchronous_invocations()
    run_event = load_event("drift/get_drift_run.json", path_params={"run_id": started["run_id"]})
    detail = body(_call(drift_api, run_event))
    assert detail["run"]["status"] == "drift"
    assert set(detail["run"]["drifted_features"]) == {"mean_texture", "mean_smoothness"}
    assert detail["report_path"] == f"/models/{MODEL}/drift-runs/{started['run_id']}/report"
    report_event = load_event("drift/get_drift_report.json", path_params={"run_id": started["run_id"]})
    html = _call(drift_api, report_event)
    assert html["statusCode"] == 200 and html["multiValueHeaders"]["Content-Type"][0].startswith("text/html")
    assert "<svg" in html["body"] and "mean_texture" in html["body"] and "<script" not in html["body"]
    overview = body(_call(drift_api, load_event("drift/get_drift.json")))
    assert overview["latest"]["run_id"] == started["run_id"]
    history = body(_call(drift_api, load_event("drift/list_drift_runs.json")))["runs"]
    assert [r["run_id"] for r in history] == [started["run_id"]]
    assert BUCKET not in json.dumps(detail) and "drift-reports/" not in json.dumps(detail)


def test_unknown_runs_and_runs_without_reports_are_404(
    drift_api: ModuleType, registry: ModelRegistry
) -> None:
    monitored_model(registry)
    missing = _call(drift_api, load_event("drift/get_drift_run.json"))
    assert missing["statusCode"] == 404 and "has no drift run" in body(missing)["message"]
    malformed = _call(drift_api, load_event("drift/get_drift_run.json", path_params={"run_id": "latest"}))
    assert malformed["statusCode"] == 422


def test_every_run_evaluates_concept_drift_from_the_windows_feedback(
    drift: ModuleType, registry: ModelRegistry
) -> None:
    """The handler's concept hook is the feedback evaluator: a run with no labelled feedback
    in its window records why it could not judge, and is not concept drift."""
    from mlops_core.monitoring.concept_hook import ConceptHook

    assert isinstance(drift.concept, ConceptHook)
    monitored_model(registry)
    capture(training_rows(500, seed=3))
    run_id = _call(drift, load_event("drift/on_demand.json"))["run_id"]

    summary = drift.service.get_run(MODEL, run_id)
    assert summary.concept is not None and summary.concept["drifted"] is False
    assert summary.concept["summary"]["status"] in {"no_baseline", "insufficient_data"}
