"""The SageMaker job's entry point runs under the framework container's own, older Python
before anything is installed: standard library only, Python 3.8 syntax."""

from __future__ import annotations

import ast
import sys

from infra.sagemaker import launcher
from tests.support import ROOT

SOURCE = (ROOT / "infra" / "sagemaker" / "launcher.py").read_text()


def test_the_launcher_imports_only_the_standard_library_and_parses_as_python_3_8() -> None:
    tree = ast.parse(SOURCE, feature_version=(3, 8))
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_hyperparameters_are_read_as_sagemaker_hands_them_over() -> None:
    values = {"run_id": '"run-1"', "candidate_id": "c000"}  # JSON-encoded by the SDK, or not
    assert launcher._hyperparameter(values, "run_id") == "run-1"
    assert launcher._hyperparameter(values, "candidate_id") == "c000"
    assert launcher.PINS != "requirements.txt"
