"""Schemathesis against the local stack: start ``mlops up --demo``, fuzz it, count.

A measurement, not a CI test (pytest does not collect this file). Schemathesis is not a
project dependency; install it into the venv for the run:

    .venv/bin/uv pip install --python .venv/bin/python schemathesis
    .venv/bin/python tests/fuzz/schemathesis_local.py                 # ~20 min, ~35,000 requests
    .venv/bin/python tests/fuzz/schemathesis_local.py --max-time 300  # shorter
    .venv/bin/python tests/fuzz/schemathesis_local.py --summarize REPORT.ndjson

It starts the stack on free loopback ports with its own state directory, runs every
phase with ``--checks all`` (the API key on every request), stops the stack, and prints
one JSON object: requests sent (per phase), responses per status, failed checks, the
distinct failures and any 5xx. Reports (NDJSON, and schemathesis's own summary in
schemathesis.txt) stay in ``--report-dir`` (.cache/schemathesis).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def summarize(path: Path) -> dict[str, Any]:
    """Counts from a schemathesis NDJSON report (one line per event)."""
    requests: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failed_checks: Counter[str] = Counter()
    distinct: Counter[tuple[str, str, str]] = Counter()
    server_errors: list[str] = []
    with path.open() as lines:
        for line in lines:
            if '"ScenarioFinished"' not in line[:25]:
                continue
            scenario = json.loads(line)["ScenarioFinished"]
            recorder = scenario.get("recorder") or {}
            for interaction in (recorder.get("interactions") or {}).values():
                requests[scenario["phase"]] += 1
                response = interaction.get("response")
                if response:
                    statuses[response["status_code"]] += 1
                    if response["status_code"] >= 500:
                        request = interaction["request"]
                        status = response["status_code"]
                        server_errors.append(f"{status} {request['method']} {request['uri']}")
            for checks in (recorder.get("checks") or {}).values():
                for check in checks:
                    if check["status"] != "failure":
                        continue
                    failure = check["failure_info"]["failure"]
                    failed_checks[check["name"]] += 1
                    distinct[(check["name"], failure.get("operation", ""), failure.get("title", ""))] += 1
    return {
        "requests": sum(requests.values()),
        "requests_by_phase": dict(requests),
        "statuses": dict(sorted(statuses.items())),
        "failed_checks": dict(failed_checks.most_common()),
        "distinct_failures": [
            {"check": c, "operation": o, "title": t, "count": n} for (c, o, t), n in sorted(distinct.items())
        ],
        "server_errors": server_errors[:50],
    }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_stack(state_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    api_port, moto_port = _free_port(), _free_port()
    log = (state_dir / "stack.log").open("wb")
    process = subprocess.Popen(
        [str(VENV_BIN / "mlops"), "up", "--demo", "--api-port", str(api_port), "--moto-port", str(moto_port)],
        cwd=ROOT,
        env=os.environ | {"MLOPS_STATE_DIR": str(state_dir)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 300
    while b"serving; Ctrl-C stops the stack" not in (state_dir / "stack.log").read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit("the local stack did not start:\n" + (state_dir / "stack.log").read_text())
        time.sleep(1)
    return process, json.loads((state_dir / "endpoint.json").read_text())


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--summarize", type=Path, help="only count an existing NDJSON report")
    parser.add_argument("--max-examples", type=int, default=150)
    parser.add_argument("--max-time", type=int, default=1200, help="seconds for the whole run")
    parser.add_argument("--seed", type=int, default=1)
    # One at a time: the local stack runs every function in one process, and concurrent
    # requests to two functions race on Powertools' process-wide metric state (a 502 no
    # deployed function can hit: a Lambda environment serves one request at a time).
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--report-dir", type=Path, default=ROOT / ".cache" / "schemathesis")
    args = parser.parse_args()
    if args.summarize:
        print(json.dumps(summarize(args.summarize), indent=2))
        return

    with tempfile.TemporaryDirectory(prefix="mlops-fuzz-") as state:
        process, endpoint = _start_stack(Path(state))
        try:
            command = [
                str(VENV_BIN / "schemathesis"), "run", str(ROOT / "docs" / "openapi.json"),
                "--url", endpoint["api_url"], "-H", f"x-api-key: {endpoint['api_key']}",
                "--checks", "all", "--phases", "examples,coverage,fuzzing,stateful",
                "--max-examples", str(args.max_examples), "--max-time", str(args.max_time),
                "--seed", str(args.seed), "--workers", str(args.workers), "--request-timeout", "30",
                "--report", "ndjson", "--report-dir", str(args.report_dir),
            ]  # fmt: skip
            started = time.time()
            args.report_dir.mkdir(parents=True, exist_ok=True)
            with (args.report_dir / "schemathesis.txt").open("w") as output:
                subprocess.run(
                    command, check=False, cwd=args.report_dir, stdout=output, stderr=subprocess.STDOUT
                )
        finally:
            _stop(process)
    reports = [p for p in args.report_dir.glob("ndjson-*.ndjson") if p.stat().st_mtime >= started]
    print(json.dumps(summarize(max(reports, key=lambda p: p.stat().st_mtime)), indent=2))


if __name__ == "__main__":
    main()
