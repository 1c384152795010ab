"""Feast's side of benchmarks/features.py, run in Feast's own environment (.venv-feast).

Feast 0.67 cannot be installed beside the project's pins (benchmarks/README.md): this
script imports nothing of the project. It reads one JSON command on argv and prints one
JSON result on stdout:

    {"op": "materialize", "repo": DIR, "endpoint": URL, "parquet": FILE, "start": ISO, "end": ISO,
     "runs": ["window", "window", "incremental"]}
    {"op": "lookup", "repo": DIR, "endpoint": URL, "entities": [...], "repeats": N, "batch": [1, 100]}
    {"op": "first_lookup", "repo": DIR, "entity": ID}        (a fresh process: time to first answer)
"""

from __future__ import annotations

import json
import statistics
import sys
import time

STARTED = time.perf_counter()

FEATURES = [f"f{i}" for i in range(10)]


def repo_files(repo: str, endpoint: str, parquet: str, project: str) -> None:
    from pathlib import Path

    root = Path(repo)
    root.mkdir(parents=True, exist_ok=True)
    (root / "feature_store.yaml").write_text(
        f"project: {project}\n"
        f"registry: {root / 'registry.db'}\n"
        "provider: local\n"
        "online_store:\n"
        "  type: dynamodb\n"
        "  region: us-east-1\n"
        f"  endpoint_url: {endpoint}\n"
        "offline_store:\n"
        "  type: file\n"
        "entity_key_serialization_version: 3\n"
    )
    (root / "definitions.py").write_text(
        "from datetime import timedelta\n"
        "from feast import Entity, FeatureView, Field, FileSource\n"
        "from feast.types import Float64\n"
        "entity = Entity(name='entity', join_keys=['entity_id'])\n"
        f"source = FileSource(path={parquet!r}, timestamp_field='event_time',\n"
        "    created_timestamp_column='created_at')\n"
        "view = FeatureView(name='bench', entities=[entity], ttl=timedelta(days=30),\n"
        f"    schema=[Field(name=n, dtype=Float64) for n in {FEATURES!r}], source=source, online=True)\n"
    )


def process_cpu_s(pid: int) -> float:
    import os
    from pathlib import Path

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def store(repo: str):  # type: ignore[no-untyped-def]
    from feast import FeatureStore

    return FeatureStore(repo_path=repo)


def count_batch_writes() -> list[int]:
    import boto3

    boto3.setup_default_session()
    calls = [0]

    def counted(**_: object) -> None:
        calls[0] += 1

    boto3.DEFAULT_SESSION.events.register("before-call.dynamodb.BatchWriteItem", counted)  # type: ignore[union-attr]
    return calls


def materialize(command: dict) -> dict:
    from datetime import datetime

    calls = count_batch_writes()
    repo_files(command["repo"], command["endpoint"], command["parquet"], command["project"])
    import importlib.util

    spec = importlib.util.spec_from_file_location("definitions", f"{command['repo']}/definitions.py")
    definitions = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(definitions)  # type: ignore[union-attr]
    fs = store(command["repo"])
    fs.apply([definitions.entity, definitions.view])
    start, end = datetime.fromisoformat(command["start"]), datetime.fromisoformat(command["end"])
    runs = []
    for kind in command["runs"]:
        emulator = process_cpu_s(command["moto_pid"])
        before, wall, cpu = calls[0], time.perf_counter(), time.process_time()
        if kind == "window":
            fs.materialize(start_date=start, end_date=end)
        else:
            fs.materialize_incremental(end_date=end)
        runs.append(
            {
                "kind": kind,
                "wall_s": time.perf_counter() - wall,
                "cpu_s": time.process_time() - cpu,
                "emulator_cpu_s": process_cpu_s(command["moto_pid"]) - emulator,
                "batch_write_requests": calls[0] - before,
            }
        )
    return {"runs": runs}


def lookup(command: dict) -> dict:
    fs = store(command["repo"])
    features = [f"bench:{n}" for n in FEATURES]
    entities = command["entities"]
    results = {}
    for size in command["batch"]:
        rows = [{"entity_id": e} for e in entities[:size]]
        answer = fs.get_online_features(features=features, entity_rows=rows).to_dict()
        assert answer["f0"][0] is not None, answer
        times = []
        for _ in range(command["repeats"]):
            began = time.perf_counter()
            fs.get_online_features(features=features, entity_rows=rows).to_dict()
            times.append(time.perf_counter() - began)
        results[str(size)] = _percentiles(times)
    return results


def first_lookup(command: dict) -> dict:
    fs = store(command["repo"])
    answer = fs.get_online_features(
        features=[f"bench:{n}" for n in FEATURES], entity_rows=[{"entity_id": command["entity"]}]
    ).to_dict()
    assert answer["f0"][0] is not None, answer
    return {"in_process_s": time.perf_counter() - STARTED}


def to_parquet(command: dict) -> dict:
    """The same CSV as Feast's offline store reads it (Parquet; not timed)."""
    import pandas as pd

    frame = pd.read_csv(command["csv"])
    for column in ("event_time", "created_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame.to_parquet(command["parquet"], index=False)
    return {"rows": len(frame)}


def _percentiles(times: list[float]) -> dict:
    ordered = sorted(times)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))],
        "n": len(ordered),
    }


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    operations = {
        "materialize": materialize,
        "lookup": lookup,
        "first_lookup": first_lookup,
        "to_parquet": to_parquet,
    }
    operation = operations[request["op"]]
    print(json.dumps(operation(request)))
