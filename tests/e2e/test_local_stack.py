"""The README's first command, for real: `mlops up --demo` in a subprocess, then HTTP calls.

The stack trains the sample model with the state machine, promotes it and serves it;
the test then calls the API and the CLI as a user would, stops the stack with Ctrl-C
and checks that nothing is left running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e import stack_process
from tests.support import ROOT, ROW0

pytestmark = pytest.mark.e2e
MLOPS = stack_process.MLOPS


_free_port = stack_process.free_port  # (the names other modules import from here)
_env = stack_process.cli_env


def _nothing_listens_on(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return stack_process.stack_state_dir(tmp_path_factory, "local-stack")


@pytest.fixture(scope="module")
def local_stack(state_dir: Path) -> Iterator[dict[str, Any]]:
    """`mlops up --demo`, this module's own (tests/e2e/stack_process.py)."""
    with stack_process.running_stack(state_dir, "--demo", ready_within=240) as stack:
        yield stack


def test_demo_trains_promotes_and_serves_over_http(local_stack: dict[str, Any]) -> None:
    print(f"\ncommand to first successful prediction: {local_stack['seconds']:.1f} s")
    assert "registered breast-cancer v1" in local_stack["output"]
    assert "promoted v1 to production" in local_stack["output"]

    response = requests.post(
        f"{local_stack['api']}/models/breast-cancer/predict",
        json={"instances": [ROW0]},
        headers={"x-api-key": local_stack["key"]},
        timeout=10,
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["model_version"] == 1
    assert result["predictions"] == [0]  # the first sample row is a malignant tumour
    assert result["probabilities"][0][0] > 0.9


def test_the_gateway_answers_like_api_gateway(local_stack: dict[str, Any]) -> None:
    api = local_stack["api"]
    assert (
        requests.post(
            f"{api}/models/breast-cancer/predict", json={"instances": [ROW0]}, timeout=10
        ).status_code
        == 403
    )
    unknown = requests.get(f"{api}/no/such/route", timeout=10)
    assert unknown.status_code == 404
    assert requests.delete(f"{api}/models", timeout=10).status_code == 404
    bad = requests.post(
        f"{api}/models/breast-cancer/predict",
        data="{not json",
        headers={"x-api-key": local_stack["key"], "Content-Type": "application/json"},
        timeout=10,
    )
    assert bad.status_code == 400
    assert requests.get(f"{api}/runs/no-such-run", timeout=10).status_code == 404


def _mlops(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI against the module's stack; ``--json`` unless ``args`` start with ``--table``."""
    table = args[:1] == ("--table",)
    return subprocess.run(
        [*MLOPS, *(args[1:] if table else ("--json", *args))],
        check=False,
        cwd=ROOT,
        env=_env(state_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_reads_the_running_stack(local_stack: dict[str, Any], state_dir: Path) -> None:
    def mlops(*args: str) -> subprocess.CompletedProcess[str]:
        return _mlops(state_dir, *args)

    models = mlops("models", "list")
    assert models.returncode == 0, models.stderr
    assert [m["name"] for m in json.loads(models.stdout)] == ["breast-cancer"]

    predicted = mlops("predict", "breast-cancer", "--instances", json.dumps([ROW0]))
    assert json.loads(predicted.stdout)["model_version"] == 1

    invoked = mlops("invoke", "inference", str(ROOT / "events/inference/health.json"))
    assert invoked.returncode == 0, invoked.stderr
    assert json.loads(json.loads(invoked.stdout)["body"])["status"] == "ok"

    trail = json.loads(mlops("models", "audit", "breast-cancer").stdout)
    # (Routing changes by another test of this module may sit on top.)
    assert [r["action"] for r in trail if r["action"] != "set_routing"] == ["promote", "register"]
    assert trail[0]["actor"].endswith("assumed-role/LocalDeveloper/local")
    no_previous = mlops("models", "rollback", "breast-cancer")
    assert no_previous.returncode == 1
    assert "no previous version to roll back to" in no_previous.stderr
    card = _mlops(state_dir, "--table", "models", "card", "breast-cancer", "1")
    assert card.stdout.startswith("# Model card: breast-cancer v1"), card.stderr

    unknown = mlops("frobnicate")
    assert unknown.returncode == 2
    assert "No such command" in unknown.stderr


def test_port_in_use_is_a_clear_error_and_starts_nothing(
    local_stack: dict[str, Any], state_dir: Path
) -> None:
    api_port, _ = local_stack["ports"]
    result = subprocess.run(
        [*MLOPS, "up", "--api-port", str(api_port), "--moto-port", str(_free_port())],
        check=False,
        cwd=ROOT,
        env=_env(state_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert f"port {api_port}" in result.stderr and "already in use" in result.stderr


def test_openapi_and_swagger_ui_are_served_locally(local_stack: dict[str, Any]) -> None:
    api = local_stack["api"]
    document = requests.get(f"{api}/_local/openapi.json", timeout=10).json()
    assert document["servers"] == [{"url": api, "description": "the local stack"}]
    assert "/models/{name}/predict" in document["paths"]
    page = requests.get(f"{api}/_local/docs/", timeout=10)
    assert page.status_code == 200
    assert "swagger-ui-bundle.js" in page.text
    assert requests.get(f"{api}/_local/docs/swagger-ui-bundle.js", timeout=10).status_code == 200


CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_swagger_ui_renders_in_headless_chromium(local_stack: dict[str, Any], tmp_path: Path) -> None:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=15000",
        "--window-size=1280,1600",
    ]
    url = f"{local_stack['api']}/_local/docs/"
    screenshot = tmp_path / "swagger.png"
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    shot = subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={screenshot}", url], capture_output=True, timeout=120, check=False
    )

    # Rendered by Swagger UI's JavaScript, not present in the page we serve.
    assert "Serverless MLOps API" in dom.stdout, dom.stderr[-2000:]
    assert "/models/{name}/predict" in dom.stdout
    assert shot.returncode == 0
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 30_000  # a blank 1280x1600 page is a few KB
    target = os.environ.get("MLOPS_SCREENSHOT_DIR")
    if target:
        shutil.copy(screenshot, Path(target) / "swagger-ui.png")


def test_thirty_two_concurrent_registrations_over_http_never_corrupt_artifacts(
    local_stack: dict[str, Any], state_dir: Path
) -> None:
    """Every 201's artifact verifies, every loser is a 409, nothing else is written. (The
    local stack runs one request at a time per function, like one Lambda environment;
    registrations racing in many environments are tested against the registry itself.)"""
    import hashlib
    from concurrent.futures import ThreadPoolExecutor

    import onnx

    from tests.support import local_stack_client, trained_model

    description = json.loads((state_dir / "endpoint.json").read_text())
    s3 = local_stack_client("s3", description)
    bucket = description["artifacts_bucket"]
    _, data, signature = trained_model("logistic_regression")
    for i in range(32):
        model = onnx.load_model_from_string(data)
        model.doc_string = f"concurrent {i}"
        s3.put_object(Bucket=bucket, Key=f"uploads/race/{i}/model.onnx", Body=model.SerializeToString())
        s3.put_object(Bucket=bucket, Key=f"uploads/race/{i}/signature.json", Body=signature.model_dump_json())

    def register(i: int) -> requests.Response:
        return requests.post(
            f"{local_stack['api']}/models/race/versions",
            json={"artifact_key": f"uploads/race/{i}/model.onnx", "run_id": f"race-{i}"},
            timeout=60,
        )

    with ThreadPoolExecutor(max_workers=32) as pool:
        responses = list(pool.map(register, range(32)))

    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {201, 409}, [r.text for r in responses if r.status_code not in (201, 409)]
    created = [r.json() for r in responses if r.status_code == 201]
    assert created, statuses
    for version in created:
        artifact = version["artifact"]
        pinned = {"VersionId": artifact["s3_version_id"]} if artifact["s3_version_id"] else {}
        stored = s3.get_object(Bucket=bucket, Key=artifact["key"], **pinned)
        assert hashlib.sha256(stored["Body"].read()).hexdigest() == artifact["sha256"]
    listed = requests.get(f"{local_stack['api']}/models/race/versions", timeout=10).json()["versions"]
    print(
        sorted((v["version"], v["run_id"]) for v in created),
        sorted((v["version"], v["run_id"]) for v in listed),
    )
    assert sorted(v["version"] for v in listed) == sorted(v["version"] for v in created)
    print(f"\n32 concurrent registrations: {statuses.count(201)} x 201, {statuses.count(409)} x 409")


def test_predictions_over_http_are_captured_to_the_log_and_s3(
    local_stack: dict[str, Any], state_dir: Path
) -> None:
    """The template's log subscription runs locally: the capture function writes each
    prediction to the prediction log and to capture/ in S3 within seconds."""
    from tests.support import local_stack_client

    response = requests.post(
        f"{local_stack['api']}/models/breast-cancer/predict",
        json={"instances": [ROW0, ROW0]},
        headers={"x-api-key": local_stack["key"]},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    ids = response.json()["prediction_ids"]
    description = json.loads((state_dir / "endpoint.json").read_text())
    dynamodb = local_stack_client("dynamodb", description)
    (table,) = [t for t in dynamodb.list_tables()["TableNames"] if "Predictions" in t]
    s3 = local_stack_client("s3", description)

    found: list[dict[str, Any]] = []
    until = time.monotonic() + 20
    while time.monotonic() < until and len(found) < len(ids):
        found = [
            item
            for prediction_id in ids
            if (
                item := dynamodb.get_item(
                    TableName=table,
                    Key={"pk": {"S": f"PREDICTION#{prediction_id}"}, "sk": {"S": "PREDICTION"}},
                ).get("Item")
            )
        ]
        time.sleep(0.5)
    assert len(found) == len(ids)
    assert {item["model_name"]["S"] for item in found} == {"breast-cancer"}
    listed = s3.list_objects_v2(Bucket=description["artifacts_bucket"], Prefix="capture/breast-cancer/")
    captured = [
        json.loads(line)["prediction_id"]
        for obj in listed.get("Contents", [])
        for line in s3.get_object(Bucket=description["artifacts_bucket"], Key=obj["Key"])["Body"]
        .read()
        .splitlines()
    ]
    assert set(ids) <= set(captured)


def test_routing_is_set_served_and_counted_over_http(local_stack: dict[str, Any], state_dir: Path) -> None:
    """`mlops routing set` changes what the inference function serves within its cache TTL;
    the response names how it was routed; the capture function counts the variant's traffic,
    which `mlops routing show` reports."""

    def mlops(*args: str) -> subprocess.CompletedProcess[str]:
        return _mlops(state_dir, *args)

    refused = mlops("routing", "set", "breast-cancer", "--split", "1=0.5,9=0.5")
    assert refused.returncode == 1 and "has no version 9" in refused.stderr
    usage = mlops("routing", "set", "breast-cancer", "--split", "1=0.5", "--bandit", "1,2")
    assert usage.returncode == 2
    stored = mlops("routing", "set", "breast-cancer", "--split", "1=1.0", "--reason", "e2e")
    assert stored.returncode == 0, stored.stderr
    revision = json.loads(stored.stdout)["revision"]

    answer: dict[str, Any] = {}
    until = time.monotonic() + 30  # the alias cache TTL is 10 s
    while time.monotonic() < until and answer.get("routed_by") != "split":
        response = requests.post(
            f"{local_stack['api']}/models/breast-cancer/predict",
            json={"instances": [ROW0], "request_key": "user-7"},
            headers={"x-api-key": local_stack["key"]},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        answer = response.json()
        time.sleep(0.5)
    assert (answer["routed_by"], answer["policy_revision"], answer["model_version"]) == ("split", revision, 1)

    requests_counted = 0
    until = time.monotonic() + 20
    while time.monotonic() < until and not requests_counted:
        summary = json.loads(mlops("routing", "show", "breast-cancer").stdout)
        requests_counted = {v["version"]: v for v in summary["variants"]}[1]["totals"]["requests"]
        time.sleep(0.5)
    assert requests_counted >= 1
    assert summary["history"][0]["reason"] == "e2e"
    table = _mlops(state_dir, "--table", "routing", "show", "breast-cancer")
    assert table.returncode == 0 and "split v1 100%" in table.stdout, table.stderr
    # Back to what the other tests of this module expect: production serves.
    assert mlops("routing", "set", "breast-cancer", "--alias", "production").returncode == 0


def test_feedback_over_http_counts_once_on_the_arm_that_served(
    local_stack: dict[str, Any], state_dir: Path
) -> None:
    """The must-show over HTTP: one feedback sent 100 times (50 at once) through
    POST /feedback, the stream's records then delivered twice more: the arm rises by one."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.support import local_stack_client

    api, key = local_stack["api"], local_stack["key"]
    predicted = requests.post(
        f"{api}/models/breast-cancer/predict",
        json={"instances": [ROW0]},
        headers={"x-api-key": key},
        timeout=10,
    ).json()
    (prediction_id,), version = predicted["prediction_ids"], predicted["model_version"]

    def send(_: int) -> requests.Response:
        return requests.post(
            f"{api}/feedback",
            json={"prediction_id": prediction_id, "reward": 1},
            headers={"x-api-key": key},
            timeout=30,
        )

    first = send(0)
    until = time.monotonic() + 20
    while first.status_code == 409 and time.monotonic() < until:  # not captured yet
        time.sleep(0.3)
        first = send(0)
    assert first.status_code == 200, first.text
    with ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(pool.map(send, range(50)))
    answers += [send(i) for i in range(49)]
    assert all(a.status_code == 200 for a in answers), {a.status_code for a in answers}
    assert all(a.json()["duplicate"] for a in answers)

    description = json.loads((state_dir / "endpoint.json").read_text())
    dynamodb = local_stack_client("dynamodb", description)
    key_of_arms = {"pk": {"S": "MODEL#breast-cancer"}, "sk": {"S": "ARMS"}}

    def arm() -> tuple[float, float] | None:
        item = dynamodb.get_item(
            TableName=description["metadata_table"], Key=key_of_arms, ConsistentRead=True
        )
        counts = item.get("Item", {}).get("arms", {}).get("M", {}).get(str(version))
        return None if counts is None else tuple(float(n["N"]) for n in counts["L"])  # type: ignore[return-value]

    until = time.monotonic() + 20
    while arm() is None and time.monotonic() < until:
        time.sleep(0.2)
    assert arm() == (1.0, 0.0)

    # Replay: the stream's FEEDBACK inserts delivered to the rewards function twice more.
    (predictions,) = [t for t in dynamodb.list_tables()["TableNames"] if "Predictions" in t]
    streams = local_stack_client("dynamodbstreams", description)
    stream_arn = dynamodb.describe_table(TableName=predictions)["Table"]["LatestStreamArn"]
    records = []
    for shard in streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        got = streams.get_records(ShardIterator=iterator, Limit=1000)["Records"]
        records += [
            r for r in got if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["sk"]["S"] == "FEEDBACK"
        ]
    assert records
    payload = json.loads(json.dumps({"Records": records}, default=str))
    (function,) = [name for logical_id, name in description["functions"].items() if "Rewards" in logical_id]
    lambda_client = local_stack_client("lambda", description)
    for _ in range(2):
        answer = lambda_client.invoke(FunctionName=function, Payload=json.dumps(payload))
        assert json.loads(answer["Payload"].read()) == {"batchItemFailures": []}
    assert arm() == (1.0, 0.0)


def test_ctrl_c_stops_the_stack_and_frees_its_ports(local_stack: dict[str, Any], state_dir: Path) -> None:
    process: subprocess.Popen[str] = local_stack["process"]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    assert all(_nothing_listens_on(port) for port in local_stack["ports"])
    assert not (state_dir / "endpoint.json").exists()
