"""Feature store: our materialization and lookups against Feast 0.67's DynamoDB online store,
on the same moto emulator (one moto server process), the same data, in the same run.

    make benchmark-features            # builds .venv-feast (Feast's own pins), then runs this
    .venv/bin/python benchmarks/features.py [--entities N] [--lookups N] [--json PATH]

Measured (docs/benchmarks.md, "Features"):
- materialization of N entities x 10 float features, one row per entity (and 3 rows per
  entity): wall time, client CPU and write requests of a first run, of a second run over
  the same data (ours: incremental, then the same window again; Feast: `materialize` over
  the same window again, then `materialize_incremental`);
- warm lookup latency, p50/p95, of 1 and 100 entities: through our lookup function's
  handler (API Gateway event in, response out), Feast's `get_online_features`, and a bare
  boto3 `get_item` / `batch_get_item` floor on our table;
- a fresh process to its first lookup (interpreter start included), median of 5.

Feast runs in its own virtualenv (benchmarks/feast/requirements.txt: feast[aws] needs a
botocore that the project's boto3 pin excludes, and typeguard>=4 where jsii pins 2.13.3),
driven through benchmarks/feast/feast_side.py; both sides talk to the same moto server.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path[:0] = [
    str(Path(__file__).resolve().parents[1]),
    str(Path(__file__).resolve().parents[1] / "layers" / "core"),
]

from benchmarks._common import ROOT, cpu_busy_percent, cpu_model, free_port, summarize  # noqa: E402

FEAST_PYTHON = ROOT / ".venv-feast" / "bin" / "python"
FEAST_SIDE = ROOT / "benchmarks" / "feast" / "feast_side.py"
FEATURES = [f"f{i}" for i in range(10)]
BUCKET, METADATA, ONLINE = "bench-artifacts", "bench-metadata", "bench-features"
REGION = "us-east-1"


def environment(endpoint: str) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_SESSION_TOKEN": "bench",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "ARTIFACTS_BUCKET": BUCKET,
        "METADATA_TABLE": METADATA,
        "FEATURES_TABLE": ONLINE,
        "EVENT_BUS_NAME": "default",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_METRICS_NAMESPACE": "Bench",
        "POWERTOOLS_SERVICE_NAME": "bench",
        "POWERTOOLS_LOGGER_LOG_EVENT": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'layers' / 'core'}",
    }


def start_moto(port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("moto server did not start")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc): the emulator's own work."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def create_resources() -> None:
    import boto3

    boto3.client("s3").create_bucket(Bucket=BUCKET)
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=METADATA,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    dynamodb.create_table(
        TableName=ONLINE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )


def dataset(entities: int, rows_per_entity: int, now: datetime, path: Path) -> None:
    """entity_id, event_time, created_at, f0..f9: each entity's rows at random times of the last 10 days."""
    import numpy as np

    rng = np.random.default_rng(7)
    total = entities * rows_per_entity
    ids = np.tile(np.arange(1, entities + 1), rows_per_entity)
    seconds = rng.integers(60, 10 * 86400, size=total)
    values = rng.normal(size=(total, len(FEATURES)))
    with path.open("w") as out:
        out.write("entity_id,event_time,created_at," + ",".join(FEATURES) + "\n")
        for i in range(total):
            stamp = (now - timedelta(seconds=int(seconds[i]))).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.write(f"{ids[i]},{stamp},{stamp}," + ",".join(repr(float(v)) for v in values[i]) + "\n")


def feast(command: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    child_env = {k: v for k, v in env.items() if k != "PYTHONPATH"} | {"PATH": os.environ.get("PATH", "")}
    result = subprocess.run(
        [str(FEAST_PYTHON), str(FEAST_SIDE), json.dumps(command)],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=1800,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(f"Feast's side failed ({command['op']}):\n{result.stderr[-3000:]}")
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def ours_materialize(view: str, csv_path: Path, now: datetime, moto_pid: int) -> list[dict[str, Any]]:
    import boto3

    from mlops_core.features.entities import FeatureViewDefinition
    from mlops_core.features.online import OnlineStore
    from mlops_core.features.repository import FeatureViewRepository
    from mlops_core.features.service import FeatureStoreService
    from mlops_core.storage.dynamo import KeyedTable, MetadataTable
    from mlops_core.storage.s3 import ArtifactStore

    prefix = f"feature-sources/{view}/"
    boto3.client("s3").upload_file(str(csv_path), BUCKET, f"{prefix}data.csv")
    table = KeyedTable(ONLINE)
    service = FeatureStoreService(
        FeatureViewRepository(MetadataTable(METADATA)), OnlineStore(table), ArtifactStore(BUCKET), workers=8
    )
    definition = FeatureViewDefinition(
        name=view,
        owner="bench",
        entity={"name": "entity_id", "type": "int64"},
        features=[{"name": n, "type": "float64"} for n in FEATURES],
        source={
            "format": "csv",
            "path": prefix,
            "event_timestamp": "event_time",
            "created_timestamp": "created_at",
        },
        ttl="30d",
    )
    service.apply(definition, actor="bench")
    runs = []
    end_ms = int(now.timestamp() * 1000)
    window: dict[str, Any] = {"start_ms": end_ms - 11 * 86400_000, "end_ms": end_ms}
    runs_to_make: tuple[tuple[str, dict[str, Any]], ...] = (
        ("first", {}),
        ("incremental", {}),  # unchanged data: nothing to read (the watermark)
        ("same window", window),  # the first run's window again: its objects were read, unchanged
        ("same window, full", window | {"full": True}),  # every object read again, compared: 0 writes
    )
    for kind, options in runs_to_make:
        wall, cpu, emulator = time.perf_counter(), time.process_time(), process_cpu_s(moto_pid)
        record = service.materialize(view, trigger="on_demand", **options)
        runs.append(
            {
                "kind": kind,
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "emulator_cpu_s": process_cpu_s(moto_pid) - emulator,
                "batch_write_requests": record.write_requests,
                "read_requests": record.read_requests,
                "items_written": record.items_written,
                "rows_read": record.rows_read,
            }
        )
    return runs


def timed(calls: dict[str, Any], repeats: int, warmup: int = 20) -> dict[str, dict[str, float]]:
    """p50/p95 of each call, measured in turns (one of each per round), so that every side sees
    the same load on a shared machine; what they print (the handler's EMF lines, as on Lambda)
    goes to a buffer."""
    import contextlib
    import io

    times: dict[str, list[float]] = {name: [] for name in calls}
    with contextlib.redirect_stdout(io.StringIO()):
        for _ in range(warmup):
            for call in calls.values():
                call()
        for _ in range(repeats):
            for name, call in calls.items():
                began = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - began)
    summaries = {name: summarize(samples) for name, samples in times.items()}
    return {
        name: {"p50_ms": 1000 * s.median, "p95_ms": 1000 * s.p95, "n": s.n} for name, s in summaries.items()
    }


def lookup_events(view: str, ids: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    from tests.support import load_event

    one = load_event("features/get_features.json", path_params={"view": view, "entity_id": str(ids[0])})
    many = load_event(
        "features/batch_get_features.json", path_params={"view": view}, body={"entity_ids": ids}
    )
    return one, many


FIRST_LOOKUP_OURS = """
import json, sys, time
started = time.perf_counter()
from functions.features import handler
from tests.support import FakeLambdaContext
event = json.loads(sys.argv[1])
response = handler.lambda_handler(event, FakeLambdaContext())
assert response["statusCode"] == 200, response
print(json.dumps({"in_process_s": time.perf_counter() - started}))
"""
FIRST_LOOKUP_BOTO3 = """
import json, sys, time
started = time.perf_counter()
import boto3
item = boto3.client("dynamodb").get_item(TableName=sys.argv[1], Key={"pk": {"S": sys.argv[2]}})["Item"]
print(json.dumps({"in_process_s": time.perf_counter() - started}))
"""


def fresh_process(argv: list[str], env: dict[str, str], runs: int = 5) -> float:
    walls = []
    for _ in range(runs):
        began = time.perf_counter()
        result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120, check=False)
        walls.append(time.perf_counter() - began)
        if result.returncode != 0:
            raise SystemExit(f"fresh process failed: {' '.join(argv[:3])}\n{result.stderr[-2000:]}")
    return statistics.median(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=300, help="timed warm lookups per case")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    if not FEAST_PYTHON.exists():
        raise SystemExit(
            f"{FEAST_PYTHON} is missing: run `make benchmark-features` (it builds Feast's virtualenv)"
        )

    busy = cpu_busy_percent()
    port = free_port()
    moto = start_moto(port)
    endpoint = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | environment(endpoint)
    os.environ.update(environment(endpoint))
    results: dict[str, Any] = {
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "busy_before_percent": busy},
        "entities": args.entities,
    }
    try:
        create_resources()
        now = datetime.now(UTC).replace(microsecond=0)
        with tempfile.TemporaryDirectory(prefix="bench-features-") as scratch:
            for rows_per_entity in (1, 3):
                case = f"{args.entities}x{rows_per_entity}"
                csv_path = Path(scratch) / f"{case}.csv"
                dataset(args.entities, rows_per_entity, now, csv_path)
                parquet = Path(scratch) / f"{case}.parquet"
                feast({"op": "to_parquet", "csv": str(csv_path), "parquet": str(parquet)}, env)
                print(f"[{case}] ours ...", file=sys.stderr, flush=True)
                ours = ours_materialize(f"bench_{rows_per_entity}", csv_path, now, moto.pid)
                print(f"[{case}] Feast ...", file=sys.stderr, flush=True)
                theirs = feast(
                    {
                        "op": "materialize",
                        "project": f"bench{rows_per_entity}",
                        "repo": f"{scratch}/feast{rows_per_entity}",
                        "endpoint": endpoint,
                        "parquet": str(parquet),
                        "start": (now - timedelta(days=11)).isoformat(),
                        "end": now.isoformat(),
                        "runs": ["window", "window", "incremental"],
                        "moto_pid": moto.pid,
                    },
                    env,
                )["runs"]
                results[case] = {
                    "ours": ours,
                    "feast": theirs,
                    "ratio_first_run_wall": ours[0]["wall_s"] / theirs[0]["wall_s"],
                }
                print(json.dumps(results[case], indent=1), file=sys.stderr, flush=True)
                if args.json:
                    args.json.write_text(json.dumps(results, indent=2))

            # ---- lookups (the 1-row-per-entity view and Feast project) ----
            import boto3

            from tests.support import FakeLambdaContext

            os.environ["VIEW_CACHE_TTL_SECONDS"] = "3600"
            from functions.features import handler

            ids = list(range(1, 101))
            one, many = lookup_events("bench_1", ids)
            assert handler.lambda_handler(one, FakeLambdaContext())["statusCode"] == 200
            assert handler.lambda_handler(many, FakeLambdaContext())["statusCode"] == 200
            client = boto3.client("dynamodb")
            keys = [{"pk": {"S": f"bench_1#{i}"}} for i in ids]
            lookups = timed(
                {
                    "ours_1": lambda: handler.lambda_handler(one, FakeLambdaContext()),
                    "floor_1": lambda: client.get_item(TableName=ONLINE, Key=keys[0]),
                },
                args.lookups,
            ) | timed(
                {
                    "ours_100": lambda: handler.lambda_handler(many, FakeLambdaContext()),
                    "floor_100": lambda: client.batch_get_item(RequestItems={ONLINE: {"Keys": keys}}),
                },
                args.lookups,
            )
            theirs = feast(
                {
                    "op": "lookup",
                    "repo": f"{scratch}/feast1",
                    "endpoint": endpoint,
                    "entities": ids,
                    "repeats": args.lookups,
                    "batch": [1, 100],
                },
                env,
            )
            lookups["feast_1"], lookups["feast_100"] = theirs["1"], theirs["100"]
            results["lookups"] = lookups

            child = env | {"VIEW_CACHE_TTL_SECONDS": "10"}
            results["first_lookup_s"] = {
                "ours": fresh_process([sys.executable, "-c", FIRST_LOOKUP_OURS, json.dumps(one)], child),
                "boto3": fresh_process(
                    [sys.executable, "-c", FIRST_LOOKUP_BOTO3, ONLINE, "bench_1#1"], child
                ),
                "feast": fresh_process(
                    [
                        str(FEAST_PYTHON),
                        str(FEAST_SIDE),
                        json.dumps({"op": "first_lookup", "repo": f"{scratch}/feast1", "entity": 1}),
                    ],
                    {k: v for k, v in child.items() if k != "PYTHONPATH"},
                ),
            }
    finally:
        moto.terminate()
        try:
            moto.wait(timeout=10)
        except subprocess.TimeoutExpired:
            moto.kill()
            moto.wait(timeout=10)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    report(results)


def report(results: dict[str, Any]) -> None:
    print(json.dumps(results, indent=2))
    n = results["entities"]
    machine = results["machine"]
    print(f"\nFeatures ({n:,} entities x 10 features; {machine['cpu']}, {machine['cores']} cores)")
    for rows in (1, 3):
        case = results[f"{n}x{rows}"]
        ours, theirs = case["ours"], case["feast"]
        first, peer = ours[0], theirs[0]
        print(
            f"  {rows} row(s)/entity: first run ours {first['wall_s']:.1f} s wall, "
            f"{first['cpu_s']:.1f} s CPU "
            f"(emulator {first['emulator_cpu_s']:.1f} s), {first['batch_write_requests']} writes; Feast "
            f"{peer['wall_s']:.1f} s, {peer['cpu_s']:.1f} s CPU (emulator {peer['emulator_cpu_s']:.1f} s), "
            f"{peer['batch_write_requests']} writes: {peer['wall_s'] / first['wall_s']:.1f}x less wall, "
            f"{peer['cpu_s'] / first['cpu_s']:.1f}x less client CPU"
        )
        print(
            f"    second runs, ours: incremental {ours[1]['batch_write_requests']} writes "
            f"({ours[1]['wall_s']:.2f} s), same window {ours[2]['batch_write_requests']} writes "
            f"({ours[2]['wall_s']:.2f} s), same window --full {ours[3]['batch_write_requests']} writes, "
            f"{ours[3]['read_requests']} reads ({ours[3]['wall_s']:.1f} s); Feast: same window "
            f"{theirs[1]['batch_write_requests']} writes ({theirs[1]['wall_s']:.1f} s), incremental "
            f"{theirs[2]['batch_write_requests']} writes ({theirs[2]['wall_s']:.1f} s)"
        )
    lookups = results["lookups"]
    for size in (1, 100):
        o, f, b = lookups[f"ours_{size}"], lookups[f"feast_{size}"], lookups[f"floor_{size}"]
        print(
            f"  lookup {size}: ours p50 {o['p50_ms']:.2f} / p95 {o['p95_ms']:.2f} ms, "
            f"Feast {f['p50_ms']:.2f} / {f['p95_ms']:.2f}, boto3 floor {b['p50_ms']:.2f} / "
            f"{b['p95_ms']:.2f}: ours/floor p50 "
            f"{o['p50_ms'] / b['p50_ms']:.2f}, ours/Feast {o['p50_ms'] / f['p50_ms']:.2f}"
        )
    first = results["first_lookup_s"]
    print(
        f"  fresh process to first lookup: ours {first['ours']:.2f} s, boto3 {first['boto3']:.2f} s, Feast "
        f"{first['feast']:.2f} s: ours/Feast {first['ours'] / first['feast']:.2f}"
    )


if __name__ == "__main__":
    main()
