"""Bandit reward updates on the local stack, for real: `mlops up` in a subprocess drives the
template's stream event source mapping itself (moto never does), so feedback written to the
prediction log reaches the model's ARMS item within seconds, exactly once.

Here the feedback is written as the feedback function writes it, straight to the stack's
moto (one conditional put, sent 100 times, 50 of them concurrently), to test the mapping on
its own; `tests/e2e/test_local_stack.py` sends it through `POST /feedback` on the demo stack.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.stack_process import running_stack, stack_state_dir
from tests.integration.rewards_support import feedback, record_feedback, stream_records
from tests.support import local_stack_client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running_stack(stack_state_dir(tmp_path_factory, "local-rewards")) as running:
        yield running


def _client_options(description: dict[str, Any]) -> dict[str, Any]:
    """boto3 client arguments for the stack's moto (leaving os.environ alone)."""
    return {
        "endpoint_url": description["moto_url"],
        "region_name": description["region"],
        "aws_access_key_id": "local",
        "aws_secret_access_key": "local",
        "aws_session_token": "local",
    }


def _arms(dynamodb: Any, table: str, model: str) -> dict[str, Any] | None:
    item = dynamodb.get_item(
        TableName=table, Key={"pk": {"S": f"MODEL#{model}"}, "sk": {"S": "ARMS"}}, ConsistentRead=True
    ).get("Item")
    return None if item is None else {"revision": item["revision"]["N"], "arms": item["arms"]}


def test_feedback_reaches_the_arm_within_seconds_and_a_replay_changes_nothing(stack: dict[str, Any]) -> None:
    description = stack["description"]
    options = _client_options(description)
    dynamodb = local_stack_client("dynamodb", description)
    (predictions,) = [t for t in dynamodb.list_tables()["TableNames"] if "Predictions" in t]
    metadata = description["metadata_table"]
    given = feedback("019ad8a3-1f40-7a2b-9c3d-4e5f60718293", version=3, reward=1.0, model="e2e")

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=50) as pool:
        sent = list(pool.map(lambda _: record_feedback(given, predictions, **options), range(50)))
    sent += [record_feedback(given, predictions, **options) for _ in range(50)]
    assert sent.count(True) == 1

    arms = None
    while arms is None and time.monotonic() - started < 15:
        time.sleep(0.1)
        arms = _arms(dynamodb, metadata, "e2e")
    seconds = time.monotonic() - started
    print(f"\nfeedback recorded -> ARMS counted by the local stream poller: {seconds:.2f} s")
    assert arms == {"revision": "1", "arms": {"M": {"3": {"L": [{"N": "1.0"}, {"N": "0.0"}]}}}}

    # Replay: the stream's records delivered to the function again, twice, through moto's Lambda.
    records = [r for r in stream_records(predictions, **options) if r["eventName"] == "INSERT"]
    (function,) = [name for logical_id, name in description["functions"].items() if "Rewards" in logical_id]
    lambda_client = local_stack_client("lambda", description)
    for _ in range(2):
        answer = lambda_client.invoke(
            FunctionName=function, Payload=json.dumps({"Records": records + records})
        )
        assert json.loads(answer["Payload"].read()) == {"batchItemFailures": []}
    time.sleep(2)  # what the poller would deliver meanwhile

    assert _arms(dynamodb, metadata, "e2e") == arms
    variant = dynamodb.get_item(
        TableName=metadata, Key={"pk": {"S": "MODEL#e2e"}, "sk": {"S": "VARIANT#000003"}}, ConsistentRead=True
    )["Item"]
    assert (variant["feedback"]["N"], variant["rewarded"]["N"]) == ("1", "1")


def test_the_stack_stops_cleanly_with_its_stream_poller(stack: dict[str, Any]) -> None:
    process: subprocess.Popen[str] = stack["process"]
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0
    log = Path(stack["state_dir"]) / "functions.log"
    assert "feedback counted" in log.read_text()
