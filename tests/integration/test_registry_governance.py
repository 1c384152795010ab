"""Promotion under a policy, concurrent moves, the audit trail, rollback and domain events."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import boto3
import pytest

from mlops_core.errors import Conflict
from mlops_core.events import EVENT_SOURCE
from mlops_core.registry.entities import PromotionPolicy, RegisterVersionRequest
from mlops_core.registry.events import REGISTRY_EVENTS
from mlops_core.registry.service import ModelRegistry
from tests.integration.conftest import call
from tests.support import REGION, FakeClock, body, load_event, trained_model, upload

EVENT_TYPES = {cls.detail_type(): cls for cls in REGISTRY_EVENTS}
ENGINEER = "arn:aws:sts::123456789012:assumed-role/MLEngineer/ml-engineer"


@pytest.fixture
def event_queue(aws: None) -> str:
    """An SQS queue receiving every serverless-mlops event from the default bus."""
    sqs = boto3.client("sqs", region_name=REGION)
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events", region_name=REGION)
    events.put_rule(Name="all", EventPattern=json.dumps({"source": [EVENT_SOURCE]}))
    events.put_targets(Rule="all", Targets=[{"Id": "queue", "Arn": arn}])
    return url


def _received(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs", region_name=REGION)
    received = []
    while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        received += [json.loads(m["Body"]) for m in messages]
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)],
        )
    return received


def _stages(registry: ModelRegistry) -> dict[int, str]:
    return {v.version: v.stage for v in registry.list_versions("breast-cancer")}


def test_promotion_labels_stages_and_archives_the_previous_production(
    registry: ModelRegistry, versions: list[int]
) -> None:
    registry.move_alias("breast-cancer", "staging", 2)
    registry.move_alias("breast-cancer", "production", 1)
    registry.move_alias("breast-cancer", "production", 2, reason="better roc_auc")

    assert _stages(registry) == {1: "Archived", 2: "Production", 3: "None", 4: "None"}
    alias = registry.get_alias("breast-cancer", "production")
    assert (alias.version, alias.revision, alias.previous_versions) == (2, 2, [1])


def test_thirty_two_concurrent_promotions_win_one_per_revision(
    registry: ModelRegistry, versions: list[int]
) -> None:
    _, _, signature = trained_model("logistic_regression")
    for i in range(28):
        registry.register_version(
            "breast-cancer",
            RegisterVersionRequest(artifact_key="uploads/lr.onnx", signature=signature, run_id=f"extra-{i}"),
        )
    start = threading.Barrier(32)

    def promote(version: int) -> int | None:
        start.wait()
        try:
            return registry.move_alias(
                "breast-cancer", "production", version, actor=f"engineer-{version}"
            ).revision
        except Conflict:
            return None

    with ThreadPoolExecutor(max_workers=32) as pool:
        outcomes = list(pool.map(promote, range(1, 33)))

    won = sorted(r for r in outcomes if r is not None)
    assert won == list(range(1, len(won) + 1))  # exactly one success per revision
    alias = registry.get_alias("breast-cancer", "production", consistent=True)
    assert alias.revision == len(won)
    stages = _stages(registry)
    assert [v for v, stage in stages.items() if stage == "Production"] == [alias.version]
    promotions = [r for r in registry.list_audit("breast-cancer", limit=1000) if r.action == "promote"]
    assert len(promotions) == len(won)
    assert sorted(r.revision for r in promotions) == won
    winners = {r.to_version for r in promotions}
    assert {v for v, stage in stages.items() if stage == "Archived"} == winners - {alias.version}


def test_a_policy_failure_is_409_naming_every_broken_rule_and_writes_nothing(
    registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    policy = call(registry_api, load_event("registry/set_policy.json"))
    assert policy.get("statusCode") == 200, policy
    before = registry.list_audit("breast-cancer")

    response = call(registry_api, load_event("registry/promote_version.json"))

    assert response["statusCode"] == 409
    result = body(response)
    assert result["message"] == (
        "promotion policy of 'breast-cancer': roc_auc 0.9000 is below the minimum 0.95; "
        "v1 has no 'log_loss' metric recorded"
    )
    assert result["detail"] == [
        {
            "rule": "thresholds.roc_auc.min",
            "value": 0.9,
            "limit": 0.95,
            "message": "roc_auc 0.9000 is below the minimum 0.95",
        },
        {
            "rule": "thresholds.log_loss",
            "value": None,
            "limit": None,
            "message": "v1 has no 'log_loss' metric recorded",
        },
    ]
    assert registry.list_audit("breast-cancer") == before
    assert registry.list_aliases("breast-cancer") == []
    assert set(_stages(registry).values()) == {"None"}


def test_a_policy_can_require_staging_first(registry: ModelRegistry, versions: list[int]) -> None:
    registry.set_policy("breast-cancer", PromotionPolicy(require_staging=True))
    with pytest.raises(Conflict, match="must be in Staging first"):
        registry.move_alias("breast-cancer", "production", 4)
    registry.move_alias("breast-cancer", "staging", 4)
    assert registry.move_alias("breast-cancer", "production", 4).version == 4
    assert _stages(registry)[4] == "Production"


def test_promote_route_records_who_when_from_to_and_why(
    registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    first = call(registry_api, load_event("registry/promote_version.json"))
    second = call(
        registry_api,
        load_event(
            "registry/promote_version.json",
            path_params={"version": "3"},
            body={"expected_revision": 1, "reason": "retrained on November data"},
        ),
    )
    assert first["statusCode"] == second["statusCode"] == 200

    trail = body(call(registry_api, load_event("registry/get_audit.json")))["audit"]

    assert [(r["action"], r["from_version"], r["to_version"]) for r in trail[:2]] == [
        ("promote", 1, 3),
        ("promote", None, 1),
    ]
    assert trail[0]["actor"] == ENGINEER
    assert trail[0]["reason"] == "retrained on November data"
    assert trail[0]["revision"] == 2
    assert [r["action"] for r in trail].count("register") == 4


def test_a_stale_expected_revision_is_409_with_the_current_state(
    registry_api: ModuleType, versions: list[int]
) -> None:
    call(registry_api, load_event("registry/promote_version.json"))
    stale = call(
        registry_api,
        load_event(
            "registry/promote_version.json", path_params={"version": "2"}, body={"expected_revision": 0}
        ),
    )
    assert stale["statusCode"] == 409
    assert body(stale)["current"]["version"] == 1
    assert body(stale)["current"]["revision"] == 1


def test_rollback_walks_back_through_previous_production_versions(
    registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    for version in (1, 2, 3):
        registry.move_alias("breast-cancer", "production", version)

    first = body(call(registry_api, load_event("registry/rollback.json")))
    second = body(call(registry_api, load_event("registry/rollback.json")))
    third = call(registry_api, load_event("registry/rollback.json"))

    assert (first["version"], first["previous_versions"]) == (2, [1])
    assert (second["version"], second["previous_versions"]) == (1, [])
    assert third["statusCode"] == 409
    assert (
        body(third)["message"]
        == "alias 'production' of model 'breast-cancer' has no previous version to roll back to"
    )
    assert _stages(registry) == {1: "Production", 2: "Archived", 3: "Archived", 4: "None"}
    rollbacks = [r for r in registry.list_audit("breast-cancer") if r.action == "rollback"]
    assert [(r.from_version, r.to_version) for r in rollbacks] == [(2, 1), (3, 2)]


def test_rollback_reaches_a_warm_inference_container_within_the_alias_ttl(
    inference: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    clock = FakeClock()
    inference.predictor.clock = clock
    registry.move_alias("breast-cancer", "production", 3)
    registry.move_alias("breast-cancer", "production", 4)
    assert body(call(inference, load_event("inference/predict.json")))["model_version"] == 4

    registry.rollback("breast-cancer")
    clock.advance(inference.settings.alias_cache_ttl_seconds - 0.5)
    assert body(call(inference, load_event("inference/predict.json")))["model_version"] == 4
    clock.advance(1)
    assert body(call(inference, load_event("inference/predict.json")))["model_version"] == 3


def test_registry_events_match_their_schemas(
    registry_api: ModuleType, event_queue: str, versions: list[int]
) -> None:
    responses = [
        call(registry_api, load_event("registry/promote_version.json")),
        call(
            registry_api,
            load_event(
                "registry/promote_version.json", path_params={"version": "2"}, body={"expected_revision": 1}
            ),
        ),
        call(registry_api, load_event("registry/rollback.json")),
    ]
    assert [r["statusCode"] for r in responses] == [200, 200, 200]

    received = _received(event_queue)
    validated = [EVENT_TYPES[e["detail-type"]].model_validate(e["detail"]) for e in received]

    assert all(e["source"] == EVENT_SOURCE for e in received)
    kinds = [type(e).__name__ for e in validated]
    assert kinds == ["ModelVersionRegistered"] * 4 + ["ModelPromoted", "ModelPromoted", "ModelRolledBack"]
    rolled_back = validated[-1]
    assert (rolled_back.from_version, rolled_back.to_version) == (2, 1)  # type: ignore[attr-defined]


def test_registration_is_announced(registry_api: ModuleType, event_queue: str) -> None:
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    upload("uploads/breast-cancer/signature.json", signature.model_dump_json().encode())
    assert call(registry_api, load_event("registry/register_version.json"))["statusCode"] == 201

    (event,) = _received(event_queue)
    registered = EVENT_TYPES[event["detail-type"]].model_validate(event["detail"])
    assert registered.model_dump() | {"artifact_sha256": None} == {
        "model_name": "breast-cancer",
        "version": 1,
        "run_id": "run-2026-11-27-001",
        "artifact_sha256": None,
        "metrics": {"roc_auc": 0.991, "accuracy": 0.956},
        "actor": ENGINEER,
    }


def test_tags_and_descriptions_can_be_edited(
    registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    model = body(call(registry_api, load_event("registry/update_model.json")))
    version = body(call(registry_api, load_event("registry/update_version.json")))
    missing = call(registry_api, load_event("registry/update_version.json", path_params={"version": "99"}))

    assert model["tags"]["intended_use"].startswith("Decision support")
    assert version["tags"] == {"reviewed_by": "ml-lead"}
    assert missing["statusCode"] == 404


def test_unknown_version_promotion_is_404(registry_api: ModuleType, versions: list[int]) -> None:
    response = call(registry_api, load_event("registry/promote_version.json", path_params={"version": "40"}))
    assert response["statusCode"] == 404
    assert body(response)["message"] == "model 'breast-cancer' has no version 40"


def test_model_card_is_served_and_stored_beside_the_artifact(
    registry_api: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    call(registry_api, load_event("registry/update_model.json"))
    registry.set_policy(
        "breast-cancer", PromotionPolicy.model_validate({"thresholds": {"roc_auc": {"min": 0.85}}})
    )
    registry.move_alias("breast-cancer", "production", 1)

    markdown = call(registry_api, load_event("registry/get_model_card.json"))
    as_json = call(registry_api, load_event("registry/get_model_card.json", query={"format": "json"}))

    assert markdown["statusCode"] == 200
    text = markdown["body"]
    sha256 = registry.get_version("breast-cancer", 1).artifact.sha256
    assert text.startswith("# Model card: breast-cancer v1")
    assert sha256 in text
    assert "Decision support for radiologists; not a diagnosis." in text
    card = body(as_json)
    assert card["aliases"] == ["production"]
    assert card["gate"] == [
        {
            "metric": "roc_auc",
            "value": 0.9,
            "threshold": 0.85,
            "direction": "min",
            "passed": True,
            "source": "policy",
        }
    ]
    s3 = boto3.client("s3", region_name=REGION)
    stored_md = s3.get_object(Bucket="mlops-artifacts-test", Key="models/breast-cancer/cards/1/model_card.md")
    stored_json = s3.get_object(
        Bucket="mlops-artifacts-test", Key="models/breast-cancer/cards/1/model_card.json"
    )
    assert stored_md["Body"].read().decode().startswith("# Model card: breast-cancer v1")
    assert json.loads(stored_json["Body"].read())["artifact"]["sha256"] == sha256


def test_model_card_of_an_unknown_version_is_404(registry_api: ModuleType, versions: list[int]) -> None:
    response = call(registry_api, load_event("registry/get_model_card.json", path_params={"version": "9"}))
    assert response["statusCode"] == 404


def test_editing_an_unknown_model_is_404_and_writes_nothing(
    registry_api: ModuleType, versions: list[int]
) -> None:
    before = boto3.client("dynamodb", region_name=REGION).scan(TableName="mlops-metadata-test")["Items"]
    response = call(
        registry_api, load_event("registry/update_model.json", path_params={"name": "no-such-model"})
    )
    after = boto3.client("dynamodb", region_name=REGION).scan(TableName="mlops-metadata-test")["Items"]
    assert response["statusCode"] == 404
    assert body(response)["message"] == "model 'no-such-model' not found"
    assert after == before
