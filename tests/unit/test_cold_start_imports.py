"""The inference function's cold start imports no training libraries, and no X-Ray SDK
when tracing is off: each would add a fixed cost to every cold start."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mlops_core.config.observability import _NoTracer, make_tracer
from tests.support import ROOT

PROBE = """
import json, sys
import functions.inference.handler
print(json.dumps(sorted(set(sys.modules) | {m.split(".")[0] for m in sys.modules})))
"""


def _modules_after_import(**env: str) -> set[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_TRACE")} | env
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=environment | {"PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'core'}"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_inference_handler_imports_neither_scikit_learn_nor_scipy_nor_xray_when_tracing_is_off() -> None:
    modules = _modules_after_import(POWERTOOLS_TRACE_DISABLED="true")
    assert {"onnxruntime", "numpy", "aws_lambda_powertools", "pydantic"} <= modules
    assert not modules & {"sklearn", "scipy", "skl2onnx", "onnx", "aws_xray_sdk", "joblib"}
    # Its reads are signed by mlops_core.storage.signed_reads; boto3 loads only if a write needs it.
    # (Powertools imports the bare ``botocore`` package to read its version: 1 ms.)
    assert not modules & {"boto3", "botocore.session", "botocore.client", "pydantic_settings"}
    # It reads the registry (lookup) and never loads its write side or the training package.
    assert "mlops_core.registry.lookup" in modules
    assert not modules & {
        "mlops_core.registry.service",
        "mlops_core.registry.registration",
        "mlops_core.registry.model_card",
        "mlops_core.training",
    }


def test_with_tracing_on_as_in_lambda_no_botocore_client_code_loads(tmp_path: object) -> None:
    """X-Ray patches only http.client here (the signed reads); outside Lambda its sampler
    would import botocore, inside Lambda it does not."""
    modules = _modules_after_import(
        POWERTOOLS_TRACE_DISABLED="false",
        LAMBDA_TASK_ROOT=str(tmp_path),
        _X_AMZN_TRACE_ID="Root=1-6747a2b0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
    )
    assert {"aws_xray_sdk", "aws_xray_sdk.ext.httplib"} <= modules
    assert not modules & {
        "boto3",
        "botocore.session",
        "botocore.client",
        "aws_xray_sdk.ext.botocore",
        "requests",
    }


def test_no_tracer_decorators_return_the_function_itself() -> None:
    tracer = _NoTracer()

    def handler(event: dict, context: object) -> str:
        return "ok"

    assert tracer.capture_lambda_handler(handler) is handler
    assert tracer.capture_method(handler) is handler
    assert tracer.capture_method()(handler) is handler


def test_make_tracer_follows_the_powertools_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    from aws_lambda_powertools import Tracer

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    assert isinstance(make_tracer(), _NoTracer)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
    assert isinstance(make_tracer(), Tracer)
