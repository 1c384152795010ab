"""`mlops up --demo` in a subprocess for a module of e2e tests: started on free ports, ready
once the banner prints its example call, stopped (terminate, then kill) when the module ends."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import test_local_stack as local_stack_test
from tests.support import ROOT


@contextmanager
def demo_stack(state_dir: Path, *options: str, ready_within: float = 300) -> Iterator[dict[str, Any]]:
    """``{"description": endpoint.json, "state_dir", "process"}`` of a running demo stack."""
    api_port, moto_port = local_stack_test._free_port(), local_stack_test._free_port()
    process = subprocess.Popen(
        [
            *local_stack_test.MLOPS,
            "up",
            "--demo",
            *options,
            "--api-port",
            str(api_port),
            "--moto-port",
            str(moto_port),
        ],
        cwd=ROOT,
        env=local_stack_test._env(state_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    seen = []
    deadline = time.monotonic() + ready_within
    for line in process.stdout:
        seen.append(line)
        if line.startswith("curl -s -X POST"):
            break
        assert time.monotonic() < deadline, "".join(seen)
    else:
        pytest.fail("mlops up --demo exited early:\n" + "".join(seen))
    description = json.loads((state_dir / "endpoint.json").read_text())
    try:
        yield {"description": description, "state_dir": state_dir, "process": process}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
