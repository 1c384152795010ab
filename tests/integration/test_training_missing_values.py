"""Datasets with missing feature values: every family trains on them, with no candidates named
a run trains the task's defaults, the exported model takes a missing value where scikit-learn
did (same predictions), and the prediction API accepts null exactly for those features.

Found by trying a user's CSV (a regression of prices with blank ages): `mlops datasets upload`
accepted it, then training failed on ridge's "Input X contains NaN" and the CLI's default
candidate was a classifier."""

from __future__ import annotations

import io
from types import ModuleType
from typing import Any

import numpy as np
import onnxruntime
import pytest

from infra.cli.datasets import prepare
from mlops_core.data.schema import load_csv
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.estimators import DEFAULT_CANDIDATES, FAMILIES, build
from mlops_core.training.export import export_sklearn
from mlops_core.training.steps import evaluate, register_model, select_best, train_candidate, validate_data
from mlops_core.training.tracking import RunTracker
from tests.integration.conftest import call
from tests.support import BUCKET, body, load_event, upload

FEATURES = ["size", "age", "rooms"]


def _csv(task: str, rows: int = 400, seed: int = 3) -> bytes:
    """Three features, 'age' blank in about 15 % of the rows, 'rooms' always present."""
    rng = np.random.default_rng(seed)
    out = io.StringIO()
    out.write(",".join([*FEATURES, "target"]) + "\n")
    for _ in range(rows):
        size, age, rooms = rng.uniform(30, 250), rng.uniform(0, 100), int(rng.integers(1, 8))
        value = size * 3 - age + 10 * rooms + rng.normal(0, 20)
        target = f"{value:.2f}" if task == "regression" else str(int(value > 400))
        shown_age = "" if rng.random() < 0.15 else f"{age:.1f}"
        out.write(f"{size:.1f},{shown_age},{rooms},{target}\n")
    return out.getvalue().encode()


@pytest.fixture
def services(aws: None) -> tuple[ArtifactStore, ModelRegistry, RunTracker]:
    from functions.registry import handler

    return handler.registry.store, handler.registry, RunTracker(handler.registry.repository.table)


def _upload(task: str) -> str:
    prepared = prepare(_csv(task), name=f"houses-{task}", version="v1", target="target")
    for key, data in prepared.files.items():
        upload(key, data)
    assert [c.name for c in prepared.schema.columns if c.nullable] == ["age"]
    return prepared.dataset_key


def _train(services: tuple[ArtifactStore, ModelRegistry, RunTracker], model: str, dataset_key: str) -> dict:
    store, registry, tracker = services
    request: dict[str, Any] = {"run_id": f"run-{model}", "model_name": model, "dataset_key": dataset_key}
    state = validate_data(request, store, tracker)
    state["results"] = [train_candidate(c, store, tracker) for c in state["candidates"]]
    state = evaluate(select_best(state, tracker), store, registry, tracker)
    assert state["evaluation"]["passed"], state["evaluation"]
    return register_model(state, registry, tracker)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_a_run_without_candidates_trains_the_tasks_defaults_on_missing_values(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker], task: str
) -> None:
    _, registry, tracker = services

    result = _train(services, f"houses-{task}", _upload(task))

    run = tracker.get_with_candidates(f"run-houses-{task}")
    assert [c["family"] for c in run["candidates"]] == list(DEFAULT_CANDIDATES[task])
    assert all(c["validation_metrics"] for c in run["candidates"])
    signature = registry.get_version(f"houses-{task}", result["version"]).signature
    assert [(f.name, f.nullable) for f in signature.features] == [
        ("size", False),
        ("age", True),
        ("rooms", False),
    ]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_exports_missing_values_as_scikit_learn_predicts_them(family: str) -> None:
    task = FAMILIES[family][1]
    prepared = prepare(_csv(task), name="houses", version="v1", target="target")
    table = load_csv(prepared.data, prepared.schema)
    x, y = table.matrix(FEATURES), table.columns["target"]
    if task == "classification":
        y = y.astype(np.int64)
    assert np.isnan(x).any()
    estimator = build(family, FAMILIES[family][0]().model_dump(), seed=1, missing_values=True).fit(x, y)

    onnx_bytes, signature = export_sklearn(estimator, FEATURES, nullable=[False, True, False])
    session = onnxruntime.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": x.astype(np.float32)})

    if task == "classification":
        # Labels agree except where float32 input moves a probability across 0.5 (none here).
        assert (outputs[0] == estimator.predict(x)).all()
        np.testing.assert_allclose(outputs[1], estimator.predict_proba(x), atol=1e-4)
    else:
        np.testing.assert_allclose(outputs[0].ravel(), estimator.predict(x), rtol=1e-4, atol=1e-2)
    assert [f.nullable for f in signature.features] == [False, True, False]


def test_null_is_accepted_for_a_nullable_feature_and_refused_for_the_others(
    services: tuple[ArtifactStore, ModelRegistry, RunTracker], inference: ModuleType
) -> None:
    _, registry, _ = services
    result = _train(services, "houses-classification", _upload("classification"))
    registry.set_alias("houses-classification", "production", result["version"])

    def predict(instances: list[Any]) -> dict[str, Any]:
        event = load_event(
            "inference/predict.json",
            body={"instances": instances},
            path_params={"name": "houses-classification"},
        )
        return call(inference, event)

    answered = predict([[120.0, None, 3], [120.0, 40.0, 3]])
    assert answered["statusCode"] == 200, answered["body"]
    assert len(body(answered)["predictions"]) == 2
    by_name = predict([{"size": 120.0, "age": None, "rooms": 3}])
    assert by_name["statusCode"] == 200, by_name["body"]
    assert body(by_name)["predictions"] == body(answered)["predictions"][:1]

    refused = predict([{"size": None, "age": 40.0, "rooms": 3}])
    assert refused["statusCode"] == 422
    assert body(refused)["detail"][0]["loc"] == ["body", "instances", 0, "size"]
    assert body(refused)["detail"][0]["type"] == "missing_value"
    assert BUCKET not in answered["body"] + refused["body"]
