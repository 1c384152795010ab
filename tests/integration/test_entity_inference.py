"""Predicting by entity id, against moto: the sample view applied and materialized, a version
registered with the view in its signature, predictions by entity id compared with the same
values sent directly; missing and stale features under each policy; one BatchGetItem per
request; the capture; registration checks; apply refusing a change that breaks a deployed
version."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import boto3
import numpy as np
import pytest

from infra.local.sample_data import FEATURE_SOURCE_KEY, breast_cancer_features
from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from mlops_core.registry.signature import ModelSignature
from mlops_core.serving.capture import CAPTURE_MARKER, CaptureLine
from mlops_core.storage import keys
from tests.integration.conftest import call
from tests.integration.test_features import NOW_MS, VIEW, apply, definition, on_demand
from tests.support import FEATURES, REGION, TABLE, body, load_event, trained_model, upload

MODEL = "breast-cancer"
DAY = 86400


@pytest.fixture
def materialize(aws: None) -> Iterator[ModuleType]:
    from functions.materialize import handler

    saved = handler.service.clock
    handler.service.clock = lambda: NOW_MS / 1000
    yield handler
    handler.service.clock = saved


@pytest.fixture
def clock(inference: ModuleType) -> Iterator[list[float]]:
    """The inference function's clock for ages and staleness (an hour after the rows' time)."""
    now = [NOW_MS / 1000 + 3600]
    features = inference.entity_features
    saved = features.clock
    features.clock = lambda: now[0]
    yield now
    features.clock = saved


@pytest.fixture
def sample_rows() -> list[list[float]]:
    """The source's rows by patient id - 1 (breast_cancer_features: the dataset's order)."""
    lines = breast_cancer_features(NOW_MS).decode().splitlines()[1:]
    return [[float(v) for v in line.split(",")[3:]] for line in lines]


def view_signature(base: ModelSignature, features: list[Any] | None = None) -> ModelSignature:
    return ModelSignature.model_validate(
        base.model_dump() | {"feature_views": [{"view": VIEW, "features": features or list(FEATURES)}]}
    )


def register(registry: ModelRegistry, signature: ModelSignature, *, alias: str | None = "production") -> int:
    _, data, _ = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    version = registry.register_version(
        MODEL,
        RegisterVersionRequest(
            artifact_key="uploads/breast-cancer/model.onnx",
            signature=signature,
            run_id=f"run-{id(signature)}",
        ),
    ).version
    if alias:
        registry.set_alias(MODEL, alias, version)
    return version


@pytest.fixture
def view_model(materialize: ModuleType, registry: ModelRegistry) -> int:
    """The sample view applied and materialized (569 patients), breast-cancer v1 reading all ten
    features from it, production."""
    assert apply(materialize)["statusCode"] == 200
    upload(FEATURE_SOURCE_KEY, breast_cancer_features(NOW_MS))
    assert on_demand(materialize)["items_written"] == 569
    _, _, signature = trained_model("logistic_regression")
    return register(registry, view_signature(signature))


def predict(inference: ModuleType, request: dict[str, Any]) -> dict[str, Any]:
    return call(inference, load_event("inference/predict.json", body=request))


def set_policy(registry_api: ModuleType, policy: dict[str, Any]) -> dict[str, Any]:
    return call(registry_api, load_event("registry/set_feature_policy.json", body=policy))


def reads(inference: ModuleType) -> int:
    return int(inference.entity_features.online.table.read_requests)


# ---- by entity id = by value ---------------------------------------------------------------------
def test_prediction_by_entity_id_equals_prediction_with_the_same_values(
    inference: ModuleType, view_model: int, clock: list[float], sample_rows: list[list[float]]
) -> None:
    by_entity = call(inference, load_event("inference/predict_by_entity.json"))
    assert by_entity["statusCode"] == 200, by_entity["body"]
    direct = predict(inference, {"instances": sample_rows[:2]})
    assert direct["statusCode"] == 200, direct["body"]

    got, want = body(by_entity), body(direct)
    assert got["model_version"] == view_model
    assert got["probabilities"] == want["probabilities"] and got["predictions"] == want["predictions"]
    assert [[(e["view"], e["entity_id"], e["served"]) for e in row] for row in got["entities"]] == [
        [(VIEW, "1", "online")],
        [(VIEW, "2", "online")],  # named by the entity key (patient_id) this time
    ]
    assert want["entities"] is None
    assert got["entities"][0][0]["age_seconds"] == 3600 + 569 * 60  # patient 1: 569 minutes before NOW_MS


def test_entity_ids_are_keyed_in_canonical_form(
    inference: ModuleType, view_model: int, clock: list[float]
) -> None:
    as_text = body(predict(inference, {"entity_ids": [{"patient_id": "007"}]}))
    as_int = body(predict(inference, {"entity_ids": [{"tumour_measurements": 7}]}))
    assert as_text["probabilities"] == as_int["probabilities"]
    assert as_text["entities"][0][0]["entity_id"] == "7"


def test_request_time_inputs_merge_with_online_features(
    inference: ModuleType,
    materialize: ModuleType,
    registry: ModelRegistry,
    clock: list[float],
    sample_rows: list[list[float]],
) -> None:
    """The view feeds the first five inputs (one under another name); the caller sends the rest."""
    assert apply(materialize)["statusCode"] == 200
    upload(FEATURE_SOURCE_KEY, breast_cancer_features(NOW_MS))
    on_demand(materialize)
    _, _, signature = trained_model("logistic_regression")
    register(registry, view_signature(signature, [*FEATURES[:5]]))
    rest = {name: sample_rows[4][i] for i, name in enumerate(FEATURES) if i >= 5}

    merged = predict(inference, {"entity_ids": [{"patient_id": 5}], "instances": [rest]})
    direct = predict(inference, {"instances": [sample_rows[4]]})
    assert merged["statusCode"] == 200, merged["body"]
    assert body(merged)["probabilities"] == body(direct)["probabilities"]

    # A request value for an input the view feeds is refused, naming it.
    clash = predict(
        inference, {"entity_ids": [{"patient_id": 5}], "instances": [rest | {"mean_radius": 1.0}]}
    )
    assert clash["statusCode"] == 422
    assert {"loc": ["body", "instances", 0, "mean_radius"], "type": "fed_by_view"} in [
        {"loc": d["loc"], "type": d["type"]} for d in body(clash)["detail"]
    ]
    # A request-time input left out is reported like any missing feature.
    short = predict(inference, {"entity_ids": [{"patient_id": 5}]})
    assert short["statusCode"] == 422
    assert ["body", "instances", 0, "mean_compactness"] in [d["loc"] for d in body(short)["detail"]]


# ---- one round trip ------------------------------------------------------------------------------
def test_one_batch_get_item_per_request_for_all_rows(
    inference: ModuleType, view_model: int, clock: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    table = inference.entity_features.online.table
    sent: list[int] = []
    batch_get = table.batch_get

    def counting(keys_: Any, **kwargs: Any) -> Any:
        sent.append(len(keys_))
        return batch_get(keys_, **kwargs)

    monkeypatch.setattr(table, "batch_get", counting)
    predict(inference, {"entity_ids": [{"patient_id": 1}]})  # warm: model and policy cached
    sent.clear()
    before = reads(inference)

    response = predict(inference, {"entity_ids": [{"patient_id": i} for i in range(1, 101)]})

    assert response["statusCode"] == 200, response["body"]
    assert sent == [100] and reads(inference) - before == 1  # one call, one BatchGetItem request
    assert len(body(response)["predictions"]) == 100


def test_more_than_100_keys_is_422_saying_the_limit(
    inference: ModuleType, view_model: int, clock: list[float]
) -> None:
    before = reads(inference)
    response = predict(inference, {"entity_ids": [{"patient_id": i} for i in range(1, 102)]})
    assert response["statusCode"] == 422
    assert "at most 100" in body(response)["message"] and "101" in body(response)["message"]
    assert reads(inference) == before  # refused before any read
    # The same entity in several rows is one key.
    repeated = predict(inference, {"entity_ids": [{"patient_id": 1}] * 150})
    assert repeated["statusCode"] == 200, repeated["body"]


# ---- stale and missing features ------------------------------------------------------------------
def test_a_stale_feature_is_refused_by_default_naming_it(
    inference: ModuleType, view_model: int, clock: list[float]
) -> None:
    clock[0] = NOW_MS / 1000 + 31 * DAY  # the view's TTL is 30 days
    response = predict(inference, {"entity_ids": [{"patient_id": 3}]})
    assert response["statusCode"] == 422
    message = body(response)["message"]
    assert "tumour_measurements patient_id 3" in message and "stale" in message and "mean_radius" in message
    assert body(response)["detail"][0]["loc"] == ["body", "entity_ids", 0, VIEW]


def test_a_stale_feature_is_served_flagged_or_defaulted_per_policy(
    inference: ModuleType,
    registry_api: ModuleType,
    view_model: int,
    clock: list[float],
    sample_rows: list[list[float]],
) -> None:
    clock[0] = NOW_MS / 1000 + 31 * DAY
    assert set_policy(registry_api, {"stale": "serve"})["statusCode"] == 200
    inference.predictor.clear()
    served = body(predict(inference, {"entity_ids": [{"patient_id": 3}]}))
    assert (
        served["probabilities"] == body(predict(inference, {"instances": [sample_rows[2]]}))["probabilities"]
    )
    assert served["entities"][0][0] | {"age_seconds": None} == {
        "view": VIEW,
        "entity_id": "3",
        "served": "stale",
        "reason": "stale",
        "age_seconds": None,
        "defaulted": [],
    }

    defaults = dict(zip(FEATURES, sample_rows[10], strict=True))
    assert set_policy(registry_api, {"stale": "default", "defaults": defaults})["statusCode"] == 200
    inference.predictor.clear()
    defaulted = body(predict(inference, {"entity_ids": [{"patient_id": 3}]}))
    assert (
        defaulted["probabilities"]
        == body(predict(inference, {"instances": [sample_rows[10]]}))["probabilities"]
    )
    entry = defaulted["entities"][0][0]
    assert (entry["served"], entry["reason"], entry["defaulted"]) == ("defaulted", "stale", FEATURES)


def test_a_missing_entity_follows_the_policy(
    inference: ModuleType,
    registry_api: ModuleType,
    view_model: int,
    clock: list[float],
    sample_rows: list[list[float]],
) -> None:
    refused = predict(inference, {"entity_ids": [{"patient_id": 1}, {"patient_id": 9999}]})
    assert refused["statusCode"] == 422
    assert "tumour_measurements patient_id 9999: no online features" in body(refused)["message"]
    assert [d["loc"] for d in body(refused)["detail"]] == [["body", "entity_ids", 1, VIEW]]

    # default without declared defaults: still refused, naming the inputs that have none
    assert (
        set_policy(registry_api, {"missing": "default", "defaults": {"mean_radius": 1.0}})["statusCode"]
        == 200
    )
    inference.predictor.clear()
    undeclared = predict(inference, {"entity_ids": [{"patient_id": 9999}]})
    assert undeclared["statusCode"] == 422 and "no default for mean_texture" in body(undeclared)["message"]

    defaults = dict(zip(FEATURES, sample_rows[0], strict=True))
    assert set_policy(registry_api, {"missing": "default", "defaults": defaults})["statusCode"] == 200
    inference.predictor.clear()
    served = body(predict(inference, {"entity_ids": [{"patient_id": 2}, {"patient_id": 9999}]}))
    direct = body(predict(inference, {"instances": [sample_rows[1], sample_rows[0]]}))
    assert served["probabilities"] == direct["probabilities"]
    assert [row[0]["served"] for row in served["entities"]] == ["online", "defaulted"]
    assert served["entities"][1][0]["reason"] == "missing" and served["entities"][1][0]["age_seconds"] is None


def test_the_feature_policy_is_read_and_audited(registry_api: ModuleType, view_model: int) -> None:
    shown = call(registry_api, load_event("registry/get_feature_policy.json"))
    assert body(shown) == {"missing": "refuse", "stale": "refuse", "defaults": {}}
    assert call(registry_api, load_event("registry/set_feature_policy.json"))["statusCode"] == 200
    assert body(call(registry_api, load_event("registry/get_feature_policy.json")))["stale"] == "serve"
    audit = body(call(registry_api, load_event("registry/get_audit.json")))["audit"]
    assert audit[0]["action"] == "set_feature_policy" and audit[0]["feature_policy"]["missing"] == "default"
    bad = set_policy(registry_api, {"stale": "sometimes"})
    assert bad["statusCode"] == 422


def test_bad_entity_ids_are_422_at_the_item(
    inference: ModuleType, view_model: int, clock: list[float]
) -> None:
    cases = [
        ({"entity_ids": [{"patient_id": "x"}]}, ["body", "entity_ids", 0, "patient_id"], "entity_id"),
        ({"entity_ids": [{}]}, ["body", "entity_ids", 0, VIEW], "missing"),
        (
            {"entity_ids": [{"patient_id": 1, "customer": 2}]},
            ["body", "entity_ids", 0, "customer"],
            "unknown",
        ),
        (
            {"entity_ids": [{"patient_id": 1}], "instances": [[1.0] * 10]},
            ["body", "instances", 0],
            "type",
        ),
    ]
    for request, loc, kind in cases:
        response = predict(inference, request)
        assert response["statusCode"] == 422, (request, response["body"])
        assert {"loc": loc, "type": kind} in [
            {"loc": d["loc"], "type": d["type"]} for d in body(response)["detail"]
        ]
    assert predict(inference, {})["statusCode"] == 422


def test_a_version_without_views_refuses_entity_ids(inference: ModuleType, production_model: int) -> None:
    response = predict(inference, {"entity_ids": [{"patient_id": 1}]})
    assert response["statusCode"] == 422
    assert "names no feature views" in body(response)["message"]


# ---- the capture ---------------------------------------------------------------------------------
def test_the_capture_carries_the_entity_ids_and_the_values_assembled(
    inference: ModuleType,
    view_model: int,
    clock: list[float],
    sample_rows: list[list[float]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    capsys.readouterr()
    call(inference, load_event("inference/predict_by_entity.json"))
    lines = [
        CaptureLine.model_validate_json(line)
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("{") and f'"{CAPTURE_MARKER}"' in line
    ]
    rows = [row for line in lines for row in line.rows()]
    assert [r.entity_ids for r in rows] == [{VIEW: "1"}, {VIEW: "2"}]
    assert [r.served for r in rows] == [{VIEW: "online"}, {VIEW: "online"}]
    np.testing.assert_allclose([r.inputs for r in rows], sample_rows[:2], rtol=1e-6)
    assert rows[0].features == FEATURES


# ---- registration ----------------------------------------------------------------------------------
def test_registration_fills_in_the_view_and_records_its_use(registry: ModelRegistry, view_model: int) -> None:
    version = registry.get_version(MODEL, view_model)
    (view,) = version.signature.feature_views
    assert (view.view, view.version, view.entity, view.entity_type) == (VIEW, 1, "patient_id", "int64")
    item = boto3.client("dynamodb", region_name=REGION).get_item(
        TableName=TABLE,
        Key={
            "pk": {"S": keys.feature_view_pk(VIEW)},
            "sk": {"S": keys.feature_used_by_sk(MODEL, view_model)},
        },
    )["Item"]
    assert json.loads(json.dumps(item["features"]))["L"][0] == {"S": "mean_radius"}


def test_registration_refuses_views_that_do_not_fit(
    registry_api: ModuleType, materialize: ModuleType
) -> None:
    apply(materialize)
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    request = {
        "artifact_key": "uploads/breast-cancer/model.onnx",
        "signature": signature.model_dump()
        | {
            "feature_views": [
                {"view": VIEW, "features": ["mean_radius", {"name": "nope", "input": "mean_area"}]}
            ]
        },
    }
    response = call(registry_api, load_event("registry/register_version.json", body=request))
    assert response["statusCode"] == 422, response["body"]
    assert body(response)["detail"][0]["type"] == "unknown_feature"
    assert "view tumour_measurements has no feature nope" in body(response)["message"]
    assert body(response)["detail"][0]["loc"] == ["body", "signature", "feature_views", 0, "features", 1]

    request["signature"]["feature_views"] = [{"view": "no_such_view", "features": ["mean_radius"]}]
    missing = call(registry_api, load_event("registry/register_version.json", body=request))
    assert missing["statusCode"] == 404 and "no_such_view" in body(missing)["message"]

    # A signature's own mistakes are refused by its validation (an input that is not a feature).
    request["signature"]["feature_views"] = [
        {"view": VIEW, "features": [{"name": "mean_radius", "input": "x"}]}
    ]
    assert call(registry_api, load_event("registry/register_version.json", body=request))["statusCode"] == 422


def test_a_retyped_view_feature_that_does_not_fit_is_refused(
    registry_api: ModuleType, materialize: ModuleType
) -> None:
    view = definition()
    view["features"][0] = {"name": "mean_radius", "type": "string"}
    assert apply(materialize, view)["statusCode"] == 200
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    request = {
        "artifact_key": "uploads/breast-cancer/model.onnx",
        "signature": signature.model_dump() | {"feature_views": [{"view": VIEW, "features": FEATURES}]},
    }
    response = call(registry_api, load_event("registry/register_version.json", body=request))
    assert response["statusCode"] == 422
    assert "is string; it cannot feed input 'mean_radius'" in body(response)["detail"][0]["msg"]


# ---- apply refuses breaking a deployed version ---------------------------------------------------
def test_apply_refuses_removing_a_feature_a_deployed_version_reads(
    materialize: ModuleType, registry: ModelRegistry, view_model: int
) -> None:
    without = definition(features=definition()["features"][1:])
    for dry_run in (True, False):
        response = apply(materialize, without, dry_run=dry_run)
        assert response["statusCode"] == 409, response["body"]
        message = body(response)["message"]
        assert "mean_radius (removed)" in message and f"{MODEL} v{view_model} (alias production" in message
    retyped = definition()
    retyped["features"][2] = {"name": "mean_perimeter", "type": "int64"}
    response = apply(materialize, retyped)
    assert response["statusCode"] == 409 and "mean_perimeter (float64 -> int64)" in body(response)["message"]
    entity = definition(entity={"name": "patient_id", "type": "string"})
    assert apply(materialize, entity)["statusCode"] == 409

    # Adding a feature or changing the TTL breaks no one.
    added = definition(ttl="7d", features=[*definition()["features"], {"name": "extra", "type": "int64"}])
    assert apply(materialize, added)["statusCode"] == 200


def test_apply_allows_removing_a_feature_no_deployed_version_reads(
    materialize: ModuleType, registry: ModelRegistry, view_model: int
) -> None:
    # v2 reads only the first five features and becomes production; v1 is archived.
    _, _, signature = trained_model("logistic_regression")
    register(registry, view_signature(signature, FEATURES[:5]))
    without_last = definition(features=definition()["features"][:5])
    assert apply(materialize, without_last)["statusCode"] == 200, "v1 is no longer deployed"
    assert registry.get_version(MODEL, view_model).stage == "Archived"
