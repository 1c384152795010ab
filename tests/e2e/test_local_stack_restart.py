"""`mlops up --state DIR` across a restart, and a quiet terminal, for real: two `mlops up`
processes on the same state directory, stopped with a terminal's Ctrl-C (SIGINT to the
whole process group, as a shell sends it).

The first trains and promotes the sample model (`--demo`); the second, with no demo,
answers predictions with the same version under the same API key, reads the run, and
serves the artifact by the S3 version id the registry pinned, whose bytes still match
the recorded sha256.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.stack_process import free_port, stack_env, stack_state_dir
from tests.support import ROOT, ROW0, local_stack_client

pytestmark = pytest.mark.e2e
# Python's own Ctrl-C handling even if this test runs where SIGINT is ignored (a background job).
LAUNCH = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = ['mlops', *sys.argv[1:]]; runpy.run_module('infra.cli.main', run_name='__main__')"
)


class Up:
    """One `mlops up` process in its own process group, its output collected as it comes."""

    def __init__(self, runtime_dir: Path, *args: str) -> None:
        self.ports = (free_port(), free_port())
        self.runtime_dir = runtime_dir
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                LAUNCH,
                "up",
                "--api-port",
                str(self.ports[0]),
                "--moto-port",
                str(self.ports[1]),
                *args,
            ],
            cwd=ROOT,
            env=stack_env(runtime_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no {text!r} from mlops up:\n{self.output}")
            time.sleep(0.2)

    @property
    def endpoint(self) -> dict[str, Any]:
        return dict(json.loads((self.runtime_dir / "endpoint.json").read_text()))

    def ctrl_c(self) -> int:
        os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _children(pid: int) -> list[str]:
    """Command lines of the process's children (Linux /proc), to see that no node runs."""
    commands = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            commands.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return commands


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state = tmp_path_factory.mktemp("state")
    runtime = stack_state_dir(tmp_path_factory, "runtime")  # the run's template in it
    first = Up(runtime, "--demo", "--state", str(state))
    second: Up | None = None
    try:
        first.wait_for("serving; Ctrl-C stops the stack")
        before = first.endpoint
        pinned = requests.get(f"{before['api_url']}/models/breast-cancer/versions/1", timeout=30).json()
        run_id = next(w for w in first.output.split() if w.startswith("breast-cancer-2"))
        children_while_serving = _children(first.process.pid) if Path("/proc").exists() else []
        first_code = first.ctrl_c()
        second = Up(runtime, "--state", str(state))
        second.wait_for("serving; Ctrl-C stops the stack", timeout=120)
        yield {
            "first": first,
            "first_code": first_code,
            "second": second,
            "before": before,
            "pinned": pinned,
            "run_id": run_id,
            "children": children_while_serving,
        }
    finally:
        first.kill()
        if second is not None:
            second.kill()


def test_after_a_restart_the_same_key_predicts_with_the_same_version(runs: dict[str, Any]) -> None:
    after = runs["second"].endpoint
    assert after["api_key"] == runs["before"]["api_key"]
    assert "restored" in runs["second"].output

    response = requests.post(
        f"{after['api_url']}/models/breast-cancer/predict",
        json={"instances": [ROW0]},
        headers={"x-api-key": runs["before"]["api_key"]},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == 1


def test_after_a_restart_the_pinned_artifact_version_is_there_and_verifies(runs: dict[str, Any]) -> None:
    after = runs["second"].endpoint
    version = requests.get(f"{after['api_url']}/models/breast-cancer/versions/1", timeout=30).json()
    artifact = version["artifact"]
    assert artifact == runs["pinned"]["artifact"]
    s3 = local_stack_client("s3", after)

    stored = s3.get_object(
        Bucket=after["artifacts_bucket"], Key=artifact["key"], VersionId=artifact["s3_version_id"]
    )["Body"].read()

    assert hashlib.sha256(stored).hexdigest() == artifact["sha256"]


def test_after_a_restart_the_run_and_its_execution_are_readable(runs: dict[str, Any]) -> None:
    after = runs["second"].endpoint
    run = requests.get(f"{after['api_url']}/runs/{runs['run_id']}", timeout=30)

    assert run.status_code == 200, run.text
    assert run.json()["status"] == "SUCCEEDED"
    assert run.json()["execution"]["status"] == "SUCCEEDED"
    assert run.json()["registered_version"] == 1


def test_concurrent_requests_do_not_flood_the_terminal_with_pool_warnings(runs: dict[str, Any]) -> None:
    after = runs["second"].endpoint

    def predict(_: int) -> int:
        return requests.post(
            f"{after['api_url']}/models/breast-cancer/predict",
            json={"instances": [ROW0]},
            headers={"x-api-key": after["api_key"]},
            timeout=60,
        ).status_code

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        codes = list(pool.map(predict, range(96)))

    assert set(codes) == {200}
    time.sleep(0.5)
    assert "Connection pool is full" not in runs["second"].output


def test_a_rejected_run_is_one_line_in_the_terminal(runs: dict[str, Any]) -> None:
    up: Up = runs["second"]
    api = up.endpoint["api_url"]
    started = requests.post(
        f"{api}/training",
        json={
            "model_name": "breast-cancer",
            "dataset_key": "datasets/breast-cancer/v1/data.csv",
            "threshold": 0.9999,
            "candidates": [{"family": "random_forest", "params": {"n_estimators": 1, "max_depth": 1}}],
        },
        timeout=30,
    )
    assert started.status_code == 202, started.text
    deadline = time.monotonic() + 120
    while (run := requests.get(f"{api}/runs/{started.json()['run_id']}", timeout=30).json())["execution"][
        "status"
    ] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert run["status"] == "REJECTED"
    up.wait_for("Step Functions: a state failed with ModelRejected", timeout=10)

    assert "StateFail|" not in up.output
    assert "FailureEventException" not in up.output
    assert "FailureEventException" in (up.runtime_dir / "functions.log").read_text()


def test_log_lines_name_their_real_origin(runs: dict[str, Any]) -> None:
    def origin_of(up: Up, text: str) -> str:
        return next(line for line in up.output.splitlines() if text in line).split()[-1]

    assert origin_of(runs["first"], "moto server on").startswith("stack.py:")
    assert origin_of(runs["first"], "uploaded the sample dataset").startswith("demo.py:")
    assert origin_of(runs["second"], "restored").startswith("persistence.py:")


def test_ctrl_c_stops_both_cleanly_without_a_traceback(runs: dict[str, Any]) -> None:
    second_code = runs["second"].ctrl_c()

    assert runs["first_code"] == 0
    assert second_code == 0
    for up in (runs["first"], runs["second"]):
        assert "local stack stopped" in up.output
        assert "Traceback" not in up.output
        assert "BrokenPipeError" not in up.output
    # The CDK's jsii node process is what broke the pipe: the local stack never runs one.
    assert not [c for c in runs["children"] if "node" in c]
