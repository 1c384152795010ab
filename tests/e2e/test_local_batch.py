"""The issue's batch must-show, on the local stack (`mlops up --demo`, as a user: the CLI and
HTTP): 20 objects scored end to end by the template's Distributed Map, 1 % of their rows
malformed and reported by exactly their lines, and a sample of 1,000 output rows equal to
what POST /models/{name}/predict answers for the same rows.

The issue's 200,000 rows (20 objects x 10,000): the job itself takes 1-2 s on the local stack
(2 shared cores; docs/batch.md), well inside CI's budget. ``MLOPS_BATCH_E2E_ROWS_PER_OBJECT``
changes the size.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.batch_data import csv_object, rows
from tests.e2e import demo_stack
from tests.e2e import test_local_stack as local_stack_test
from tests.support import FEATURES, ROOT, local_stack_client

pytestmark = pytest.mark.e2e
MODEL = "breast-cancer"
OBJECTS = 20
ROWS_PER_OBJECT = int(os.environ.get("MLOPS_BATCH_E2E_ROWS_PER_OBJECT", "10000"))
SAMPLE = 1000

# The module's own stack, started as `mlops up --demo` ends (a copy of the run's trained demo).
state_dir = demo_stack.state_dir
local_stack = demo_stack.local_stack


def _mlops(state_dir: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*local_stack_test.MLOPS, "--json", *args],
        check=False,
        cwd=ROOT,
        env=local_stack_test._env(state_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_batch_job_scores_every_object_reports_malformed_rows_and_matches_real_time(
    local_stack: dict[str, Any], state_dir: Path, tmp_path: Path
) -> None:
    objects = []
    for i in range(OBJECTS):
        obj = csv_object(f"part-{i:02d}.csv", ROWS_PER_OBJECT, seed=1000 + i, malformed_share=0.01)
        (tmp_path / obj.key).write_bytes(obj.data)
        objects.append(obj)
    uploaded = _mlops(
        state_dir, "batch", "upload", *(str(tmp_path / o.key) for o in objects), "--prefix", "e2e"
    )
    assert uploaded.returncode == 0, uploaded.stderr
    uri = json.loads(uploaded.stdout)["input"]

    started = _mlops(
        state_dir, "batch", "start", MODEL, "--input", uri, "--wait", "--timeout", "1200", timeout=1300
    )

    assert started.returncode == 0, started.stderr + started.stdout
    job = json.loads(started.stdout)
    malformed = {(o.key, line) for o in objects for line in o.malformed}
    assert (job["status"], job["objects"], job["objects_failed"]) == ("succeeded", OBJECTS, 0)
    assert job["rows"] == OBJECTS * ROWS_PER_OBJECT
    assert job["rows_failed"] == len(malformed) == OBJECTS * round(ROWS_PER_OBJECT * 0.01)
    assert job["rows_scored"] == job["rows"] - len(malformed)
    print(f"\n{job['rows']:,} rows in {OBJECTS} objects: scored in {job['duration_seconds']} s")

    description = json.loads((state_dir / "endpoint.json").read_text())
    s3 = local_stack_client("s3", description)
    bucket = description["artifacts_bucket"]

    def read(key: str) -> str:
        return str(s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode())

    reported = set()
    for obj in objects:
        for line in read(f"{job['output_prefix']}errors/{obj.key}.jsonl").splitlines():
            reported.add((obj.key, json.loads(line)["line"]))
    assert reported == malformed

    shown = _mlops(state_dir, "batch", "show", job["job_id"])
    assert json.loads(shown.stdout)["rows_failed"] == len(malformed)
    listed = _mlops(state_dir, "batch", "list", "--model", MODEL)
    assert job["job_id"] in [j["job_id"] for j in json.loads(listed.stdout)]

    # A sample of 1,000 scored rows, predicted again over HTTP by the real-time API.
    rng = random.Random(7)
    scored = [
        (obj, row)
        for obj in objects
        for row in csv.DictReader(io.StringIO(read(f"{job['output_prefix']}predictions/{obj.key}")))
    ]
    sample = rng.sample(scored, SAMPLE)
    instances = [obj.rows[int(row["line"])] for obj, row in sample]
    response = requests.post(
        f"{local_stack['api']}/models/{MODEL}/predict",
        json={"instances": instances},
        headers={"x-api-key": local_stack["key"]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    real_time = response.json()
    assert real_time["model_version"] == job["version"]
    assert [int(row["prediction"]) for _, row in sample] == real_time["predictions"]
    classes = real_time["classes"]
    ours = np.array(
        [[float(row[f"probability_{c}"]) for c in classes] for _, row in sample], dtype=np.float32
    )
    assert np.array_equal(ours, np.array(real_time["probabilities"], dtype=np.float32))


def _parquet_object(n_rows: int, seed: int, null_rows: set[int]) -> tuple[bytes, dict[int, list[float]]]:
    """A Parquet object of breast-cancer-like rows (an id column first, the features in
    reverse order), a null in the first feature of each of ``null_rows`` (1-based); and the
    scored rows' values by row number."""
    arro3_core = pytest.importorskip("arro3.core", reason="the parquet extra (arro3-io) is not installed")
    arro3_io = pytest.importorskip("arro3.io")
    values = np.round(rows(n_rows, seed), 4)
    columns: dict[str, Any] = {
        "id": arro3_core.Array(list(range(n_rows)), type=arro3_core.DataType.int64()),
    }
    for j, name in reversed(list(enumerate(FEATURES))):
        column = [None if j == 0 and i + 1 in null_rows else float(v) for i, v in enumerate(values[:, j])]
        columns[name] = arro3_core.Array(column, type=arro3_core.DataType.float64())
    out = io.BytesIO()
    arro3_io.write_parquet(arro3_core.Table.from_pydict(columns), out)
    scored = {i + 1: values[i].tolist() for i in range(n_rows) if i + 1 not in null_rows}
    return out.getvalue(), scored


def test_a_parquet_prefix_is_scored_as_real_time_scores_it_and_a_corrupt_object_is_named(
    local_stack: dict[str, Any], state_dir: Path, tmp_path: Path
) -> None:
    objects = {}
    for i in range(10):
        data, scored = _parquet_object(2000, seed=2000 + i, null_rows={7, 1500})
        (tmp_path / f"part-{i:02d}.parquet").write_bytes(data)
        objects[f"part-{i:02d}.parquet"] = scored
    (tmp_path / "broken.parquet").write_bytes(b"PAR1" + bytes(range(200)) + b"PAR1")  # 1 of 11: tolerated
    files = [str(tmp_path / name) for name in [*objects, "broken.parquet"]]
    uploaded = _mlops(state_dir, "batch", "upload", *files, "--prefix", "e2e-parquet")
    assert uploaded.returncode == 0, uploaded.stderr

    started = _mlops(
        state_dir,
        "batch",
        "start",
        MODEL,
        "--input",
        json.loads(uploaded.stdout)["input"],
        "--wait",
        timeout=600,
    )

    assert started.returncode == 0, started.stderr + started.stdout
    job = json.loads(started.stdout)
    assert (job["status"], job["objects"], job["objects_failed"]) == ("succeeded", 11, 1)
    assert [(o["key"], o["error"]) for o in job["failed_objects"]] == [
        ("broken.parquet", "ObjectNotScorable")
    ]
    assert "not a readable Parquet file" in job["failed_objects"][0]["cause"]
    assert (job["rows"], job["rows_failed"]) == (10 * 2000, 10 * 2)
    assert {(r["line"], r["reason"]) for r in job["failed_rows"]} == {
        (7, f"'{FEATURES[0]}' is null"),
        (1500, f"'{FEATURES[0]}' is null"),
    }

    description = json.loads((state_dir / "endpoint.json").read_text())
    s3 = local_stack_client("s3", description)
    sample = []
    for key, scored in objects.items():
        body = s3.get_object(
            Bucket=description["artifacts_bucket"], Key=f"{job['output_prefix']}predictions/{key}.csv"
        )
        output = list(csv.DictReader(io.StringIO(body["Body"].read().decode())))
        assert [int(row["line"]) for row in output] == sorted(scored)
        sample += [(scored[int(row["line"])], row) for row in output[::100]]
    response = requests.post(
        f"{local_stack['api']}/models/{MODEL}/predict",
        json={"instances": [values for values, _ in sample]},
        headers={"x-api-key": local_stack["key"]},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    real_time = response.json()
    assert [int(row["prediction"]) for _, row in sample] == real_time["predictions"]
    ours = [[float(row[f"probability_{c}"]) for c in real_time["classes"]] for _, row in sample]
    assert np.array_equal(
        np.array(ours, dtype=np.float32), np.array(real_time["probabilities"], dtype=np.float32)
    )
