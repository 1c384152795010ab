"""The inference function's cold start imports no training libraries, and no X-Ray SDK
when tracing is off: each would add a fixed cost to every cold start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
    # The SnapStart hooks cost a normal cold start nothing: their library is not even imported.
    assert "snapshot_restore_py" not in modules


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


SNAPSTART_PROBE = """
import json
import functions.inference.handler
import snapshot_restore_py as runtime
print(json.dumps([[f.__qualname__ for f in runtime.before], [f.__qualname__ for f in runtime.after]]))
"""
FAKE_RUNTIME = """
before, after = [], []
def register_before_snapshot(func, *args, **kwargs):
    before.append(func)
    return func
def register_after_restore(func, *args, **kwargs):
    after.append(func)
    return func
"""


def test_under_snapstart_the_handler_registers_its_hooks_at_import(tmp_path: Path) -> None:
    """As Lambda's runtime would see them: ``snapshot_restore_py`` (a stand-in here) is given
    the hooks while the handler module is imported, before-snapshot ones run last-first."""
    (tmp_path / "snapshot_restore_py.py").write_text(FAKE_RUNTIME)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("POWERTOOLS_TRACE")}
    result = subprocess.run(
        [sys.executable, "-c", SNAPSTART_PROBE],
        cwd=ROOT,
        env=environment
        | {
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
            "PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'core'}:{tmp_path}",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    before, after = json.loads(result.stdout.strip().splitlines()[-1])
    assert before == ["_before_snapshot", "_warm_before_snapshot"]
    assert after == ["refresh_after_restore", "_refresh_after_restore"]


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
