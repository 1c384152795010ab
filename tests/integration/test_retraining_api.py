"""Reading the retraining loop's decisions through the drift API (events/drift/*retraining*.json)
against moto: the list newest first, one decision with its training run and registered
version, the drift run linked to the decision it led to, and the 404s and 422s."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import pytest

from mlops_core.monitoring.records import DriftRunSummary, new_run_id
from mlops_core.monitoring.repository import MonitoringRepository
from mlops_core.retraining.entities import decided_at, decision_id
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.steps import validate_data
from mlops_core.training.tracking import RunTracker
from tests.integration.test_drift_runs import _call, drift, drift_api  # noqa: F401 (fixtures)
from tests.integration.test_retraining import (  # noqa: F401 (world: a fixture)
    MODEL,
    World,
    _event,
    _executions,
    world,
)
from tests.support import BUCKET, TABLE, body, load_event


def _list(api: ModuleType, **query: str) -> dict[str, Any]:
    return _call(api, load_event("drift/list_retraining.json", query=query or None))


def _get(api: ModuleType, decision: str, name: str = MODEL) -> dict[str, Any]:
    return _call(
        api, load_event("drift/get_retraining.json", path_params={"name": name, "decision_id": decision})
    )


def _ended_drift_run(status: str = "drift") -> str:
    """A drift run of the model recorded as ended, as the drift function records it."""
    run_id = new_run_id(datetime.now(UTC))
    repository = MonitoringRepository(MetadataTable(TABLE))
    summary = DriftRunSummary(
        model_name=MODEL,
        run_id=run_id,
        trigger="schedule",
        status="running",
        started_at=str(decided_at(run_id)),
    )
    repository.start_run(summary)
    if status != "running":
        repository.finish_run(
            summary.model_copy(update={"status": status, "drifted_features": ["mean_radius"]})
        )
    return run_id


def test_decision_ids_carry_their_time() -> None:
    made = decision_id("2026-12-01T12:00:05.123Z", "6a7e8feb-b491-4cf7-a9f1-bf3703467718")
    assert made.startswith("20261201T120005123Z-") and len(made) == 28
    assert decided_at(made) == "2026-12-01T12:00:05.123Z"
    assert decided_at("20261301T120005123Z-0d5abba4") is None  # month 13
    assert decided_at("not-an-id") is None


def test_decisions_are_listed_newest_first_and_one_is_read_with_its_run_and_version(
    world: World,  # noqa: F811
    drift_api: ModuleType,  # noqa: F811
) -> None:
    started = world.service.handle(_event(world.now_ms))
    skipped = world.service.handle(_event(world.now_ms, event_id="second-event", run_id="drift-2"))
    assert (started.outcome, skipped.outcome) == ("started", "skipped")

    listed = _list(drift_api)
    assert listed["statusCode"] == 200
    decisions = body(listed)["decisions"]
    assert [d["decision_id"] for d in decisions] == [skipped.decision_id, started.decision_id]
    assert decisions[1]["run_id"] == started.run_id and decisions[1]["counts"]["labelled"] == 100
    assert "within the cooldown" in decisions[0]["reason"]
    assert [d["decision_id"] for d in body(_list(drift_api, limit="1"))["decisions"]] == [skipped.decision_id]

    # The run the decision started, as its record says: not recorded yet (the workflow's first
    # step writes it), then running, then registered.
    view = body(_get(drift_api, started.decision_id))
    assert view["decision"]["decision_id"] == started.decision_id
    assert view["training_run"] == {"run_id": started.run_id, "found": False} | {
        k: None
        for k in (
            "status",
            "dataset",
            "evaluation",
            "failure",
            "registered_version",
            "started_at",
            "ended_at",
        )
    }
    assert view["drift_run_path"] == f"/models/{MODEL}/drift-runs/drift-20261201-110000-3f2a1b"
    tracker = RunTracker(MetadataTable(TABLE))
    (execution,) = _executions()  # the stand-in workflow's input: the request the decision started
    validate_data(json.loads(execution["input"]), ArtifactStore(BUCKET), tracker)
    running = body(_get(drift_api, started.decision_id))
    assert running["training_run"]["status"] == "RUNNING" and running["training_run"]["found"] is True
    assert running["training_run"]["dataset"]["key"] == started.dataset_key
    assert running["registered_version"] is None and running["version_path"] is None

    tracker.finish(str(started.run_id), "SUCCEEDED", registered_version=2)
    done = body(_get(drift_api, started.decision_id))
    assert done["training_run"]["status"] == "SUCCEEDED" and done["registered_version"] == 2
    assert done["version_path"] == f"/models/{MODEL}/versions/2"

    # A skipped decision started nothing.
    alone = body(_get(drift_api, str(skipped.decision_id)))
    assert alone["training_run"] is None and alone["registered_version"] is None


def test_the_drift_run_names_the_decision_it_led_to(
    world: World,  # noqa: F811
    drift_api: ModuleType,  # noqa: F811
) -> None:
    run_id = _ended_drift_run()

    decision = world.service.handle(_event(world.now_ms, run_id=run_id))

    assert decision.outcome == "started"
    detail = body(_call(drift_api, load_event("drift/get_drift_run.json", path_params={"run_id": run_id})))
    assert detail["run"]["retraining"] == {
        "decision_id": decision.decision_id,
        "outcome": "started",
        "reason": decision.reason,
        "run_id": decision.run_id,
        "at": decision.at,
    }
    # A redelivery records nothing new and leaves the link as it was.
    again = world.service.handle(_event(world.now_ms, run_id=run_id))
    assert again.outcome == "duplicate"
    assert [d["decision_id"] for d in body(_list(drift_api))["decisions"]] == [decision.decision_id]
    relinked = body(_call(drift_api, load_event("drift/get_drift_run.json", path_params={"run_id": run_id})))
    assert relinked["run"]["retraining"]["decision_id"] == decision.decision_id


def test_a_drift_run_not_recorded_as_ended_is_not_linked(
    world: World,  # noqa: F811
    drift_api: ModuleType,  # noqa: F811
) -> None:
    run_id = _ended_drift_run(status="running")

    decision = world.service.handle(_event(world.now_ms, run_id=run_id))

    assert decision.outcome == "started"  # the decision stands; the run's own end is not overwritten
    detail = body(_call(drift_api, load_event("drift/get_drift_run.json", path_params={"run_id": run_id})))
    assert detail["run"]["status"] == "running" and detail["run"]["retraining"] is None


def test_unknown_models_and_decisions_are_404_and_malformed_ids_and_limits_422(
    world: World,  # noqa: F811
    drift_api: ModuleType,  # noqa: F811
) -> None:
    unknown_model = _call(drift_api, load_event("drift/list_retraining.json", path_params={"name": "nope"}))
    assert unknown_model["statusCode"] == 404 and "nope" in body(unknown_model)["message"]
    assert _get(drift_api, "20261201T120005123Z-0d5abba4", name="nope")["statusCode"] == 404
    missing = _get(drift_api, "20261201T120005123Z-0d5abba4")
    assert missing["statusCode"] == 404
    assert (
        body(missing)["message"]
        == f"model '{MODEL}' has no retraining decision '20261201T120005123Z-0d5abba4'"
    )
    for bad in ("latest", "20261201T120005123Z-XYZ", "2026-12-01"):
        answer = _get(drift_api, bad)
        assert answer["statusCode"] == 422, (bad, answer)
        assert TABLE not in answer["body"] and BUCKET not in answer["body"]
    assert _list(drift_api, limit="0")["statusCode"] == 422
    assert _list(drift_api, limit="201")["statusCode"] == 422
    assert body(_list(drift_api))["decisions"] == []


@pytest.mark.parametrize("name", ["list_retraining.json", "get_retraining.json"])
def test_the_sample_events_answer(
    world: World,  # noqa: F811
    drift_api: ModuleType,  # noqa: F811
    name: str,
) -> None:
    answer = _call(drift_api, load_event(f"drift/{name}"))
    # The sample decision id is not one of this model's: 404 with the message; the list is 200.
    assert answer["statusCode"] == (200 if name.startswith("list") else 404), answer
