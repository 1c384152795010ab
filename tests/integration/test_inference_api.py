"""POST /models/{name}/predict and GET /health, fed the events in events/inference."""

from __future__ import annotations

import base64
import json
from types import ModuleType
from unittest import mock

import numpy as np
import pytest

from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from tests.integration.conftest import call
from tests.support import (
    FEATURES,
    ROW0,
    FakeClock,
    aws_fault,
    body,
    breast_cancer_xy,
    corrupt_recorded_checksum,
    header,
    load_event,
    trained_model,
    upload,
)


def test_predict_returns_the_production_models_probabilities(
    inference: ModuleType, production_model: int
) -> None:
    estimator, _, _ = trained_model("logistic_regression")
    event = load_event("inference/predict.json")

    response = call(inference, event)

    assert response["statusCode"] == 200, response["body"]
    result = body(response)
    assert result["model_name"] == "breast-cancer"
    assert result["model_version"] == production_model
    assert result["alias"] == "production"
    assert result["classes"] == [0, 1]
    instances = np.asarray(json.loads(event["body"])["instances"])
    np.testing.assert_allclose(result["probabilities"], estimator.predict_proba(instances), atol=1e-5)
    assert result["predictions"] == estimator.predict(instances).tolist()
    assert len(set(result["prediction_ids"])) == 2


def test_feature_objects_predict_like_lists(inference: ModuleType, production_model: int) -> None:
    by_name = body(call(inference, load_event("inference/predict_by_feature_name.json")))
    as_list = body(
        call(
            inference,
            load_event("inference/predict.json", body={"instances": [ROW0]}),
        )
    )
    assert by_name["probabilities"] == as_list["probabilities"]


def test_a_request_may_mix_lists_and_feature_objects(inference: ModuleType, production_model: int) -> None:
    rows = [ROW0, dict(zip(FEATURES, ROW0, strict=True))]
    response = call(inference, load_event("inference/predict.json", body={"instances": rows}))
    assert response["statusCode"] == 200, response["body"]
    first, second = body(response)["probabilities"]
    assert first == second


def test_a_row_that_is_neither_list_nor_object_gets_one_precise_error(
    inference: ModuleType, production_model: int
) -> None:
    response = call(inference, load_event("inference/predict.json", body={"instances": [ROW0, "row"]}))
    assert response["statusCode"] == 422
    assert body(response)["detail"] == [
        {
            "loc": ["body", "instances", 1],
            "msg": "an instance is a list of values or an object of features",
            "type": "instance_type",
        }
    ]


def test_health_answers_without_a_model(inference: ModuleType) -> None:
    response = call(inference, load_event("inference/health.json"))
    assert response["statusCode"] == 200
    assert body(response)["status"] == "ok"


def test_unknown_model_is_404(inference: ModuleType) -> None:
    response = call(inference, load_event("inference/predict.json", path_params={"name": "no-such-model"}))
    assert response["statusCode"] == 404
    assert body(response)["message"] == "model 'no-such-model' not found"


def test_model_without_production_alias_is_404(inference: ModuleType, registry: ModelRegistry) -> None:
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/m.onnx", data)
    registry.register_version(
        "breast-cancer", RegisterVersionRequest(artifact_key="uploads/m.onnx", signature=signature)
    )

    response = call(inference, load_event("inference/predict.json"))

    assert response["statusCode"] == 404
    assert body(response)["message"] == "model 'breast-cancer' has no alias 'production'"


@pytest.mark.parametrize(
    ("instances", "loc", "kind"),
    [
        ([ROW0[:3]], ["body", "instances", 0], "feature_count"),
        (
            [dict(zip(FEATURES, ROW0, strict=True)) | {"area": 4.0}],
            ["body", "instances", 0, "area"],
            "extra_forbidden",
        ),
        (
            [{k: v for k, v in zip(FEATURES, ROW0, strict=True) if k != "mean_area"}],
            ["body", "instances", 0, "mean_area"],
            "missing",
        ),
        ([[1.0, "2", *ROW0[2:]]], ["body", "instances", 0, "mean_texture"], "number_type"),
        ([[1.0, 2.0, None, *ROW0[3:]]], ["body", "instances", 0, "mean_perimeter"], "missing_value"),
        ([[1.0, 2.0, True, *ROW0[3:]]], ["body", "instances", 0, "mean_perimeter"], "number_type"),
        ([], ["body", "instances"], "too_short"),
        ([ROW0] * 1001, ["body", "instances"], "too_long"),
        # One error at the row or value, not one per member of a union (found trying the CLI).
        ([ROW0, 5], ["body", "instances", 1], "instance_type"),
        ([[1.0, [2.0], *ROW0[2:]]], ["body", "instances", 0, "mean_texture"], "number_type"),
        ([[1.0, {"v": 2.0}, *ROW0[2:]]], ["body", "instances", 0, "mean_texture"], "number_type"),
    ],
)
def test_bad_instances_are_422_with_field_detail(
    inference: ModuleType, production_model: int, instances: list, loc: list, kind: str
) -> None:
    response = call(inference, load_event("inference/predict.json", body={"instances": instances}))
    assert response["statusCode"] == 422, response["body"]
    details = body(response)["detail"]
    assert {"loc": loc, "type": kind} in [{"loc": d["loc"], "type": d["type"]} for d in details]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_422(inference: ModuleType, production_model: int, literal: str) -> None:
    values = ", ".join([*map(str, ROW0[:3]), literal, *map(str, ROW0[4:])])
    raw = '{"instances": [[' + values + "]]}"
    response = call(inference, load_event("inference/predict.json", body=raw))
    assert response["statusCode"] == 422
    assert body(response)["detail"][0] == {
        "loc": ["body", "instances", 0, "mean_area"],
        "msg": f"'mean_area' must be finite, got {float(literal)}",
        "type": "finite_number",
    }


def test_missing_instances_field_is_422(inference: ModuleType, production_model: int) -> None:
    response = call(inference, load_event("inference/predict.json", body={"rows": [[1, 2, 3, 4]]}))
    assert response["statusCode"] == 422
    assert ["body", "rows"] in [d["loc"] for d in body(response)["detail"]]
    # instances or entity_ids (predictions by entity id): one of them is required
    response = call(inference, load_event("inference/predict.json", body={}))
    assert response["statusCode"] == 422
    assert ["body", "instances"] in [d["loc"] for d in body(response)["detail"]]


def test_malformed_json_is_400(inference: ModuleType, production_model: int) -> None:
    response = call(inference, load_event("inference/predict.json", body='{"instances": [[1, 2,'))
    assert response["statusCode"] == 400
    assert body(response)["message"].startswith("malformed JSON body")


def test_overwriting_the_object_does_not_change_what_is_served(
    inference: ModuleType, production_model: int
) -> None:
    before = body(call(inference, load_event("inference/predict.json")))
    inference.predictor.clear()
    _, other, _ = trained_model("random_forest")
    key = inference.predictor.registry.get_version("breast-cancer", production_model).artifact.key
    upload(key, other)  # same key, new S3 object version

    after = body(call(inference, load_event("inference/predict.json")))

    assert after["probabilities"] == before["probabilities"]


def test_checksum_mismatch_is_503_and_nothing_is_served(inference: ModuleType, production_model: int) -> None:
    corrupt_recorded_checksum("breast-cancer", production_model)

    response = call(inference, load_event("inference/predict.json"))

    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "30"
    result = body(response)
    assert result["code"] == "integrity_failure"
    assert "integrity check failed for model 'breast-cancer' v1" in result["message"]
    assert "predictions" not in result


def test_integrity_failure_keeps_serving_the_last_good_version(
    inference: ModuleType, production_model: int, registry: ModelRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock()
    inference.predictor.clock = clock
    assert body(call(inference, load_event("inference/predict.json")))["model_version"] == production_model
    _, data, signature = trained_model("random_forest")
    upload("uploads/rf.onnx", data)
    v2 = registry.register_version(
        "breast-cancer", RegisterVersionRequest(artifact_key="uploads/rf.onnx", signature=signature)
    )
    registry.set_alias("breast-cancer", "production", v2.version)
    corrupt_recorded_checksum("breast-cancer", v2.version)
    clock.advance(inference.settings.alias_cache_ttl_seconds + 1)

    response = call(inference, load_event("inference/predict.json"))

    assert response["statusCode"] == 200
    assert body(response)["model_version"] == production_model
    assert '"ArtifactIntegrityFailures":[1.0]' in capsys.readouterr().out


def test_promotion_reaches_a_warm_container_after_the_alias_ttl(
    inference: ModuleType, production_model: int, registry: ModelRegistry
) -> None:
    clock = FakeClock()
    inference.predictor.clock = clock
    call(inference, load_event("inference/predict.json"))
    _, data, signature = trained_model("random_forest")
    upload("uploads/rf.onnx", data)
    v2 = registry.register_version(
        "breast-cancer", RegisterVersionRequest(artifact_key="uploads/rf.onnx", signature=signature)
    )
    registry.set_alias("breast-cancer", "production", v2.version)

    clock.advance(inference.settings.alias_cache_ttl_seconds - 1)
    assert body(call(inference, load_event("inference/predict.json")))["model_version"] == production_model
    clock.advance(2)
    assert body(call(inference, load_event("inference/predict.json")))["model_version"] == v2.version


@pytest.mark.parametrize(
    "code", ["ProvisionedThroughputExceededException", "ThrottlingException", "InternalServerError"]
)
def test_dynamodb_failure_is_503_with_retry_after(
    inference: ModuleType, production_model: int, code: str
) -> None:
    with aws_fault("dynamodb", "GetItem", code):
        response = call(inference, load_event("inference/predict.json"))
    assert response["statusCode"] == 503
    assert int(header(response, "Retry-After") or 0) >= 1
    assert "metadata table" in body(response)["message"]


def test_s3_failure_is_503(inference: ModuleType, production_model: int) -> None:
    with aws_fault("s3", "GetObject", "SlowDown", status=503):
        response = call(inference, load_event("inference/predict.json"))
    assert response["statusCode"] == 503
    assert "artifact store" in body(response)["message"]


def test_warm_calls_do_not_read_the_registry_again(inference: ModuleType, production_model: int) -> None:
    assert call(inference, load_event("inference/predict.json"))["statusCode"] == 200
    with mock.patch.object(
        inference.predictor.registry, "resolve_alias", side_effect=AssertionError("re-read")
    ):
        assert call(inference, load_event("inference/predict.json"))["statusCode"] == 200


def test_holdout_predictions_match_through_the_handler(inference: ModuleType, production_model: int) -> None:
    estimator, _, _ = trained_model("logistic_regression")
    x, _ = breast_cancer_xy()
    response = call(inference, load_event("inference/predict.json", body={"instances": x[:500].tolist()}))
    np.testing.assert_allclose(body(response)["probabilities"], estimator.predict_proba(x[:500]), atol=1e-5)


def test_the_first_prediction_reads_through_signed_requests_only(
    inference: ModuleType, production_model: int
) -> None:
    """Routing policy, alias, version and artifact are four signed HTTP reads
    (mlops_core.storage.signed_reads) against the moto server; no boto3 client makes a call on
    the prediction path."""
    from mlops_core.storage.clients import client, reader

    sent: list[str] = []
    boto3_calls: list[str] = []
    transport = reader("dynamodb").transport
    assert reader("s3").transport is transport  # one transport: connections are shared

    def recording(request):  # type: ignore[no-untyped-def]
        sent.append(request.headers.get("x-amz-target") or f"{request.method} {request.url.split('?')[0]}")
        return transport(request)

    for service in ("dynamodb", "s3"):
        reader(service).transport = recording  # type: ignore[arg-type]
        client(service).meta.events.register(
            "before-send", lambda **kw: boto3_calls.append(kw["request"].url), unique_id="count"
        )
    try:
        assert call(inference, load_event("inference/predict.json"))["statusCode"] == 200
    finally:
        for service in ("dynamodb", "s3"):
            reader(service).transport = transport  # type: ignore[arg-type]
            client(service).meta.events.unregister("before-send", unique_id="count")
    assert sent[:3] == ["DynamoDB_20120810.GetItem"] * 3
    assert sent[3].startswith("GET http://127.0.0.1:") and sent[3].endswith("/model.onnx")
    assert len(sent) == 4 and boto3_calls == []


def test_unreachable_metadata_table_is_503_not_a_hang(inference: ModuleType, production_model: int) -> None:
    from mlops_core.storage.clients import reader

    table = reader("dynamodb")
    saved = table.endpoint_url, table.sleep
    table.endpoint_url, table.sleep = "http://127.0.0.1:9", lambda _: None  # nothing listens on port 9
    try:
        response = call(inference, load_event("inference/predict.json"))
    finally:
        table.endpoint_url, table.sleep = saved
    assert response["statusCode"] == 503
    assert "metadata table is unreachable" in body(response)["message"]
    assert int(header(response, "Retry-After") or 0) >= 1


def test_errors_are_counted_for_alarms(
    inference: ModuleType, production_model: int, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = load_event("inference/predict.json", path_params={"name": "no-such-model"})
    assert call(inference, unknown)["statusCode"] == 404
    assert '"ClientErrors":[1.0]' in capsys.readouterr().out


# ---- requests a fuzzer found (schemathesis against the local stack): 4xx, never 500 -------


@pytest.mark.parametrize(
    ("content_type", "raw_body"),
    [
        ("text/plain", '{"instances": []}'),
        ("multipart/form-data", "x"),
        ("application/x-www-form-urlencoded", "a=1"),
    ],
)
def test_a_body_that_is_not_json_is_415(
    inference: ModuleType, production_model: int, content_type: str, raw_body: str
) -> None:
    event = load_event("inference/predict.json", body=raw_body)
    event["headers"]["Content-Type"] = content_type
    response = call(inference, event)
    assert response["statusCode"] == 415
    assert body(response)["code"] == "unsupported_media_type"


def test_a_body_that_is_not_utf8_is_400(inference: ModuleType, production_model: int) -> None:
    event = load_event("inference/predict.json", body=base64.b64encode(b"\xff\xfe").decode())
    event["isBase64Encoded"] = True
    response = call(inference, event)
    assert response["statusCode"] == 400
    assert body(response)["message"] == "malformed body: not UTF-8 text"


def test_json_nested_too_deeply_is_400(inference: ModuleType, production_model: int) -> None:
    response = call(inference, load_event("inference/predict.json", body="[" * 5000 + "]" * 5000))
    assert response["statusCode"] == 400
    assert "nested too deeply" in body(response)["message"]


def test_a_path_no_route_accepts_is_404_not_500(inference: ModuleType) -> None:
    response = call(inference, load_event("inference/predict.json", path_params={"name": 'a"b\u20ac'}))
    assert response["statusCode"] == 404
    assert body(response)["message"].startswith("no such resource: POST /models/")


@pytest.mark.parametrize("value", [10**400, 1e39, -3.5e38])
def test_numbers_the_models_float32_input_cannot_hold_are_422(
    inference: ModuleType, production_model: int, value: float
) -> None:
    response = call(inference, load_event("inference/predict.json", body={"instances": [[value, *ROW0[1:]]]}))
    assert response["statusCode"] == 422
    (problem,) = body(response)["detail"]
    assert problem["loc"] == ["body", "instances", 0, FEATURES[0]]
    assert problem["type"] == "number_range"


def test_rows_the_model_cannot_score_are_422_not_nan(inference: ModuleType, production_model: int) -> None:
    """Finite float32 inputs can still overflow inside a linear model (NaN probabilities,
    which are not even valid JSON); those rows are refused and named."""
    extreme = [3e38 if i % 2 else -3e38 for i in range(len(ROW0))]
    response = call(inference, load_event("inference/predict.json", body={"instances": [ROW0, extreme]}))
    assert response["statusCode"] == 422
    assert [d["loc"] for d in body(response)["detail"]] == [["body", "instances", 1]]
    assert body(response)["detail"][0]["type"] == "non_finite_output"
    assert "NaN" not in response["body"]
