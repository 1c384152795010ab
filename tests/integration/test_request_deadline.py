"""One deadline per request: a dependency that does not answer is a 503 with Retry-After
while the function can still answer, never a Lambda timeout (API Gateway's 502)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

import pytest

from mlops_core.errors import Unavailable
from mlops_core.storage import clients, deadline
from mlops_core.storage.aws_http import AwsServiceError
from mlops_core.storage.signed_reads import DynamoDBReader
from mlops_core.storage.sigv4 import Credentials
from tests.integration.conftest import call
from tests.support import FakeLambdaContext, body, header, load_event


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    server.close()


@dataclass
class ShortContext(FakeLambdaContext):
    remaining_ms: int = 10_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def test_a_signed_read_never_outlives_the_deadline(silent_endpoint: str) -> None:
    reader = DynamoDBReader(
        region="us-east-1",
        credentials=Credentials("AKIDEXAMPLE", "secret", None),
        endpoint_url=silent_endpoint,
    )
    started = time.monotonic()
    with deadline.request_deadline(0.8), pytest.raises(AwsServiceError):
        reader.get_item(TableName="t", Key={"pk": {"S": "a"}, "sk": {"S": "b"}})
    # Without the deadline: 3 attempts x a 5 s read timeout.
    assert time.monotonic() - started < 1.5


def test_a_silent_metadata_table_is_503_with_retry_after_within_the_functions_time(
    inference: ModuleType, silent_endpoint: str, moto_endpoint: str
) -> None:
    clients.send_reads_to(silent_endpoint)
    try:
        started = time.monotonic()
        response = inference.lambda_handler(
            load_event("inference/predict.json"), ShortContext(remaining_ms=2000)
        )
        elapsed = time.monotonic() - started
    finally:
        clients.send_reads_to(moto_endpoint)
    assert response["statusCode"] == 503
    assert header(response, "Retry-After") is not None
    assert "127.0.0.1" not in body(response)["message"]
    assert elapsed < 2.0  # inside the function's 2 s: it answered, Lambda did not time out


def test_a_boto3_attempt_that_could_outlast_the_deadline_is_not_started(aws: None) -> None:
    table = clients.client("dynamodb")
    with deadline.request_deadline(1.0), pytest.raises(Unavailable, match="deadline"):
        table.describe_table(TableName="mlops-metadata-test")
    table.describe_table(TableName="mlops-metadata-test")  # no deadline outside a request


def test_every_route_runs_within_a_deadline_derived_from_the_remaining_time(registry_api: ModuleType) -> None:
    seen: list[float | None] = []
    original = registry_api.registry.list_models

    def spy() -> object:
        seen.append(deadline.remaining())
        return original()

    registry_api.registry.list_models = spy  # type: ignore[method-assign]
    try:
        response = call(registry_api, load_event("registry/list_models.json"))
    finally:
        registry_api.registry.list_models = original  # type: ignore[method-assign]
    assert response["statusCode"] == 200
    remaining = FakeLambdaContext().get_remaining_time_in_millis() / 1000
    assert seen and seen[0] is not None
    assert remaining - deadline.RESPONSE_MARGIN_S - 1 < seen[0] <= remaining - deadline.RESPONSE_MARGIN_S
    assert deadline.remaining() is None  # and it ends with the request
