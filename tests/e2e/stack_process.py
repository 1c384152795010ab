"""How an e2e module gets its local stack: `mlops up ...` in a subprocess, on free ports.

    @pytest.fixture(scope="module")
    def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
        with running_stack(stack_state_dir(tmp_path_factory, "my-module"), "--demo") as running:
            yield running

``stack_state_dir`` makes the module's ``MLOPS_STATE_DIR`` and puts the run's synthesized
template in it: the CDK app is synthesized once per test run (the first module to ask does
it, under a lock that every xdist worker shares), not once per stack (~20 s of CPU each;
`mlops up` keeps the template in its state directory under a digest of its inputs, and
synthesizes again if that digest differs). ``running_stack`` waits for the stack to be
ready (the demo's example call with ``--demo``, "serving" without), and stops it when the
block ends (SIGTERM, which `mlops up` handles as a clean stop, then SIGKILL).

The stack is the module's own: its state (models, aliases, routing, runs) is what the
module's tests made it, and a module may stop it. Modules that only need the demo's stack
as it starts (breast-cancer v1 in production) use test_local_stack.py's ``local_stack`` and
``state_dir`` fixtures, which are built on these two functions.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.support import ROOT

MLOPS = [sys.executable, "-m", "infra.cli.main"]
#: The last line `mlops up --demo` prints before it serves (the first curl example)...
DEMO_READY = "curl -s -X POST"
#: ...and the line `mlops up` logs once it serves.
READY = "serving; Ctrl-C stops the stack"
#: The test process's settings (tests/conftest.py) that must not reach the CLI...
_NOT_FOR_THE_CLI = ("AWS_", "ARTIFACTS_", "METADATA_")
#: ...nor the stack's functions.
_NOT_FOR_THE_STACK = (*_NOT_FOR_THE_CLI, "FEATURES_")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_env(state_dir: Path) -> dict[str, str]:
    """The environment of an `mlops` command against the stack of ``state_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_FOR_THE_CLI)}
    return env | {"MLOPS_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}


def stack_env(state_dir: Path) -> dict[str, str]:
    """The environment of `mlops up` for a stack in ``state_dir`` (wide lines: its log is read)."""
    env = {k: v for k, v in cli_env(state_dir).items() if not k.startswith(_NOT_FOR_THE_STACK)}
    return env | {"COLUMNS": "200"}


def _run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory every xdist worker of this run shares (the run's base temp directory)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once_per_run(directory: Path, made: Callable[[], bool], command: list[str], env: dict[str, str]) -> None:
    """Run ``command`` unless ``made()``, holding the lock of ``directory`` that every worker shares."""
    directory.mkdir(exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # whichever worker comes first makes it; the others wait
        if not made():
            done = subprocess.run(
                command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
            )
            assert done.returncode == 0 and made(), done.stdout[-4000:] + done.stderr[-4000:]


def synthesized_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's ``template-<digest>.json``, synthesized by `mlops up`'s own code the first time."""
    cache = _run_root(tmp_path_factory) / "local-stack-template"
    command = [sys.executable, "-c", "from infra.local.stack import synthesize_template as s; s()"]
    _once_per_run(cache, lambda: any(cache.glob("template-*.json")), command, stack_env(cache))
    (template,) = cache.glob("template-*.json")
    return template


def stack_state_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """A new ``MLOPS_STATE_DIR`` for one stack, holding the run's synthesized template."""
    state_dir = tmp_path_factory.mktemp(name)
    template = synthesized_template(tmp_path_factory)
    shutil.copyfile(template, state_dir / template.name)
    return state_dir


def trained_demo_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's trained demo, as `mlops up --state` keeps it: `mlops up --demo` trains, promotes
    and serves breast-cancer v1 once per test run, then stops, saving its state."""
    root = _run_root(tmp_path_factory) / "local-stack-demo"
    state = root / "state"
    command = [
        *MLOPS, "up", "--demo", "--state", str(state), "--exit-after-demo",
        "--api-port", str(free_port()), "--moto-port", str(free_port()),
    ]  # fmt: skip
    runtime = stack_state_dir(tmp_path_factory, "demo-training")
    _once_per_run(root, (state / "snapshot.json").exists, command, stack_env(runtime))
    return state


@contextmanager
def restored_demo_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, *options: str, ready_within: float = 300
) -> Iterator[dict[str, Any]]:
    """A stack of the module's own that starts where `mlops up --demo` ends (breast-cancer v1
    trained by the demo's run, promoted to production; the sample dataset and feature source
    uploaded), restored from a copy of ``trained_demo_state``: for modules that need a trained
    model, not the demo's training."""
    state_dir = stack_state_dir(tmp_path_factory, name)
    shutil.copytree(trained_demo_state(tmp_path_factory), state_dir / "state")
    options = ("--state", str(state_dir / "state"), *options)
    with running_stack(state_dir, *options, ready_within=ready_within) as stack:
        yield stack


@contextmanager
def running_stack(state_dir: Path, *options: str, ready_within: float = 300) -> Iterator[dict[str, Any]]:
    """`mlops up *options` serving from ``state_dir``: ``{"description": endpoint.json, "api",
    "key", "state_dir", "process", "ports": (api, moto), "output": its lines until ready,
    "seconds": command to ready}``."""
    api_port, moto_port = free_port(), free_port()
    started = time.monotonic()
    process = subprocess.Popen(
        [*MLOPS, "up", *options, "--api-port", str(api_port), "--moto-port", str(moto_port)],
        cwd=ROOT,
        env=stack_env(state_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        demo = "--demo" in options
        seen = []
        deadline = started + ready_within
        for line in process.stdout:
            seen.append(line)
            if line.startswith(DEMO_READY) if demo else READY in line:
                break
            assert time.monotonic() < deadline, "".join(seen)
        else:
            pytest.fail(f"mlops up {' '.join(options)} exited early:\n" + "".join(seen))
        description = json.loads((state_dir / "endpoint.json").read_text())
        yield {
            "description": description,
            "api": description["api_url"],
            "key": description["api_key"],
            "state_dir": state_dir,
            "process": process,
            "ports": (api_port, moto_port),
            "output": "".join(seen),
            "seconds": time.monotonic() - started,
        }
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
