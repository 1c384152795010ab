"""Handlers fed the sample events, against moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import ModuleType

import boto3
import pytest

from infra.local.sample_data import breast_cancer
from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from tests.support import REGION, STATE_MACHINE_ARN, FakeLambdaContext, trained_model, upload


@pytest.fixture
def inference(aws: None) -> Iterator[ModuleType]:
    from functions.inference import handler

    handler.predictor.clear()
    clock = handler.predictor.clock
    yield handler
    handler.predictor.clock = clock
    handler.predictor.clear()


@pytest.fixture
def registry_api(aws: None) -> ModuleType:
    from functions.registry import handler

    return handler


@pytest.fixture
def training_api(aws: None) -> Iterator[ModuleType]:
    """The training API with a stand-in state machine (one Pass state) under its ARN, and
    the sample dataset in the bucket (``POST /training`` reads its schema)."""
    sfn = boto3.client("stepfunctions", region_name=REGION)
    definition = {"StartAt": "Accepted", "States": {"Accepted": {"Type": "Pass", "End": True}}}
    created = sfn.create_state_machine(
        name=STATE_MACHINE_ARN.rsplit(":", 1)[1],
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )
    assert created["stateMachineArn"] == STATE_MACHINE_ARN
    for key, data in breast_cancer().files.items():
        upload(key, data)
    from functions.training import api

    yield api


@pytest.fixture
def registry(aws: None) -> ModelRegistry:
    from functions.registry import handler

    return handler.registry


@pytest.fixture
def production_model(registry: ModelRegistry) -> int:
    """breast-cancer v1 registered from an upload and aliased as production."""
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    version = registry.register_version(
        "breast-cancer",
        RegisterVersionRequest(artifact_key="uploads/breast-cancer/model.onnx", signature=signature),
    )
    registry.set_alias("breast-cancer", "production", version.version)
    return version.version


@pytest.fixture
def versions(registry: ModelRegistry) -> list[int]:
    """breast-cancer v1..v4 (v1-v3 logistic regression, v4 random forest), metrics roc_auc 0.90..0.96."""
    _, data, signature = trained_model("logistic_regression")
    _, rf_data, rf_signature = trained_model("random_forest")
    upload("uploads/lr.onnx", data)
    upload("uploads/rf.onnx", rf_data)
    registered = []
    for i, (key, sig) in enumerate([("lr", signature)] * 3 + [("rf", rf_signature)]):
        request = RegisterVersionRequest(
            artifact_key=f"uploads/{key}.onnx",
            signature=sig,
            metrics={"roc_auc": 0.90 + 0.02 * i},
            run_id=f"run-{i}",
        )
        registered.append(registry.register_version("breast-cancer", request).version)
    return registered


def call(handler: ModuleType, event: dict) -> dict:
    return handler.lambda_handler(event, FakeLambdaContext())
