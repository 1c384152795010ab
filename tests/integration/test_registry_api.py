"""Registry routes fed the events in events/registry, against moto."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import boto3
import pytest

from mlops_core.errors import Conflict
from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from tests.integration.conftest import call
from tests.support import BUCKET, REGION, TABLE, aws_fault, body, header, load_event, trained_model, upload

ENGINEER = "arn:aws:sts::123456789012:assumed-role/MLEngineer/ml-engineer"


@pytest.fixture
def uploaded() -> str:
    """The sample event's artifact, uploaded with its signature.json beside it."""
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    upload("uploads/breast-cancer/signature.json", signature.model_dump_json().encode())
    return "uploads/breast-cancer/model.onnx"


def _register_event(**changes: object) -> dict:
    """The sample registration with some fields of its body changed."""
    request = json.loads(load_event("registry/register_version.json")["body"]) | changes
    return load_event("registry/register_version.json", body=request)


def _items() -> list[dict]:
    return boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Items"]


def test_register_alias_then_predict(registry_api: ModuleType, uploaded: str) -> None:
    from functions.inference import handler as inference

    inference.predictor.clear()
    registered = call(registry_api, load_event("registry/register_version.json"))
    assert registered["statusCode"] == 201, registered["body"]
    version = body(registered)
    assert version["version"] == 1
    assert version["run_id"] == "run-2026-11-27-001"
    assert version["metrics"] == {"roc_auc": 0.991, "accuracy": 0.956}
    assert version["created_by"] == ENGINEER
    sha256 = version["artifact"]["sha256"]
    assert version["artifact"]["key"] == f"models/breast-cancer/sha256/{sha256}/model.onnx"
    assert version["artifact"]["s3_version_id"]

    aliased = call(registry_api, load_event("registry/set_alias.json"))
    assert aliased["statusCode"] == 200, aliased["body"]
    assert body(aliased) | {"updated_at": None} == {
        "model_name": "breast-cancer",
        "alias": "production",
        "version": 1,
        "revision": 1,
        "updated_at": None,
        "updated_by": ENGINEER,
        "previous_versions": [],
    }

    predicted = call(inference, load_event("inference/predict.json"))
    assert predicted["statusCode"] == 200
    assert body(predicted)["model_version"] == 1


def test_registered_artifact_checksum_is_the_sha256_of_its_bytes(
    registry_api: ModuleType, uploaded: str
) -> None:
    import hashlib

    _, data, _ = trained_model("logistic_regression")
    version = body(call(registry_api, load_event("registry/register_version.json")))
    assert version["artifact"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert version["artifact"]["size_bytes"] == len(data)
    stored = boto3.client("s3", region_name=REGION).get_object(
        Bucket=BUCKET, Key=version["artifact"]["key"], VersionId=version["artifact"]["s3_version_id"]
    )
    assert stored["Body"].read() == data


def test_versions_are_numbered_in_order_and_listed_newest_first(
    registry_api: ModuleType, uploaded: str
) -> None:
    for run in range(3):
        assert call(registry_api, _register_event(run_id=f"run-{run}"))["statusCode"] == 201

    listed = body(call(registry_api, load_event("registry/list_versions.json")))

    assert [v["version"] for v in listed["versions"]] == [3, 2, 1]
    one = call(registry_api, load_event("registry/get_version.json", path_params={"version": "2"}))
    assert body(one)["version"] == 2


def test_concurrent_registrations_get_distinct_numbers(registry: ModelRegistry, uploaded: str) -> None:
    def register(run: int) -> int:
        return registry.register_version(
            "breast-cancer", RegisterVersionRequest(artifact_key=uploaded, run_id=f"run-{run}")
        ).version

    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = list(pool.map(register, range(4)))

    assert sorted(versions) == [1, 2, 3, 4]
    assert registry.get_model("breast-cancer").latest_version == 4


def test_create_list_and_get_models(registry_api: ModuleType) -> None:
    created = call(registry_api, load_event("registry/create_model.json"))
    assert created["statusCode"] == 201
    assert body(created)["owner"] == ENGINEER

    duplicate = call(registry_api, load_event("registry/create_model.json"))
    assert duplicate["statusCode"] == 409
    assert body(duplicate)["message"] == "model 'breast-cancer' already exists"

    models = body(call(registry_api, load_event("registry/list_models.json")))["models"]
    assert [m["name"] for m in models] == ["breast-cancer"]
    detail = body(call(registry_api, load_event("registry/get_model.json")))
    assert detail["model"]["tags"] == {"team": "oncology"}
    assert detail["aliases"] == []


def test_get_alias(registry_api: ModuleType, uploaded: str) -> None:
    call(registry_api, load_event("registry/register_version.json"))
    call(registry_api, load_event("registry/set_alias.json"))
    response = call(registry_api, load_event("registry/get_alias.json"))
    assert body(response)["version"] == 1


def test_stale_expected_revision_is_409_with_the_current_state(
    registry_api: ModuleType, uploaded: str
) -> None:
    call(registry_api, _register_event(run_id="run-a"))
    call(registry_api, _register_event(run_id="run-b"))
    call(registry_api, load_event("registry/set_alias.json", body={"version": 1}))

    stale = call(
        registry_api, load_event("registry/set_alias.json", body={"version": 2, "expected_revision": 0})
    )
    fresh = call(
        registry_api, load_event("registry/set_alias.json", body={"version": 2, "expected_revision": 1})
    )

    assert stale["statusCode"] == 409
    assert body(stale)["current"]["version"] == 1
    assert body(stale)["current"]["revision"] == 1
    assert fresh["statusCode"] == 200
    assert body(fresh)["revision"] == 2


def test_concurrent_alias_moves_each_take_a_distinct_revision(registry: ModelRegistry, uploaded: str) -> None:
    for run in range(4):
        registry.register_version(
            "breast-cancer", RegisterVersionRequest(artifact_key=uploaded, run_id=f"run-{run}")
        )

    def move(version: int) -> int | None:
        try:
            return registry.set_alias("breast-cancer", "production", version, expected_revision=0).revision
        except Conflict:
            return None

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = list(pool.map(move, [1, 2, 3, 4]))

    assert outcomes.count(1) == 1
    assert outcomes.count(None) == 3


@pytest.mark.parametrize(
    ("event", "changes", "status", "message"),
    [
        ("registry/get_model.json", {"path_params": {"name": "nope"}}, 404, "model 'nope' not found"),
        (
            "registry/get_version.json",
            {"path_params": {"version": "9"}},
            404,
            "model 'breast-cancer' has no version 9",
        ),
        (
            "registry/get_alias.json",
            {"path_params": {"alias": "staging"}},
            404,
            "model 'breast-cancer' has no alias 'staging'",
        ),
        ("registry/set_alias.json", {"body": {"version": 7}}, 404, "model 'breast-cancer' has no version 7"),
    ],
)
def test_unknown_things_are_404(
    registry_api: ModuleType, uploaded: str, event: str, changes: dict, status: int, message: str
) -> None:
    call(registry_api, load_event("registry/register_version.json"))
    call(registry_api, load_event("registry/set_alias.json"))
    response = call(registry_api, load_event(event, **changes))
    assert response["statusCode"] == status
    assert body(response)["message"] == message


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"path_params": {"version": "zero"}}, ["path", "version"]),
        ({"path_params": {"version": "0"}}, ["path", "version"]),
        ({"path_params": {"name": "bad name!"}}, ["path", "name"]),
    ],
)
def test_malformed_path_parameters_are_422(registry_api: ModuleType, changes: dict, loc: list) -> None:
    response = call(registry_api, load_event("registry/get_version.json", **changes))
    assert response["statusCode"] == 422
    assert loc in [d["loc"] for d in body(response)["detail"]]


def test_register_rejects_a_checksum_that_does_not_match(registry_api: ModuleType, uploaded: str) -> None:
    request = json.loads(load_event("registry/register_version.json")["body"]) | {"sha256": "ab" * 32}
    response = call(registry_api, load_event("registry/register_version.json", body=request))
    assert response["statusCode"] == 422
    assert body(response)["detail"][0]["type"] == "checksum_mismatch"
    assert _items() == []


def test_register_rejects_an_artifact_that_is_not_onnx(registry_api: ModuleType, uploaded: str) -> None:
    upload("uploads/breast-cancer/model.onnx", b"\x80\x04\x95 pickled bytes")
    response = call(registry_api, load_event("registry/register_version.json"))
    assert response["statusCode"] == 422
    assert body(response)["message"] == "the artifact is not a loadable ONNX model"
    assert _items() == []


def test_register_without_a_signature_anywhere_is_422(registry_api: ModuleType) -> None:
    _, data, _ = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    response = call(registry_api, load_event("registry/register_version.json"))
    assert response["statusCode"] == 422
    assert body(response)["detail"][0]["loc"] == ["body", "signature"]


def test_register_of_a_missing_upload_is_404(registry_api: ModuleType) -> None:
    response = call(registry_api, load_event("registry/register_version.json"))
    assert response["statusCode"] == 404


@pytest.mark.parametrize(
    "field", [{"artifact_key": "../etc/passwd"}, {"unexpected": 1}, {"metrics": {"auc": "high"}}]
)
def test_register_validates_its_body(registry_api: ModuleType, uploaded: str, field: dict) -> None:
    request = json.loads(load_event("registry/register_version.json")["body"]) | field
    response = call(registry_api, load_event("registry/register_version.json", body=request))
    assert response["statusCode"] == 422


def test_failed_transaction_writes_nothing_to_the_table(registry_api: ModuleType, uploaded: str) -> None:
    with aws_fault("dynamodb", "TransactWriteItems", "ThrottlingException"):
        response = call(registry_api, load_event("registry/register_version.json"))
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") == "1"
    assert _items() == []


def test_a_retried_registration_returns_the_same_version_and_writes_nothing(
    registry_api: ModuleType, uploaded: str
) -> None:
    first = call(registry_api, load_event("registry/register_version.json"))
    items = _items()

    retried = call(registry_api, load_event("registry/register_version.json"))

    assert first["statusCode"] == retried["statusCode"] == 201
    assert body(retried) == body(first)
    assert _items() == items


def test_concurrent_duplicate_registrations_make_one_version(registry: ModelRegistry, uploaded: str) -> None:
    def register(_: int) -> int:
        request = RegisterVersionRequest(artifact_key=uploaded, run_id="run-same")
        return registry.register_version("breast-cancer", request).version

    with ThreadPoolExecutor(max_workers=4) as pool:
        versions = set(pool.map(register, range(4)))

    assert versions == {1}
    assert [v.version for v in registry.list_versions("breast-cancer")] == [1]


def test_registry_errors_are_counted_for_alarms(
    registry_api: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    response = call(registry_api, load_event("registry/get_version.json", path_params={"name": "nope"}))
    assert response["statusCode"] == 404
    assert '"ClientErrors":[1.0]' in capsys.readouterr().out


@pytest.mark.parametrize(
    ("event", "payload", "loc"),
    [
        ("registry/create_model.json", {"name": "m1", "tags": {"": "x"}}, ["body", "tags", ""]),
        ("registry/update_model.json", {"tags": {"": "x"}}, ["body", "tags", ""]),
        ("registry/set_policy.json", {"thresholds": {"": {"min": 1}}}, ["body", "thresholds", ""]),
    ],
)
def test_empty_map_keys_are_422_and_nothing_is_written(
    registry_api: ModuleType, event: str, payload: dict, loc: list
) -> None:
    """DynamoDB refuses empty map keys (moto stored a broken item that then failed every read)."""
    call(registry_api, load_event("registry/create_model.json"))
    before = call(registry_api, load_event("registry/list_models.json"))
    response = call(registry_api, load_event(event, body=payload))
    assert response["statusCode"] == 422, response["body"]
    assert any(d["loc"][: len(loc)] == loc for d in body(response)["detail"])
    after = call(registry_api, load_event("registry/list_models.json"))
    assert after["statusCode"] == 200 and body(after) == body(before)  # nothing created or changed
