"""Choosing what serves a prediction: an alias other than production, or a pinned
version; and the last good version's session stays within the cache bound."""

from __future__ import annotations

from types import ModuleType

from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from tests.integration.conftest import call
from tests.support import FakeClock, body, corrupt_recorded_checksum, load_event, trained_model, upload


def _predict(inference: ModuleType, **query: str) -> dict:
    return call(inference, load_event("inference/predict.json", query=query or None))


def test_predict_serves_the_alias_or_the_version_asked_for(
    inference: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    registry.move_alias("breast-cancer", "production", 1)
    registry.move_alias("breast-cancer", "staging", 4)

    assert body(_predict(inference))["model_version"] == 1
    staged = body(_predict(inference, alias="staging"))
    assert (staged["model_version"], staged["alias"]) == (4, "staging")
    pinned = body(_predict(inference, version="2"))
    assert (pinned["model_version"], pinned["alias"]) == (2, None)


def test_alias_and_version_together_or_unknown_are_precise_errors(
    inference: ModuleType, registry: ModelRegistry, versions: list[int]
) -> None:
    registry.move_alias("breast-cancer", "production", 1)

    both = _predict(inference, alias="staging", version="2")
    assert both["statusCode"] == 422
    assert body(both)["message"] == "give alias or version, not both"
    assert _predict(inference, alias="canary")["statusCode"] == 404
    missing = _predict(inference, version="99")
    assert (missing["statusCode"], body(missing)["message"]) == (
        404,
        "model 'breast-cancer' has no version 99",
    )
    assert _predict(inference, version="0")["statusCode"] == 422


def test_the_fallback_session_is_bounded_by_the_cache(inference: ModuleType, registry: ModelRegistry) -> None:
    """The last good version is kept by number, not by session: once evicted it is read
    and verified again, so refused versions never pin sessions past the LRU's bound."""
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/m/model.onnx", data)
    for name in ("a", "b", "c"):
        version = registry.register_version(
            name, RegisterVersionRequest(artifact_key="uploads/m/model.onnx", signature=signature)
        )
        registry.move_alias(name, "production", version.version)
    predictor = inference.predictor
    predictor.clock = clock = FakeClock()
    size = predictor.cache_size
    predictor.cache_size = 1
    try:
        assert (
            call(inference, load_event("inference/predict.json", path_params={"name": "a"}))["statusCode"]
            == 200
        )
        second = registry.register_version(
            "a", RegisterVersionRequest(artifact_key="uploads/m/model.onnx", signature=signature, run_id="r2")
        )
        corrupt_recorded_checksum("a", second.version)
        registry.move_alias("a", "production", second.version)
        for other in ("b", "c"):  # evicts a's session
            call(inference, load_event("inference/predict.json", path_params={"name": other}))
        clock.advance(predictor.alias_ttl + 1)  # a's alias is read again: the corrupted version
        response = call(inference, load_event("inference/predict.json", path_params={"name": "a"}))
        assert response["statusCode"] == 200
        assert body(response)["model_version"] == 1  # the last good version, reloaded
        assert predictor.loaded_count <= 1
    finally:
        predictor.cache_size = size
