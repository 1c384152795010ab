"""Credentials as Lambda gives them under SnapStart: the container credentials endpoint.

Both paths are exercised against a fake endpoint on 127.0.0.1: the signed readers' own
client for it (``ContainerCredentials``: fetch, cache, refresh before expiry, one fetch for
many threads) and boto3's, which the readers leave such environments to when switched off.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from mlops_core.errors import Unavailable
from mlops_core.storage import clients
from mlops_core.storage.aws_http import AwsServiceError, HttpRequest, HttpResponse
from mlops_core.storage.container_credentials import (
    ADVISORY_REFRESH_S,
    MANDATORY_REFRESH_S,
    ContainerCredentials,
    credentials_uri_allowed,
)
from mlops_core.storage.signed_reads import S3Reader, readers_from_environment
from mlops_core.storage.sigv4 import Credentials
from tests.loopback import loopback_server

TOKEN = "lambda-authorization-token"
# Credentials the fake endpoint hands out expire hours after the real now: the readers that run on
# the wall clock must see them valid (a fixed date here failed once that date came).
START = datetime.now(UTC).replace(microsecond=0)


class FakeCredentialsEndpoint(http.server.BaseHTTPRequestHandler):
    """Answers like Lambda's endpoint: the role's credentials for the right Authorization."""

    protocol_version = "HTTP/1.1"
    expected_token: ClassVar[str] = TOKEN
    expiration: ClassVar[datetime] = START + timedelta(hours=6)
    failures_left: ClassVar[int] = 0
    delay_s: ClassVar[float] = 0.0
    calls: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.calls.append({name.lower(): value for name, value in self.headers.items()})
        time.sleep(self.delay_s)
        if self.failures_left > 0:
            type(self).failures_left -= 1
            self._answer(500, {"message": "try again"})
        elif self.headers.get("Authorization") != self.expected_token:
            self._answer(401, {"message": "bad token"})
        else:
            number = len(self.calls)
            self._answer(
                200,
                {
                    "AccessKeyId": f"ASIAFAKE{number:08d}",
                    "SecretAccessKey": f"secret-{number}",
                    "Token": f"session-token-{number}",
                    "Expiration": self.expiration.strftime("%Y-%m-%dT%H:%M:%SZ"),
                },
            )

    def _answer(self, status: int, document: dict[str, str]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def endpoint() -> Iterator[str]:
    handler = FakeCredentialsEndpoint
    handler.calls, handler.failures_left, handler.delay_s = [], 0, 0.0
    handler.expected_token, handler.expiration = TOKEN, START + timedelta(hours=6)
    with loopback_server(handler) as url:
        yield f"{url}/2018-06-01/credentials"


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def snapstart_environment(uri: str) -> dict[str, str]:
    """What a SnapStart function's environment holds: no key variables, the endpoint instead."""
    return {
        "AWS_REGION": "eu-west-1",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": uri,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": TOKEN,
    }


def source(uri: str, clock: Clock | None = None, **kwargs: Any) -> ContainerCredentials:
    return ContainerCredentials(uri, token=TOKEN, clock=clock or Clock(), sleep=lambda _: None, **kwargs)


# ---- the signed readers' own client ---------------------------------------------------------


def test_readers_sign_with_credentials_fetched_from_the_endpoint(endpoint: str) -> None:
    readers = readers_from_environment(snapstart_environment(endpoint))
    assert readers is not None
    dynamodb, s3 = readers
    assert isinstance(dynamodb.credentials, ContainerCredentials)
    assert s3.credentials is dynamodb.credentials  # one cache for both readers
    sent: list[HttpRequest] = []

    def transport(request: HttpRequest) -> HttpResponse:
        sent.append(request)
        return HttpResponse(200, {}, b"{}")

    dynamodb.transport = transport
    assert FakeCredentialsEndpoint.calls == []  # nothing fetched before the first request
    dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
    dynamodb.get_item(TableName="t", Key={"pk": {"S": "b"}})

    assert len(FakeCredentialsEndpoint.calls) == 1  # cached
    assert FakeCredentialsEndpoint.calls[0]["authorization"] == TOKEN
    for request in sent:
        assert "Credential=ASIAFAKE00000001/" in request.headers["authorization"]
        assert request.headers["x-amz-security-token"] == "session-token-1"


def test_credentials_are_refreshed_before_they_expire(endpoint: str) -> None:
    clock = Clock()
    FakeCredentialsEndpoint.expiration = START + timedelta(hours=1)
    credentials = source(endpoint, clock)
    assert credentials.current().access_key == "ASIAFAKE00000001"

    clock.now = FakeCredentialsEndpoint.expiration - timedelta(seconds=ADVISORY_REFRESH_S + 1)
    assert credentials.current().access_key == "ASIAFAKE00000001"  # not yet
    FakeCredentialsEndpoint.expiration += timedelta(hours=1)
    clock.now += timedelta(seconds=2)  # inside the advisory window: refreshed
    assert credentials.current().access_key == "ASIAFAKE00000002"
    assert len(FakeCredentialsEndpoint.calls) == 2


def test_a_failed_refresh_keeps_current_credentials_until_the_mandatory_window(endpoint: str) -> None:
    clock = Clock()
    credentials = source(endpoint, clock)
    first = credentials.current()
    expiry = FakeCredentialsEndpoint.expiration

    clock.now = expiry - timedelta(seconds=ADVISORY_REFRESH_S - 60)  # advisory window
    FakeCredentialsEndpoint.failures_left = 99
    assert credentials.current() == first  # the endpoint failed: still signing with these

    clock.now = expiry - timedelta(seconds=MANDATORY_REFRESH_S - 60)  # mandatory window
    with pytest.raises(AwsServiceError) as raised:
        credentials.current()
    assert raised.value.code == "CredentialsUnavailable"
    assert "500" in raised.value.message
    with pytest.raises(Unavailable, match="unavailable"), clients.translate_errors("metadata table"):
        raise raised.value


def test_transient_endpoint_failures_are_retried(endpoint: str) -> None:
    FakeCredentialsEndpoint.failures_left = 2
    assert source(endpoint).current().access_key == "ASIAFAKE00000003"


def test_a_wrong_token_is_an_error_that_names_no_secret(endpoint: str) -> None:
    FakeCredentialsEndpoint.expected_token = "another"
    with pytest.raises(AwsServiceError) as raised:
        source(endpoint).current()
    assert raised.value.code == "CredentialsUnavailable"
    assert TOKEN not in str(raised.value)


def test_the_token_file_is_read_on_every_fetch(endpoint: str, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN)
    clock = Clock()
    credentials = ContainerCredentials(
        endpoint, token_file=str(token_file), clock=clock, sleep=lambda _: None
    )
    credentials.current()
    FakeCredentialsEndpoint.expected_token = "rotated"
    token_file.write_text("rotated")
    credentials.forget()
    assert credentials.current().access_key == "ASIAFAKE00000002"
    assert [call["authorization"] for call in FakeCredentialsEndpoint.calls] == [TOKEN, "rotated"]


def test_a_token_that_is_not_a_legal_header_value_is_refused_before_sending(endpoint: str) -> None:
    credentials = ContainerCredentials(endpoint, token="a\r\nX-Injected: 1", sleep=lambda _: None)
    with pytest.raises(AwsServiceError, match="not a legal header value"):
        credentials.current()
    assert FakeCredentialsEndpoint.calls == []


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        b'{"AccessKeyId": "A"}',
        b'{"AccessKeyId": "A", "SecretAccessKey": "s", "Token": "t", "Expiration": "tomorrow"}',
    ],
)
def test_an_unreadable_answer_is_an_error_that_does_not_echo_it(body: bytes) -> None:
    credentials = ContainerCredentials(
        "http://127.0.0.1:1/creds", transport=lambda _: HttpResponse(200, {}, body), sleep=lambda _: None
    )
    with pytest.raises(AwsServiceError) as raised:
        credentials.current()
    assert raised.value.code == "CredentialsUnavailable"
    assert body.decode() not in str(raised.value)


def test_long_lived_credentials_without_a_token_sign_without_one() -> None:
    document = {
        "AccessKeyId": "AKID",
        "SecretAccessKey": "s",
        "Token": None,
        "Expiration": "2126-01-01T00:00:00Z",
    }
    body = json.dumps(document).encode()
    credentials = ContainerCredentials(
        "http://127.0.0.1:1/creds", transport=lambda _: HttpResponse(200, {}, body), sleep=lambda _: None
    )
    assert credentials.current() == Credentials("AKID", "s", None)


def test_many_threads_needing_credentials_cause_one_fetch(endpoint: str) -> None:
    FakeCredentialsEndpoint.delay_s = 0.1
    credentials = source(endpoint)
    barrier = threading.Barrier(16)
    seen: list[str] = []

    def sign() -> None:
        barrier.wait()
        seen.append(credentials.current().access_key)

    threads = [threading.Thread(target=sign) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert seen == ["ASIAFAKE00000001"] * 16
    assert len(FakeCredentialsEndpoint.calls) == 1


def test_forget_makes_the_next_request_fetch_new_credentials(endpoint: str) -> None:
    credentials = source(endpoint)
    assert credentials.current().access_key == "ASIAFAKE00000001"
    credentials.forget()
    assert credentials.current().access_key == "ASIAFAKE00000002"


# ---- which environments the readers take, and which they leave to boto3 -------------------


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("http://127.0.0.1:9001/creds", True),
        ("http://127.0.0.2/creds", True),
        ("http://[::1]:9001/creds", True),
        ("http://localhost:9001/creds", True),
        ("http://169.254.170.2/v2/credentials/x", True),  # ECS
        ("http://169.254.170.23/v1/credentials", True),  # EKS Pod Identity
        ("http://[fd00:ec2::23]/v1/credentials", True),
        ("https://credentials.example/creds", True),
        ("http://10.0.0.7/creds", False),  # plain HTTP elsewhere: botocore refuses it too
        ("http://credentials.example/creds", False),
        ("ftp://127.0.0.1/creds", False),
        ("http:///creds", False),
    ],
)
def test_credentials_uris_are_allowed_where_botocore_allows_them(uri: str, allowed: bool) -> None:
    assert credentials_uri_allowed(uri) is allowed


@pytest.mark.parametrize(
    "change",
    [
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://10.0.0.7/creds"},
        {"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/x"},  # ECS: botocore's first choice
        {"AWS_PROFILE": "dev"},
        {"AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "AWS_ROLE_ARN": "arn:aws:iam::1:role/r"},
        {"AWS_CONTAINER_CREDENTIALS_FULL_URI": ""},
    ],
)
def test_other_credential_setups_are_left_to_boto3(change: dict[str, str]) -> None:
    environment = snapstart_environment("http://127.0.0.1:9/creds") | change
    assert readers_from_environment(environment) is None


@pytest.mark.parametrize("name", ["credentials", "config"])
def test_an_aws_file_in_home_is_left_to_boto3(name: str, tmp_path: Path) -> None:
    environment = snapstart_environment("http://127.0.0.1:9/creds") | {"HOME": str(tmp_path)}
    assert readers_from_environment(environment) is not None
    (tmp_path / ".aws").mkdir()
    (tmp_path / ".aws" / name).write_text("[default]\n")
    assert readers_from_environment(environment) is None


def test_keys_in_the_environment_win_over_the_endpoint_as_in_botocore() -> None:
    environment = snapstart_environment("http://127.0.0.1:9/creds") | {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "secret",
    }
    readers = readers_from_environment(environment)
    assert readers is not None
    assert readers[0].credentials == Credentials("AKIDENV", "secret", None)


# ---- through clients.reader: the signed path, and boto3's -----------------------------------


@pytest.fixture
def snapstart_env(endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # whatever ~/.aws the machine has
    for name, value in snapstart_environment(endpoint).items():
        monkeypatch.setenv(name, value)
    clients.reset_clients()
    yield endpoint
    clients.reset_clients()


def test_reader_uses_the_signed_readers_with_endpoint_credentials(snapstart_env: str) -> None:
    reader = clients.reader("s3")
    assert isinstance(reader, S3Reader)
    assert isinstance(reader.credentials, ContainerCredentials)
    assert reader.credentials.current().access_key == "ASIAFAKE00000001"


def test_switched_off_boto3_reads_the_same_endpoint(
    snapstart_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(clients.SIGNED_READS_ENV, "false")
    clients.reset_clients()
    s3 = clients.reader("s3")
    assert type(s3).__module__.startswith("botocore")
    captured: list[Any] = []

    class Sent(Exception):
        pass

    def capture(request: Any, **_: Any) -> None:
        captured.append(request)
        raise Sent

    s3.meta.events.register_first("before-send.s3", capture)
    with pytest.raises(Sent):
        s3.get_object(Bucket="mlops-artifacts", Key="models/m/1/model.onnx")
    (request,) = captured
    assert b"Credential=ASIAFAKE00000001/" in request.headers["authorization"]
    assert request.headers["X-Amz-Security-Token"] == b"session-token-1"
    assert FakeCredentialsEndpoint.calls[0]["authorization"] == TOKEN
