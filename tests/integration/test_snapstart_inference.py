"""The inference handler's SnapStart hooks, run as Lambda would run them, against moto.

Before the snapshot the production version of each model in SNAPSTART_MODELS is loaded;
after a restore it is still loaded, while the alias is read again (it may have moved
since the snapshot was taken, hours or days earlier).
"""

from __future__ import annotations

from types import ModuleType
from unittest import mock

import pytest

from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from tests.integration.conftest import call
from tests.support import body, load_event, trained_model, upload


@pytest.fixture
def snapshot(inference: ModuleType, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("SNAPSTART_MODELS", "breast-cancer, not-registered-yet")
    monkeypatch.setattr(inference, "_snapshot_clock", [])
    inference._warm_before_snapshot()
    return inference


def test_a_restored_environment_predicts_with_the_preloaded_model(
    production_model: int, snapshot: ModuleType
) -> None:
    assert snapshot.predictor.loaded_count == 1  # loaded before the snapshot, not by a request
    snapshot._refresh_after_restore()
    with mock.patch.object(snapshot.predictor.store, "get", wraps=snapshot.predictor.store.get) as reads:
        response = call(snapshot, load_event("inference/predict.json"))
    assert response["statusCode"] == 200, response["body"]
    assert body(response)["model_version"] == production_model
    reads.assert_not_called()  # the artifact came from the snapshot


def test_a_promotion_after_the_snapshot_is_served_at_once_after_a_restore(
    production_model: int, snapshot: ModuleType, registry: ModelRegistry
) -> None:
    _, data, signature = trained_model("random_forest")
    upload("uploads/breast-cancer/v2.onnx", data)
    version = registry.register_version(
        "breast-cancer",
        RegisterVersionRequest(artifact_key="uploads/breast-cancer/v2.onnx", signature=signature),
    )
    registry.set_alias("breast-cancer", "production", version.version)

    snapshot._refresh_after_restore()  # within the alias TTL of the snapshot, by the monotonic clock
    response = call(snapshot, load_event("inference/predict.json"))

    assert body(response)["model_version"] == version.version != production_model


def test_a_model_that_cannot_be_preloaded_does_not_fail_the_snapshot(
    inference: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNAPSTART_MODELS", "no-such-model")
    monkeypatch.setattr(inference, "_snapshot_clock", [])
    inference._warm_before_snapshot()  # logs, does not raise
    assert inference.predictor.loaded_count == 0
