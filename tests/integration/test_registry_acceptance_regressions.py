"""Regressions from acceptance testing of the registry (issue 10): each test failed on the
code before its fix."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

import boto3
import pytest

from mlops_core.errors import Conflict
from mlops_core.registry.entities import PromotionPolicy, RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from mlops_core.training.tracking import RunTracker
from tests.integration.conftest import call
from tests.support import BUCKET, REGION, TABLE, body, load_event, trained_model, upload


def _register_event(**changes: object) -> dict:
    request = json.loads(load_event("registry/register_version.json")["body"]) | changes
    return load_event("registry/register_version.json", body=request)


def _distinct_artifacts(count: int) -> tuple[list[bytes], object]:
    """``count`` different ONNX artifacts of the same signature (the graph's doc string differs)."""
    import onnx

    _, data, signature = trained_model("logistic_regression")
    artifacts = []
    for i in range(count):
        model = onnx.load_model_from_string(data)
        model.doc_string = f"variant {i}"
        artifacts.append(model.SerializeToString())
    return artifacts, signature


def _s3_objects() -> list[tuple[str, str]]:
    s3 = boto3.client("s3", region_name=REGION)
    listed = s3.list_object_versions(Bucket=BUCKET)
    return sorted((v["Key"], v["VersionId"]) for v in listed.get("Versions", []))


@pytest.mark.parametrize("versioning", ["Enabled", "Suspended"])
def test_concurrent_registrations_never_corrupt_artifacts(
    registry_api: ModuleType, registry: ModelRegistry, versioning: str
) -> None:
    boto3.client("s3", region_name=REGION).put_bucket_versioning(
        Bucket=BUCKET, VersioningConfiguration={"Status": versioning}
    )
    artifacts, signature = _distinct_artifacts(16)
    for i, data in enumerate(artifacts):
        upload(f"uploads/concurrent/{i}/model.onnx", data)
        upload(f"uploads/concurrent/{i}/signature.json", signature.model_dump_json().encode())  # type: ignore[attr-defined]

    # Concurrent registrations as concurrent Lambda environments make them: each thread its
    # own call into the registry (one handler module shared by threads would share
    # Powertools' per-request resolver state, which one Lambda environment never does).
    def register(i: int) -> dict | None:
        request = RegisterVersionRequest(artifact_key=f"uploads/concurrent/{i}/model.onnx", run_id=f"r{i}")
        try:
            return registry.register_version("breast-cancer", request).model_dump(mode="json")
        except Conflict:
            return None  # the 409 the API answers

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(register, range(len(artifacts))))

    created = [v for v in outcomes if v is not None]
    assert {v["run_id"] for v in created} == {f"r{i}" for i, v in enumerate(outcomes) if v is not None}
    assert sorted(v["version"] for v in created) == list(range(1, len(created) + 1))
    s3 = boto3.client("s3", region_name=REGION)
    for version in created:
        artifact = version["artifact"]
        request = {"Bucket": BUCKET, "Key": artifact["key"]}
        if artifact["s3_version_id"]:
            request["VersionId"] = artifact["s3_version_id"]
        stored = s3.get_object(**request)["Body"].read()
        assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]
    # Nothing else was registered: one version item per 201.
    assert [v.version for v in registry.list_versions("breast-cancer")] == sorted(
        (v["version"] for v in created), reverse=True
    )


@pytest.mark.parametrize("versioning", ["Enabled", "Suspended"])
def test_content_addressed_files_are_written_once(registry: ModelRegistry, versioning: str) -> None:
    # The second write of a key finds the object (If-None-Match: *), keeps it and returns its
    # version: concurrent registrations of one signature never race on one key, and a model's
    # versions sharing a signature leave one object version, not one per registration.
    s3 = boto3.client("s3", region_name=REGION)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": versioning})
    key = "models/breast-cancer/" + "ab" * 32 + "/signature.json"

    first = registry.store.put_once(key, b'{"features": []}')
    again = registry.store.put_once(key, b'{"features": []}')

    assert again.version_id == first.version_id
    versions = s3.list_object_versions(Bucket=BUCKET, Prefix=key).get("Versions", [])
    assert [v["VersionId"] for v in versions] == [first.version_id or "null"]


def test_versions_sharing_a_signature_share_one_signature_object(
    registry_api: ModuleType, registry: ModelRegistry
) -> None:
    artifacts, signature = _distinct_artifacts(3)
    for i, data in enumerate(artifacts):
        upload(f"uploads/shared/{i}/model.onnx", data)
        upload(f"uploads/shared/{i}/signature.json", signature.model_dump_json().encode())  # type: ignore[attr-defined]
        request = RegisterVersionRequest(artifact_key=f"uploads/shared/{i}/model.onnx", run_id=f"s{i}")
        registry.register_version("breast-cancer", request)

    signature_keys = {v.artifact.signature_key for v in registry.list_versions("breast-cancer")}
    assert len(signature_keys) == 1
    listed = boto3.client("s3", region_name=REGION).list_object_versions(
        Bucket=BUCKET, Prefix=signature_keys.pop()
    )
    assert len(listed.get("Versions", [])) == 1


def test_registering_with_a_run_of_another_model_is_422_and_writes_nothing(
    registry_api: ModuleType, registry: ModelRegistry
) -> None:
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    upload("uploads/breast-cancer/signature.json", signature.model_dump_json().encode())
    RunTracker(registry.repository.table).start("run-of-wine", "wine", {})
    items_before = boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Count"]
    objects_before = _s3_objects()

    response = call(registry_api, _register_event(run_id="run-of-wine"))

    assert response["statusCode"] == 422
    assert body(response)["message"] == "run 'run-of-wine' trained model 'wine', not 'breast-cancer'"
    assert boto3.client("dynamodb", region_name=REGION).scan(TableName=TABLE)["Count"] == items_before
    assert _s3_objects() == objects_before


def test_a_version_whose_artifact_is_gone_is_503_integrity_without_storage_names(
    inference: ModuleType, production_model: int, registry: ModelRegistry
) -> None:
    artifact = registry.get_version("breast-cancer", production_model).artifact
    s3 = boto3.client("s3", region_name=REGION)
    s3.delete_object(Bucket=BUCKET, Key=artifact.key, VersionId=artifact.s3_version_id)

    response = call(inference, load_event("inference/predict.json"))

    assert response["statusCode"] == 503
    error = body(response)
    assert error["code"] == "integrity_failure"
    assert "missing" in error["message"]
    for secret in (BUCKET, artifact.key, TABLE, "s3://", "amazonaws"):
        assert secret not in response["body"]


def test_an_unknown_upload_key_is_404_naming_the_field_not_the_bucket(registry_api: ModuleType) -> None:
    response = call(registry_api, _register_event(artifact_key="uploads/nothing-here.onnx"))

    assert response["statusCode"] == 404
    assert body(response)["message"] == "no uploaded artifact at artifact_key 'uploads/nothing-here.onnx'"
    assert BUCKET not in response["body"]


def test_after_promotion_and_rollback_a_version_staging_still_names_is_staging(
    registry: ModelRegistry, versions: list[int]
) -> None:
    registry.move_alias("breast-cancer", "production", 3)
    registry.move_alias("breast-cancer", "staging", 4)
    registry.move_alias("breast-cancer", "production", 4)
    registry.rollback("breast-cancer")

    stages = {v.version: v.stage for v in registry.list_versions("breast-cancer")}
    assert registry.get_alias("breast-cancer", "staging").version == 4
    assert stages[4] == "Staging"
    assert stages[3] == "Production"


def test_moving_staging_off_a_production_version_leaves_it_production(
    registry: ModelRegistry, versions: list[int]
) -> None:
    registry.move_alias("breast-cancer", "staging", 4)
    registry.move_alias("breast-cancer", "production", 4)
    registry.move_alias("breast-cancer", "staging", 2)

    stages = {v.version: v.stage for v in registry.list_versions("breast-cancer")}
    assert (stages[4], stages[2]) == ("Production", "Staging")


def test_policy_changes_are_audited_with_their_actor(registry_api: ModuleType, versions: list[int]) -> None:
    response = call(registry_api, load_event("registry/set_policy.json"))
    assert response["statusCode"] == 200

    audit = body(call(registry_api, load_event("registry/get_audit.json")))["audit"]
    change = next(record for record in audit if record["action"] == "set_policy")
    assert change["actor"] == load_event("registry/set_policy.json")["requestContext"]["identity"]["userArn"]
    sent = PromotionPolicy.model_validate_json(load_event("registry/set_policy.json")["body"])
    assert PromotionPolicy.model_validate(change["policy"]) == sent


def test_a_policy_tightened_during_a_promotion_fails_the_promotion(
    registry: ModelRegistry, versions: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The policy is a condition of the promotion's transaction, not only a read before it."""
    from mlops_core.registry import service

    checked = service.promotion_policy.enforce

    def check_then_tighten(*args: object) -> None:
        checked(*args)  # type: ignore[arg-type]
        registry.set_policy(
            "breast-cancer", PromotionPolicy.model_validate({"thresholds": {"roc_auc": {"min": 0.99}}})
        )

    monkeypatch.setattr(service.promotion_policy, "enforce", check_then_tighten)
    with pytest.raises(Conflict, match="changed concurrently"):
        registry.move_alias("breast-cancer", "production", 1)
    assert registry.list_aliases("breast-cancer") == []


def test_reading_a_model_card_writes_nothing(registry_api: ModuleType, versions: list[int]) -> None:
    objects_before = _s3_objects()

    response = call(registry_api, load_event("registry/get_model_card.json"))

    assert response["statusCode"] == 200
    assert _s3_objects() == objects_before


def test_the_card_is_stored_at_registration(registry: ModelRegistry) -> None:
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/card/model.onnx", data)
    registry.register_version(
        "carded", RegisterVersionRequest(artifact_key="uploads/card/model.onnx", signature=signature)
    )
    keys = [key for key, _ in _s3_objects()]
    assert "models/carded/cards/1/model_card.md" in keys
    assert "models/carded/cards/1/model_card.json" in keys


def test_an_artifact_over_the_size_limit_is_422_before_it_is_read(
    registry_api: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_core.registry import registration

    _, data, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    upload("uploads/breast-cancer/signature.json", signature.model_dump_json().encode())
    monkeypatch.setattr(registration, "MAX_ARTIFACT_BYTES", len(data) - 1)
    reads: list[str] = []
    get = registry_api.registry.store.get
    monkeypatch.setattr(registry_api.registry.store, "get", lambda key, *a: reads.append(key) or get(key, *a))

    response = call(registry_api, _register_event())

    assert response["statusCode"] == 422
    assert body(response)["detail"][0]["type"] == "too_large"
    assert reads == []
