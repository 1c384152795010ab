"""Predicting by entity id on the local stack, over HTTP: `mlops up --demo` (the sample model
trained and promoted, the view's source uploaded), the view applied and materialized with the
CLI, the demo's artifact registered again with the view in its signature and promoted, then
predictions by entity id compared with predictions of the same values sent directly; a missing
entity under each policy; a view change that would break the deployed version refused."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.sample_data import FEATURE_VIEW, breast_cancer_features
from tests.e2e import demo_stack
from tests.e2e import test_local_stack as local_stack_test

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"

# The module's own stack, started as `mlops up --demo` ends (a copy of the run's trained demo).
state_dir = demo_stack.state_dir
local_stack = demo_stack.local_stack


def _rows() -> list[list[float]]:
    lines = breast_cancer_features(0).decode().splitlines()[1:]
    return [[float(v) for v in line.split(",")[3:]] for line in lines]


def test_the_demo_model_is_served_by_entity_id(local_stack: dict[str, Any], state_dir: Path) -> None:
    def mlops(*args: str) -> Any:
        done = local_stack_test._mlops(state_dir, *args)
        assert done.returncode == 0, done.stdout + done.stderr
        return json.loads(done.stdout)

    def predict(request: dict[str, Any]) -> requests.Response:
        return requests.post(
            f"{local_stack['api']}/models/{MODEL}/predict?alias=by-entity",
            json=request,
            headers={"x-api-key": local_stack["key"]},
            timeout=60,
        )

    mlops("features", "apply", "features/breast_cancer.toml")
    run = mlops("features", "materialize", FEATURE_VIEW, "--wait", "--timeout", "120")
    assert run["status"] == "succeeded" and run["entities"] == 569, run

    # The demo's production artifact again, reading its ten inputs from the view, under a new
    # alias (production is cached by warm containers for up to 10 s after a move).
    registered = mlops("models", "register", MODEL, "--feature-view", FEATURE_VIEW, "--alias", "by-entity")
    (view,) = registered["signature"]["feature_views"]
    assert (view["view"], view["entity"], view["entity_type"], view["version"]) == (
        FEATURE_VIEW,
        "patient_id",
        "int64",
        1,
    )

    by_entity = predict({"entity_ids": [{FEATURE_VIEW: 1}, {"patient_id": 2}, {"patient_id": 300}]})
    assert by_entity.status_code == 200, by_entity.text
    direct = predict({"instances": [_rows()[0], _rows()[1], _rows()[299]]})
    assert direct.status_code == 200, direct.text
    assert by_entity.json()["model_version"] == registered["version"] == direct.json()["model_version"]
    assert by_entity.json()["probabilities"] == direct.json()["probabilities"]
    assert by_entity.json()["predictions"] == direct.json()["predictions"]
    assert [row[0]["served"] for row in by_entity.json()["entities"]] == ["online"] * 3

    # The CLI says the same.
    cli = mlops("predict", MODEL, "--alias", "by-entity", "--entity", "patient_id=2")
    assert cli["probabilities"] == predict({"instances": [_rows()[1]]}).json()["probabilities"]

    # A missing entity: refused by default (422 naming it), defaulted once the policy says so.
    missing = predict({"entity_ids": [{"patient_id": 99999}]})
    assert missing.status_code == 422 and "patient_id 99999" in missing.json()["message"], missing.text
    defaults = [
        f"--default={feature['name']}={value}"
        for feature, value in zip(view["features"], _rows()[0], strict=True)
    ]
    mlops("models", "feature-policy", "set", MODEL, "--missing", "default", *defaults)
    shown = mlops("models", "feature-policy", "show", MODEL)
    assert shown["missing"] == "default" and shown["defaults"]["mean_radius"] == _rows()[0][0]
    # A warm container reads the policy again within the alias cache's TTL (10 s): poll for it.
    deadline = time.monotonic() + 60
    served = predict({"entity_ids": [{"patient_id": 99999}]})
    while served.status_code == 422 and time.monotonic() < deadline:
        time.sleep(1)
        served = predict({"entity_ids": [{"patient_id": 99999}]})
    assert served.status_code == 200, served.text
    assert served.json()["entities"][0][0]["served"] == "defaulted"
    # (the same batch size: onnxruntime may sum a tree ensemble in another order for another size)
    assert served.json()["probabilities"] == predict({"instances": [_rows()[0]]}).json()["probabilities"]

    # A view change that removes a feature the deployed version reads is refused, naming it.
    toml = Path(state_dir) / "without_radius.toml"
    source = (local_stack_test.ROOT / "features" / "breast_cancer.toml").read_text()
    toml.write_text(source.replace('    { name = "mean_radius", type = "float64" },\n', ""))
    refused = local_stack_test._mlops(state_dir, "features", "apply", str(toml))
    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert f"{MODEL} v{registered['version']}" in refused.stderr and "mean_radius (removed)" in refused.stderr
