"""The in-process Lambda runtime lays a function's environment over the process's for the
handler's import, and never deletes a variable (another thread may be iterating them)."""

from __future__ import annotations

import os

import pytest

from infra.local.lambda_runtime import _environment


def test_replaced_values_come_back_and_added_variables_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_TEST_EXISTING", "process")
    monkeypatch.delenv("MLOPS_TEST_ADDED", raising=False)
    with _environment({"MLOPS_TEST_EXISTING": "function", "MLOPS_TEST_ADDED": "function"}):
        assert os.environ["MLOPS_TEST_EXISTING"] == "function"
        assert os.environ["MLOPS_TEST_ADDED"] == "function"
    assert os.environ["MLOPS_TEST_EXISTING"] == "process"
    assert os.environ["MLOPS_TEST_ADDED"] == "function"  # left set: deleting races with readers
    monkeypatch.delenv("MLOPS_TEST_ADDED")
