"""Inference cold start and warm latency, ours against the usual approach, in one run.

Ours: the inference function (``functions.inference.handler``) serving an ONNX export
of the model through the registry (DynamoDB alias + version, S3 artifact), with
onnxruntime. Peer ("the usual approach"): a handler that imports boto3, joblib and
scikit-learn, downloads a joblib dump of the same fitted model from the same bucket,
``joblib.load``s it and calls ``predict_proba``. joblib appears here only as the peer
being measured; it is never on our code path.

The model: RandomForestClassifier(n_estimators=100, random_state=0) on scikit-learn's
breast-cancer data, all 30 features. AWS is a moto server this script starts on
127.0.0.1 (a free port) and stops at exit.

1. Cold start: a fresh Python process per run, median of N runs, ours and peer
   interleaved (ABAB, BABA, ...) so that drift on the machine hits both alike. Timed
   inside the child from the first line of the script (before any import) to the first
   successful response, and by the parent from spawn to exit. Measured with cached
   bytecode (as a layer shipped with .pyc files) and, with fewer runs, without.
2. Warm latency, in one process: our ``lambda_handler(event, context)`` (API Gateway
   proxy event in, response out) against the peer's bare ``estimator.predict_proba(rows)``,
   for 1 row and a 100-row batch; calls alternate between the two.

Training and the warm measurement run in their own processes: this one only holds the
moto server and orchestrates (it never imports scikit-learn or onnxruntime).

Usage: .venv/bin/python benchmarks/inference_cold_warm.py [--runs N] [--quick]
       (``make benchmark``); a full run rewrites the results section of
       docs/benchmarks.md, ``--quick`` is a smoke test that leaves it alone.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    BUSY_KEY,
    ROOT,
    BenchmarkError,
    OtherLoad,
    Summary,
    child_pythonpath,
    ensure_import_paths,
    git_revision,
    machine_info,
    markdown_table,
    moto_server,
    ratio,
    replace_section,
    source_digest,
    summarize,
    text_table,
)

ensure_import_paths()

from infra.cdk.runtime import FUNCTION_ENVIRONMENT  # noqa: E402 (needs the import paths above)

MODEL_NAME = "breast-cancer"  # the name in events/inference/predict.json
PREDICT_EVENT = ROOT / "events" / "inference" / "predict.json"
DOCS = ROOT / "docs" / "benchmarks.md"
REGION = "us-east-1"
PEER_KEY = f"peer/{MODEL_NAME}/model.joblib"
UPLOAD_KEY = f"uploads/{MODEL_NAME}/model.onnx"
COLD_GOAL = 0.3  # ours/peer, median cold start
WARM_GOAL = 1.0  # ours/peer, median warm single-row latency
# Modules that must never load in the inference function (DESIGN.md, "Models").
FORBIDDEN_MODULES = ("sklearn", "scipy")
WATCHED_MODULES = (*FORBIDDEN_MODULES, "joblib", "pandas", "skl2onnx", "onnx", "boto3", "botocore.session")
PACKAGES = (
    "onnxruntime",
    "scikit-learn",
    "numpy",
    "scipy",
    "joblib",
    "boto3",
    "aws-lambda-powertools",
    "pydantic",
    "moto",
)
CHILD_TIMEOUT_S = 300
OTHERS_KEY = "CPU used by other processes during the run"
PYC_MODES = {
    "pyc": "bytecode cached (.pyc, as a layer built with precompiled bytecode)",
    "nopyc": "no .pyc (every module compiled from source at import)",
    "traced": "bytecode cached, tracing on as deployed (X-Ray SDK imported, libraries patched)",
}

# ---- cold-start child scripts -----------------------------------------------------------
# argv: the event file, where to write the result (JSON), a scratch file. perf_counter is
# CLOCK_MONOTONIC on Linux, so the parent can place the child's first line on its own
# clock (interpreter start).

OURS_CHILD = """\
import time

T0 = time.perf_counter()
import json
import sys

from functions.inference import handler

T_IMPORT = time.perf_counter()


class Context:
    function_name = "inference-benchmark"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:inference-benchmark"
    memory_limit_in_mb = 1769
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/inference-benchmark"
    log_stream_name = "benchmark"

    def get_remaining_time_in_millis(self):
        return 30_000


with open(sys.argv[1]) as file:
    event = json.load(file)
response = handler.lambda_handler(event, Context())
T1 = time.perf_counter()
if response.get("statusCode") != 200:
    raise SystemExit(f"handler answered {response.get('statusCode')}: {response.get('body')}")
result = {
    "t0": T0,
    "t_import": T_IMPORT,
    "t1": T1,
    "probabilities": json.loads(response["body"])["probabilities"],
    "loaded": sorted(m for m in WATCHED if m in sys.modules),
    "modules": len(sys.modules),
}
with open(sys.argv[2], "w") as file:
    json.dump(result, file)
"""

PEER_CHILD = """\
import time

T0 = time.perf_counter()
import json
import sys

import boto3
import joblib
import numpy as np
import sklearn

T_IMPORT = time.perf_counter()

with open(sys.argv[1]) as file:
    event = json.load(file)
s3 = boto3.client("s3")
s3.download_file(BUCKET, KEY, sys.argv[3])
model = joblib.load(sys.argv[3])
rows = np.asarray(json.loads(event["body"])["instances"], dtype=np.float64)
body = json.dumps({"probabilities": model.predict_proba(rows).tolist()})
response = {"statusCode": 200, "body": body}
T1 = time.perf_counter()
result = {
    "t0": T0,
    "t_import": T_IMPORT,
    "t1": T1,
    "probabilities": json.loads(response["body"])["probabilities"],
    "loaded": sorted(m for m in WATCHED if m in sys.modules),
    "modules": len(sys.modules),
}
with open(sys.argv[2], "w") as file:
    json.dump(result, file)
"""


@dataclass(frozen=True)
class ColdRun:
    in_process: float  # child's first line -> first successful response (s)
    wall: float  # parent: spawn -> process exit (s)
    startup: float  # parent's spawn -> child's first line (interpreter start) (s)
    imports: float  # child's first line -> handler module / libraries imported (s)
    first_request: float  # imports done -> first response (s)
    exit: float  # first response -> process gone, seen by the parent (interpreter teardown) (s)
    loaded: list[str]
    modules: int
    probabilities: list[list[float]]


@dataclass
class Workspace:
    tmp: Path
    envs: dict[str, dict[str, str]]  # child environment per bytecode mode
    scripts: dict[str, Path]
    event_1_path: Path
    onnx_bytes: int
    joblib_bytes: int


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# ---- processes ------------------------------------------------------------------------


def aws_env(endpoint: str, bucket: str, table: str) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint,
        "ARTIFACTS_BUCKET": bucket,
        "METADATA_TABLE": table,
        "POWERTOOLS_SERVICE_NAME": "inference-benchmark",
        "POWERTOOLS_METRICS_NAMESPACE": "ServerlessMLOps",
        "POWERTOOLS_TRACE_DISABLED": "true",
        **FUNCTION_ENVIRONMENT,  # as every deployed function has it
    }


def child_envs(tmp: Path, aws: dict[str, str]) -> dict[str, dict[str, str]]:
    """Environments for the children, per bytecode mode.

    ``pyc``: bytecode is written to and read from a prefix in the temp dir (the first,
    discarded run fills it), so the venv and the repository stay untouched. ``nopyc``:
    an empty prefix that nothing is written to, so every import compiles its source.
    """
    base = {k: v for k, v in os.environ.items() if k not in ("AWS_PROFILE", "PYTHONDONTWRITEBYTECODE")}
    base.update(aws, PYTHONPATH=child_pythonpath())
    (tmp / "pycache").mkdir()
    (tmp / "no-pycache").mkdir()
    return {
        "pyc": {**base, "PYTHONPYCACHEPREFIX": str(tmp / "pycache")},
        "nopyc": {
            **base,
            "PYTHONPYCACHEPREFIX": str(tmp / "no-pycache"),
            "PYTHONDONTWRITEBYTECODE": "1",
        },
        # As in Lambda: the X-Ray SDK sees LAMBDA_TASK_ROOT (so it uses Lambda's sampling
        # and context instead of building a sampling-rule poller) and a sampled trace header;
        # it records subsegments and sends them over UDP to the (absent) daemon address.
        "traced": {
            **base,
            "PYTHONPYCACHEPREFIX": str(tmp / "pycache"),
            "POWERTOOLS_TRACE_DISABLED": "false",
            "LAMBDA_TASK_ROOT": str(tmp),
            "_X_AMZN_TRACE_ID": "Root=1-6747a2b0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1",
            "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        },
    }


def run_python(
    args: list[str], env: dict[str, str], cwd: Path, what: str
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run a Python child; its result and the parent's perf_counter at spawn and exit."""
    spawned = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, *args],
            check=False,
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as error:  # run() has killed the child
        raise BenchmarkError(f"{what} did not finish in {CHILD_TIMEOUT_S} s") from error
    ended = time.perf_counter()
    if proc.returncode != 0:
        raise BenchmarkError(f"{what} failed (exit {proc.returncode}):\n{tail(proc.stderr or proc.stdout)}")
    return proc, spawned, ended


def run_mode(mode: str, tmp: Path, env: dict[str, str], *extra: str) -> None:
    """Run this script in one of its child modes (setup, warm), with a Python traceback on a crash."""
    script = str(Path(__file__).resolve())
    run_python(["-X", "faulthandler", script, mode, str(tmp), *extra], env, tmp, f"the {mode} process")


# ---- setup ------------------------------------------------------------------------------


def predict_event(rows: list[list[float]]) -> dict[str, Any]:
    event = json.loads(PREDICT_EVENT.read_text())
    event["body"] = json.dumps({"instances": rows})
    return event


def setup_child(tmp: Path) -> None:
    """(Own process.) Train and export the model; write the artifacts and the events to ``tmp``."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier

    from mlops_core.training.export import export_sklearn

    data = load_breast_cancer()
    x, y = data.data, data.target
    features = [name.replace(" ", "_") for name in data.feature_names]
    estimator = RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y)
    onnx_model, signature = export_sklearn(estimator, features, target="benign")
    (tmp / "model.onnx").write_bytes(onnx_model)
    (tmp / "signature.json").write_text(signature.model_dump_json())
    joblib.dump(estimator, tmp / "model.joblib")
    (tmp / "predict_1.json").write_text(json.dumps(predict_event(x[:1].tolist())))
    (tmp / "predict_100.json").write_text(json.dumps(predict_event(x[:100].tolist())))


def prepare(tmp: Path, endpoint: str) -> Workspace:
    """Model files from a setup process; bucket, table, registration and alias on moto."""
    from tests.support import BUCKET, TABLE, create_resources

    aws = aws_env(endpoint, BUCKET, TABLE)
    envs = child_envs(tmp, aws)
    run_mode("--child-setup", tmp, envs["pyc"])

    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(aws)  # before any boto3 client of this process is created
    import boto3

    from mlops_core.registry.entities import RegisterVersionRequest
    from mlops_core.registry.service import ModelRegistry
    from mlops_core.registry.signature import ModelSignature
    from mlops_core.storage.dynamo import MetadataTable
    from mlops_core.storage.s3 import ArtifactStore

    create_resources()  # the bucket and table as infra/ declares them
    store = ArtifactStore(BUCKET)
    registry = ModelRegistry(MetadataTable(TABLE), store)
    onnx_model = (tmp / "model.onnx").read_bytes()
    store.put(UPLOAD_KEY, onnx_model)
    signature = ModelSignature.model_validate_json((tmp / "signature.json").read_text())
    version = registry.register_version(
        MODEL_NAME, RegisterVersionRequest(artifact_key=UPLOAD_KEY, signature=signature)
    )
    registry.set_alias(MODEL_NAME, "production", version.version)
    boto3.client("s3").upload_file(str(tmp / "model.joblib"), BUCKET, PEER_KEY)

    watched = f"WATCHED = {WATCHED_MODULES!r}\n"
    scripts = {kind: tmp / f"{kind}_child.py" for kind in ("ours", "ours_profile", "peer")}
    ours = OURS_CHILD.replace("\nT_IMPORT", f"\n{watched}T_IMPORT", 1)
    scripts["ours"].write_text(ours)
    # The same, with the first call under cProfile (stats to argv[3]); for attribution only.
    scripts["ours_profile"].write_text(
        ours.replace(
            "response = handler.lambda_handler(event, Context())\n",
            "import cProfile\n\n"
            "profiler = cProfile.Profile()\n"
            "response = profiler.runcall(handler.lambda_handler, event, Context())\n"
            "profiler.dump_stats(sys.argv[3])\n",
            1,
        )
    )
    scripts["peer"].write_text(
        PEER_CHILD.replace("\nT_IMPORT", f"\n{watched}BUCKET = {BUCKET!r}\nKEY = {PEER_KEY!r}\nT_IMPORT", 1)
    )
    return Workspace(
        tmp=tmp,
        envs=envs,
        scripts=scripts,
        event_1_path=tmp / "predict_1.json",
        onnx_bytes=len(onnx_model),
        joblib_bytes=(tmp / "model.joblib").stat().st_size,
    )


# ---- cold start -------------------------------------------------------------------------


def run_child(
    ws: Workspace,
    kind: str,
    run: int,
    *,
    mode: str = "pyc",
    extra_args: tuple[str, ...] = (),
    scratch: Path | None = None,
) -> tuple[ColdRun, str]:
    """One fresh process of ``kind``; its timings and its stderr.

    The scratch file (the peer downloads the model there) is removed afterwards unless
    ``scratch`` is given.
    """
    result_path = ws.tmp / f"{kind}_{mode}_{run}.json"
    scratch_path = scratch or ws.tmp / f"scratch_{kind}_{run}"
    proc, spawned, ended = run_python(
        [*extra_args, str(ws.scripts[kind]), str(ws.event_1_path), str(result_path), str(scratch_path)],
        ws.envs[mode],
        ws.tmp,
        f"{kind} cold-start child",
    )
    if not result_path.exists():
        raise BenchmarkError(f"{kind} cold-start child wrote no result:\n{tail(proc.stderr or proc.stdout)}")
    result = json.loads(result_path.read_text())
    result_path.unlink()
    if scratch is None:
        scratch_path.unlink(missing_ok=True)
    return (
        ColdRun(
            in_process=result["t1"] - result["t0"],
            wall=ended - spawned,
            startup=result["t0"] - spawned,
            imports=result["t_import"] - result["t0"],
            first_request=result["t1"] - result["t_import"],
            exit=ended - result["t1"],
            loaded=result["loaded"],
            modules=result["modules"],
            probabilities=result["probabilities"],
        ),
        proc.stderr,
    )


def cold_start(ws: Workspace, runs: int, mode: str) -> dict[str, list[ColdRun]]:
    results: dict[str, list[ColdRun]] = {"ours": [], "peer": []}
    log(f"cold start, {PYC_MODES[mode]}: one discarded run each, then {runs} interleaved")
    for kind in ("ours", "peer"):
        run_child(ws, kind, -1, mode=mode)
    for run in range(runs):
        order = ("ours", "peer") if run % 2 == 0 else ("peer", "ours")
        for kind in order:
            cold, _ = run_child(ws, kind, run, mode=mode)
            results[kind].append(cold)
        last = {k: f"{results[k][-1].in_process * 1000:.0f} ms" for k in ("ours", "peer")}
        log(f"  {mode} {run + 1}/{runs}: ours {last['ours']}, peer {last['peer']} (in-process)")
    return results


_IMPORT_LINE = re.compile(r"^import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)\s*$")
HANDLER_MODULE = "functions.inference.handler"
# What our first request spends its time on, looked up in a cProfile of that call.
FIRST_CALL_PARTS = (
    ("whole first call (lambda_handler)", "functions/inference/handler.py", "lambda_handler"),
    ("signed reads (GetItem alias, GetItem version, GetObject; moto)", "mlops_core/aws_reads.py", "_send"),
    ("boto3 clients created (none: reads are signed by aws_reads)", "mlops_core/aws.py", "client"),
    ("sha256 check of the artifact", "mlops_core/artifacts.py", "verify_checksum"),
    ("ONNX Runtime session from the artifact", "mlops_core/predict.py", "load_session"),
    ("request rows -> input matrix", "mlops_core/instances.py", "instances_to_matrix"),
    ("inference (session.run)", "mlops_core/predict.py", "run"),
)


@dataclass(frozen=True)
class Attribution:
    """Where our cold start goes, from one extra run (not part of the timings)."""

    import_self_total_ms: float
    packages: list[tuple[str, float]]  # top-level package -> sum of self import times (ms)
    handler_imports: list[tuple[str, float]]  # the handler module's own imports, cumulative (ms)
    first_call: list[tuple[str, float, int]]  # label, cumulative ms, calls


def attribution(ws: Workspace, count: int = 12) -> Attribution:
    """One run of our child (cached bytecode) under ``-X importtime``, first call profiled."""
    import pstats

    stats_path = ws.tmp / "first_call.prof"
    _, stderr = run_child(ws, "ours_profile", -2, extra_args=("-X", "importtime"), scratch=stats_path)
    packages: dict[str, float] = {}
    handler_imports: list[tuple[str, float]] = []
    pending: list[tuple[str, float]] = []  # importtime prints a module's imports before the module
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if not match:
            continue
        self_us, cumulative_us, indent, name = match.groups()
        top = name.split(".")[0]
        packages[top] = packages.get(top, 0.0) + int(self_us) / 1000
        if len(indent) == 3:
            pending.append((name, int(cumulative_us) / 1000))
        elif len(indent) == 1:
            if name == HANDLER_MODULE:
                handler_imports = pending
            pending = []

    stats = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
    stats_path.unlink(missing_ok=True)
    first_call = []
    for label, file_suffix, function in FIRST_CALL_PARTS:
        found = [
            (value[1], value[3])
            for (filename, _, name), value in stats.items()
            if name == function and filename.replace(os.sep, "/").endswith(file_suffix)
        ]
        first_call.append((label, sum(ct for _, ct in found) * 1000, sum(calls for calls, _ in found)))
    return Attribution(
        import_self_total_ms=sum(packages.values()),
        packages=sorted(packages.items(), key=lambda item: item[1], reverse=True)[:count],
        handler_imports=sorted(handler_imports, key=lambda item: item[1], reverse=True)[:count],
        first_call=first_call,
    )


# ---- warm latency -----------------------------------------------------------------------


def alternate(
    ours: Callable[[], None], peer: Callable[[], None], calls: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Per-call latencies (s) of both, alternating which goes first on every iteration."""
    for _ in range(warmup):
        ours()
        peer()
    ours_s: list[float] = []
    peer_s: list[float] = []
    for i in range(calls):
        pair = ((ours, ours_s), (peer, peer_s)) if i % 2 == 0 else ((peer, peer_s), (ours, ours_s))
        for function, samples in pair:
            started = time.perf_counter_ns()
            function()
            samples.append((time.perf_counter_ns() - started) / 1e9)
    return ours_s, peer_s


def _counting(transport: Callable[[Any], Any], count: Callable[[], None]) -> Callable[[Any], Any]:
    def counted(request: Any) -> Any:
        count()
        return transport(request)

    return counted


def warm_child(tmp: Path, calls: int, warmup: int) -> None:
    """(Own process.) Our handler, imported first as in the function, against the peer's
    ``predict_proba``; per-call latencies written to ``tmp/warm.json``."""
    import joblib
    import numpy as np

    from functions.inference import handler
    from mlops_core.storage.clients import reader
    from tests.support import FakeLambdaContext

    context = FakeLambdaContext()
    peer_model = joblib.load(tmp / "model.joblib")
    aws_calls = {"n": 0}

    def count(**_: Any) -> None:
        aws_calls["n"] += 1

    for service in ("s3", "dynamodb"):
        client = reader(service)  # type: ignore[arg-type]
        if hasattr(client, "transport"):  # a signed reader: count at its transport
            client.transport = _counting(client.transport, count)
        else:  # boto3 (MLOPS_SIGNED_READS=false)
            client.meta.events.register("before-send", count, unique_id="benchmark-count")

    def ours_for(event: dict[str, Any]) -> Callable[[], None]:
        def call() -> None:
            response = handler.lambda_handler(event, context)
            if response["statusCode"] != 200:
                raise BenchmarkError(f"handler answered {response['statusCode']}: {response['body']}")

        return call

    results: dict[str, Any] = {}
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # Powertools' EMF lines
        events = {n: json.loads((tmp / f"predict_{n}.json").read_text()) for n in (1, 100)}
        first = handler.lambda_handler(events[1], context)  # loads the model (not timed)
        if first["statusCode"] != 200:
            raise BenchmarkError(f"warm: first call answered {first['statusCode']}: {first['body']}")
        for n, event in events.items():
            rows = np.asarray(json.loads(event["body"])["instances"], dtype=np.float64)
            before = aws_calls["n"]
            ours_s, peer_s = alternate(
                ours_for(event), lambda rows=rows: peer_model.predict_proba(rows), calls, warmup
            )
            results[f"{n} row" + ("s" if n > 1 else "")] = {
                "ours": ours_s,
                "peer": peer_s,
                "aws_calls": aws_calls["n"] - before,
            }
    ours_probabilities = json.loads(first["body"])["probabilities"][0]
    peer_probabilities = peer_model.predict_proba(
        np.asarray(json.loads(events[1]["body"])["instances"], dtype=np.float64)
    )[0].tolist()
    results["max_abs_diff"] = max(
        abs(a - b) for a, b in zip(ours_probabilities, peer_probabilities, strict=True)
    )
    results["alias_ttl_s"] = handler.settings.alias_cache_ttl_seconds
    (tmp / "warm.json").write_text(json.dumps(results))


def warm_latency(ws: Workspace, calls: int, warmup: int) -> dict[str, Any]:
    run_mode("--child-warm", ws.tmp, ws.envs["pyc"], str(calls), str(warmup))
    results: dict[str, Any] = json.loads((ws.tmp / "warm.json").read_text())
    for label in ("1 row", "100 rows"):
        results[label]["ours"] = summarize(results[label]["ours"])
        results[label]["peer"] = summarize(results[label]["peer"])
    return results


# ---- report -----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}" if seconds < 0.1 else f"{seconds * 1000:.0f}"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}"


def verdict(value: float, goal: float, *, strict: bool) -> str:
    met = value < goal if strict else value <= goal
    return "met" if met else "MISSED"


COLD_PHASES = (
    ("first line -> first response (in-process)", "in_process"),
    ("spawn -> exit (wall, parent)", "wall"),
    ("  interpreter start (spawn -> first line)", "startup"),
    ("  imports (handler module / boto3+joblib+sklearn)", "imports"),
    ("  first request (AWS reads, model load, predict)", "first_request"),
    ("  exit (first response -> process gone)", "exit"),
)


def cold_table(cold: dict[str, list[ColdRun]], summary: dict[str, Any]) -> list[list[str]]:
    rows = []
    for label, attribute in COLD_PHASES:
        ours = summarize([getattr(r, attribute) for r in cold["ours"]])
        peer = summarize([getattr(r, attribute) for r in cold["peer"]])
        rows.append([label, ms(ours.median), ms(peer.median), f"{ratio(ours.median, peer.median):.2f}"])
        summary[attribute] = {"ours_ms": ours.median * 1000, "peer_ms": peer.median * 1000}
    ours_in = summarize([r.in_process for r in cold["ours"]])
    peer_in = summarize([r.in_process for r in cold["peer"]])
    rows.append(
        [
            "spread of in-process (min-max)",
            f"{ms(ours_in.minimum)}-{ms(ours_in.maximum)}",
            f"{ms(peer_in.minimum)}-{ms(peer_in.maximum)}",
            "",
        ]
    )
    rows.append(
        [
            "modules in sys.modules after first response",
            str(cold["ours"][0].modules),
            str(cold["peer"][0].modules),
            "",
        ]
    )
    summary["runs"] = len(cold["ours"])
    return rows


def median_ratio(cold: dict[str, list[ColdRun]], attribute: str) -> float:
    return ratio(
        summarize([getattr(r, attribute) for r in cold["ours"]]).median,
        summarize([getattr(r, attribute) for r in cold["peer"]]).median,
    )


def build_report(
    colds: dict[str, dict[str, list[ColdRun]]],
    warm: dict[str, Any],
    attributed: Attribution,
    machine: dict[str, str],
    args: argparse.Namespace,
    ws: Workspace,
) -> tuple[str, str, dict[str, Any]]:
    """The console text, the markdown section, and a JSON-able summary."""
    summary: dict[str, Any] = {"cold": {}, "warm": {}}
    cold_tables = {
        mode: cold_table(cold, summary["cold"].setdefault(mode, {})) for mode, cold in colds.items()
    }
    cold = colds["pyc"]
    cold_ratio = median_ratio(cold, "in_process")
    wall_ratio = median_ratio(cold, "wall")
    loaded_ours = sorted(
        {m for mode, runs in colds.items() if mode != "traced" for r in runs["ours"] for m in r.loaded}
    )
    loaded_traced = sorted({m for r in colds.get("traced", {"ours": []})["ours"] for m in r.loaded})
    forbidden = [m for m in FORBIDDEN_MODULES if m in {*loaded_ours, *loaded_traced}]
    cold_diff = max(
        abs(a - b)
        for a, b in zip(cold["ours"][0].probabilities[0], cold["peer"][0].probabilities[0], strict=True)
    )

    warm_rows = []
    for label in ("1 row", "100 rows"):
        ours: Summary = warm[label]["ours"]
        peer: Summary = warm[label]["peer"]
        for stat in ("median", "p95"):
            o, p = getattr(ours, stat), getattr(peer, stat)
            warm_rows.append([f"{label}, {stat}", us(o), us(p), f"{ratio(o, p):.2f}"])
            summary["warm"][f"{label} {stat}"] = {"ours_us": o * 1e6, "peer_us": p * 1e6}
    warm_ratio = ratio(warm["1 row"]["ours"].median, warm["1 row"]["peer"].median)
    warm_p95_ratio = ratio(warm["1 row"]["ours"].p95, warm["1 row"]["peer"].p95)
    batch_ratio = ratio(warm["100 rows"]["ours"].median, warm["100 rows"]["peer"].median)
    aws_calls = warm["1 row"]["aws_calls"] + warm["100 rows"]["aws_calls"]

    ratios = [
        [
            "cold start, median in-process (.pyc cached)",
            f"{cold_ratio:.2f}",
            f"<= {COLD_GOAL}",
            verdict(cold_ratio, COLD_GOAL, strict=False),
        ],
        ["cold start, median wall (spawn -> exit)", f"{wall_ratio:.2f}", "", ""],
    ]
    if "nopyc" in colds:
        nopyc_ratio = median_ratio(colds["nopyc"], "in_process")
        summary["cold_nopyc_ratio"] = nopyc_ratio
        ratios.append(["cold start without .pyc, median in-process", f"{nopyc_ratio:.2f}", "", ""])
    if "traced" in colds:
        traced_ratio = median_ratio(colds["traced"], "in_process")
        summary["cold_traced_ratio"] = traced_ratio
        ratios.append(
            ["cold start with tracing on (as deployed), median in-process", f"{traced_ratio:.2f}", "", ""]
        )
    ratios += [
        [
            "warm 1 row, median",
            f"{warm_ratio:.2f}",
            f"< {WARM_GOAL:g}",
            verdict(warm_ratio, WARM_GOAL, strict=True),
        ],
        ["warm 1 row, p95", f"{warm_p95_ratio:.2f}", "", ""],
        ["warm 100 rows, median", f"{batch_ratio:.2f}", "", ""],
    ]
    summary.update(
        {
            "cold_ratio": cold_ratio,
            "cold_wall_ratio": wall_ratio,
            "warm_ratio": warm_ratio,
            "warm_p95_ratio": warm_p95_ratio,
            "warm_batch_ratio": batch_ratio,
            "forbidden_modules_loaded": forbidden,
            "aws_calls_in_warm_loops": aws_calls,
        }
    )
    checks = [
        f"sklearn/scipy after our first prediction: "
        f"{'NOT loaded (ok)' if not forbidden else 'LOADED: ' + ', '.join(forbidden)}"
        f" (watched modules loaded by ours: {', '.join(loaded_ours) or 'none'}"
        + (f"; with tracing on: {', '.join(loaded_traced) or 'none'}" if "traced" in colds else "")
        + ")",
        f"same predictions: max |ours - peer| probability difference {cold_diff:.2g} (cold, 1 row), "
        f"{warm['max_abs_diff']:.2g} (warm); ONNX takes float32",
        f"AWS calls during the timed warm loops: {aws_calls} (alias cache TTL {warm['alias_ttl_s']:g} s; "
        "a call there is the alias re-read after the TTL)",
        f"artifacts: ONNX {ws.onnx_bytes / 1e6:.2f} MB, joblib {ws.joblib_bytes / 1e6:.2f} MB",
    ]
    attribution_tables = [
        (
            f"Our cold start's imports by package (`python -X importtime`, one extra run with .pyc cached; "
            f"sum of self times {attributed.import_self_total_ms:.0f} ms, inflated by importtime itself)",
            ["package", "self ms"],
            [[name, f"{ms_:.0f}"] for name, ms_ in attributed.packages],
        ),
        (
            f"Imports made by `{HANDLER_MODULE}` itself (same run, cumulative)",
            ["module", "cumulative ms"],
            [[name, f"{ms_:.0f}"] for name, ms_ in attributed.handler_imports],
        ),
        (
            "Our first request (same run, under cProfile, which inflates it; the parts overlap, "
            "they do not add up to the whole)",
            ["", "cumulative ms", "calls"],
            [[label, f"{ms_:.1f}", str(calls)] for label, ms_, calls in attributed.first_call],
        ),
    ]

    runs_note = (
        f"cold: median of {len(cold['ours'])} fresh processes per side with .pyc cached"
        + (f" and {len(colds['nopyc']['ours'])} without" if "nopyc" in colds else "")
        + (f" and {len(colds['traced']['ours'])} with tracing on" if "traced" in colds else "")
        + f", interleaved; warm: {warm['1 row']['ours'].n} calls per side after {args.warmup} warm-up calls, "
        "alternating"
    )
    cold_sections = [
        (f"Cold start, {PYC_MODES[mode]} (ms, medians of {len(colds[mode]['ours'])})", cold_tables[mode])
        for mode in colds
    ]
    header = ["", "ours", "peer", "ours/peer"]
    console = "\n".join(
        [
            "",
            f"Inference, ours (ONNX + registry handler) vs peer (boto3 + joblib + scikit-learn); {runs_note}",
            f"{BUSY_KEY}: {machine.get(BUSY_KEY, '?')}; {OTHERS_KEY.lower()}: {machine.get(OTHERS_KEY, '?')}",
            "",
            *[part for title, rows in cold_sections for part in (title, text_table(header, rows), "")],
            "Warm latency (µs per call)",
            text_table(header, warm_rows),
            "",
            "Ratios (ours/peer)",
            text_table(["", "ratio", "goal", ""], ratios),
            "",
            *checks,
            "",
            *[
                part
                for title, head, rows in attribution_tables
                for part in (title.replace("`", "") + ":", text_table(head, rows), "")
            ],
        ]
    )

    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with contextlib.suppress(OSError):
        machine["load average at end (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    command = " ".join(
        [
            ".venv/bin/python benchmarks/inference_cold_warm.py",
            f"--runs {len(cold['ours'])}",
            f"--no-pyc-runs {len(colds['nopyc']['ours']) if 'nopyc' in colds else 0}",
            f"--traced-runs {len(colds['traced']['ours']) if 'traced' in colds else 0}",
            f"--calls {warm['1 row']['ours'].n}",
        ]
    )
    markdown = "\n".join(
        [
            "## Results",
            "",
            f"Run {now}: `{command}` ({runs_note}).",
            "",
            "### Machine",
            "",
            markdown_table(
                ["", ""],
                [[k, f"`{v}`" if k.isupper() else v] for k, v in machine.items()],
                align_right_from=2,
            ),
            "",
            "### Ratios (ours / peer)",
            "",
            markdown_table(["", "ratio", "goal", ""], ratios),
            "",
            *[
                part
                for title, rows in cold_sections
                for part in (f"### {title}", "", markdown_table(header, rows), "")
            ],
            "### Warm latency (µs per call)",
            "",
            markdown_table(header, warm_rows),
            "",
            "### Checks",
            "",
            *[f"- {c}" for c in checks],
            "",
            "### Where our cold start goes",
            "",
            *[
                part
                for title, head, rows in attribution_tables
                for part in (f"{title}:", "", markdown_table(head, rows), "")
            ],
        ]
    )
    return console, markdown, summary


DOC_TEMPLATE = """\
# Benchmarks

Run with `make benchmark` (or `.venv/bin/python benchmarks/inference_cold_warm.py`).

<!-- BEGIN RESULTS (written by benchmarks/inference_cold_warm.py) -->
<!-- END RESULTS -->
"""
BEGIN_MARK = "<!-- BEGIN RESULTS (written by benchmarks/inference_cold_warm.py) -->"
END_MARK = "<!-- END RESULTS -->"


# ---- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--runs", type=int, help="cold starts per side with .pyc (default 15; 3 with --quick)"
    )
    parser.add_argument(
        "--no-pyc-runs",
        type=int,
        help="cold starts per side without .pyc (default 5; 1 with --quick; 0 skips)",
    )
    parser.add_argument(
        "--traced-runs",
        type=int,
        help="cold starts per side with tracing on, as deployed (default 5; 1 with --quick; 0 skips)",
    )
    parser.add_argument("--calls", type=int, help="timed warm calls per side and size (default 500)")
    parser.add_argument("--quick", action="store_true", help="smoke test: few runs, docs left alone")
    parser.add_argument(
        "--write-docs",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"rewrite the results section of {DOCS.relative_to(ROOT)} (default: yes, except with --quick)",
    )
    parser.add_argument("--json", type=Path, help="also write a JSON summary here")
    args = parser.parse_args(argv)
    args.runs = args.runs or (3 if args.quick else 15)
    if args.no_pyc_runs is None:
        args.no_pyc_runs = 1 if args.quick else 5
    if args.traced_runs is None:
        args.traced_runs = 1 if args.quick else 5
    args.calls = args.calls or (100 if args.quick else 500)
    args.warmup = 10 if args.quick else 50
    if args.write_docs is None:
        args.write_docs = not args.quick
    if args.runs < 1 or args.calls < 1 or args.no_pyc_runs < 0 or args.traced_runs < 0:
        parser.error("--runs and --calls must be at least 1, --no-pyc-runs and --traced-runs at least 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    machine = machine_info(PACKAGES)
    machine["PYTHONDONTWRITEBYTECODE"] = os.environ.get("PYTHONDONTWRITEBYTECODE") or "(unset)"
    busy = machine.get(BUSY_KEY, "0%")
    if float(busy.rstrip("%")) > 25:
        log(f"warning: {busy} of the CPUs were busy before the run; expect noisy numbers")
    machine["code (git)"] = git_revision()
    code_folders = (ROOT / "functions", ROOT / "layers")
    code_before = source_digest(*code_folders)
    others = OtherLoad()
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as tmp, moto_server() as endpoint:
        log(f"moto server at {endpoint}; training and exporting the model (own process), registering it")
        ws = prepare(Path(tmp), endpoint)
        colds = {"pyc": cold_start(ws, args.runs, "pyc")}
        if args.no_pyc_runs:
            colds["nopyc"] = cold_start(ws, args.no_pyc_runs, "nopyc")
        if args.traced_runs:
            colds["traced"] = cold_start(ws, args.traced_runs, "traced")
        log("attribution: one more run of our child with -X importtime and the first call profiled")
        attributed = attribution(ws)
        log(f"warm latency: {args.calls} calls per side and size (own process)")
        warm = warm_latency(ws, args.calls, args.warmup)
        other_load = others.report()
        if source_digest(*code_folders) != code_before:
            raise BenchmarkError(
                "functions/ or layers/ changed during the run: the numbers mix two versions of the "
                "code; rerun (docs left alone)"
            )
        if other_load:
            machine[OTHERS_KEY] = other_load
        console, markdown, summary = build_report(colds, warm, attributed, machine, args, ws)
    print(console)
    if args.write_docs:
        replace_section(DOCS, BEGIN_MARK, END_MARK, markdown, DOC_TEMPLATE)
        log(f"wrote the results section of {DOCS.relative_to(ROOT)}")
    else:
        log(f"{DOCS.relative_to(ROOT)} left alone (--quick or --no-write-docs)")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    if summary["forbidden_modules_loaded"]:
        log(f"FAIL: {', '.join(summary['forbidden_modules_loaded'])} loaded in the inference function")
        return 1
    return 0


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds: children killed, moto stopped, temp dir removed


def _entry() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child-setup":
        setup_child(Path(sys.argv[2]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "--child-warm":
        warm_child(Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    return main()


if __name__ == "__main__":
    try:
        sys.exit(_entry())
    except BenchmarkError as error:
        log(f"benchmark failed: {error}")
        sys.exit(2)
    except KeyboardInterrupt:
        log("interrupted")
        sys.exit(130)
