"""The signed readers (mlops_core.storage.signed_reads): signatures equal botocore's, endpoints and
addressing as boto3 chooses them, retries, error codes and response shapes. No network
except a loopback server of the test's own."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from mlops_core.errors import Conflict, Invalid, NotFound, Unavailable
from mlops_core.storage import clients
from mlops_core.storage.aws_http import AwsServiceError, HttpRequest, HttpResponse, HttpTransport
from mlops_core.storage.signed_reads import DynamoDBReader, S3Reader, readers_from_environment
from mlops_core.storage.sigv4 import EMPTY_SHA256, Credentials, sign
from tests.loopback import loopback_server

NOW = datetime(2026, 11, 27, 13, 45, 10, tzinfo=UTC)
CREDENTIALS = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session/token+==")
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "secret",
    "AWS_SESSION_TOKEN": "token",
    "AWS_REGION": "eu-west-1",
}


def botocore_authorization(
    *, service: str, method: str, url: str, headers: dict[str, str], body: bytes, token: str | None
) -> tuple[str, dict[str, str]]:
    """What botocore's own signer puts in ``Authorization`` for the same request at NOW."""
    from unittest import mock

    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials as BotocoreCredentials

    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    signer_class = S3SigV4Auth if service == "s3" else SigV4Auth
    signer = signer_class(
        BotocoreCredentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, token), service, "eu-west-1"
    )
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        signer.add_auth(request)
    return request.headers["Authorization"], {k.lower(): v for k, v in request.headers.items()}


@pytest.mark.parametrize("token", ["session/token+==", None])
def test_dynamodb_signature_is_botocores(token: str | None) -> None:
    body = json.dumps(
        {"TableName": "t", "Key": {"pk": {"S": "MODEL#a b"}, "sk": {"S": "ALIAS#production"}}}
    ).encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"}
    expected, _ = botocore_authorization(
        service="dynamodb",
        method="POST",
        url="https://dynamodb.eu-west-1.amazonaws.com/",
        headers=headers,
        body=body,
        token=token,
    )
    ours = sign(
        method="POST",
        host="dynamodb.eu-west-1.amazonaws.com",
        path="/",
        query={},
        headers=headers,
        payload_sha256=hashlib.sha256(body).hexdigest(),
        service="dynamodb",
        region="eu-west-1",
        credentials=Credentials(CREDENTIALS.access_key, CREDENTIALS.secret_key, token),
        now=NOW,
    )
    assert ours["authorization"] == expected


@pytest.mark.parametrize(
    ("key", "version_id"),
    [
        ("models/breast-cancer/3/model.onnx", "3sL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"),
        ("uploads/a model (final)/ünïcode+plus=eq&amp;~tilde.onnx", None),
        ("datasets/x/2026-11-27T13:45:10Z/part 0.csv", "null"),
    ],
)
def test_s3_signature_is_botocores_for_awkward_keys_and_version_ids(key: str, version_id: str | None) -> None:
    reader = S3Reader(
        region="eu-west-1", credentials=CREDENTIALS, transport=lambda r: HttpResponse(200, {}, b"")
    )
    url, path = reader._location("mlops-artifacts", key)
    query = {"versionId": version_id} if version_id else {}
    if version_id:
        url += "?versionId=" + version_id.replace("+", "%2B").replace("=", "%3D")
    expected, sent = botocore_authorization(
        service="s3",
        method="GET",
        url=url,
        headers={"X-Amz-Content-SHA256": EMPTY_SHA256},
        body=b"",
        token=CREDENTIALS.token,
    )
    ours = sign(
        method="GET",
        host="mlops-artifacts.s3.eu-west-1.amazonaws.com",
        path=path,
        query=query,
        headers={"x-amz-content-sha256": sent["x-amz-content-sha256"]},
        payload_sha256=sent["x-amz-content-sha256"],
        service="s3",
        region="eu-west-1",
        credentials=CREDENTIALS,
        now=NOW,
    )
    assert ours["authorization"] == expected


def test_a_port_other_than_the_schemes_default_is_part_of_the_signed_host() -> None:
    seen: list[HttpRequest] = []

    def transport(request: HttpRequest) -> HttpResponse:
        seen.append(request)
        return HttpResponse(200, {}, b"{}")

    DynamoDBReader(
        region="us-east-1", credentials=CREDENTIALS, endpoint_url="http://127.0.0.1:5000", transport=transport
    ).get_item(TableName="t", Key={"pk": {"S": "a"}})
    DynamoDBReader(
        region="us-east-1",
        credentials=CREDENTIALS,
        endpoint_url="https://ddb.example:443",
        transport=transport,
    ).get_item(TableName="t", Key={"pk": {"S": "a"}})
    assert [r.headers["host"] for r in seen] == ["127.0.0.1:5000", "ddb.example"]
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"
        in (seen[0].headers["authorization"])
    )


# ---- endpoints, as boto3 picks them ---------------------------------------------------------


def urls(environment: dict[str, str], bucket: str = "mlops-artifacts") -> tuple[str, str]:
    readers = readers_from_environment(environment)
    assert readers is not None
    dynamodb, s3 = readers
    return dynamodb._url(), s3._location(bucket, "models/m/1/model.onnx")[0]


def test_endpoints_of_the_commercial_china_and_govcloud_partitions() -> None:
    assert urls(ENVIRONMENT) == (
        "https://dynamodb.eu-west-1.amazonaws.com/",
        "https://mlops-artifacts.s3.eu-west-1.amazonaws.com/models/m/1/model.onnx",
    )
    assert (
        urls(ENVIRONMENT | {"AWS_REGION": "cn-north-1"})[0] == "https://dynamodb.cn-north-1.amazonaws.com.cn/"
    )
    assert urls(ENVIRONMENT | {"AWS_REGION": "us-gov-west-1"})[1].startswith(
        "https://mlops-artifacts.s3.us-gov-west-1.amazonaws.com/"
    )


def test_a_bucket_name_with_dots_is_addressed_path_style() -> None:
    assert urls(ENVIRONMENT, bucket="my.bucket")[1] == (
        "https://s3.eu-west-1.amazonaws.com/my.bucket/models/m/1/model.onnx"
    )


def test_configured_endpoints_are_honoured_like_boto3_and_use_path_style() -> None:
    environment = ENVIRONMENT | {"AWS_ENDPOINT_URL": "http://localhost:5000"}
    assert urls(environment) == (
        "http://localhost:5000/",
        "http://localhost:5000/mlops-artifacts/models/m/1/model.onnx",
    )
    per_service = environment | {"AWS_ENDPOINT_URL_DYNAMODB": "http://localhost:8000"}
    assert urls(per_service)[0] == "http://localhost:8000/"
    ignored = per_service | {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}
    assert urls(ignored)[0] == "https://dynamodb.eu-west-1.amazonaws.com/"


@pytest.mark.parametrize(
    "change",
    [
        {"AWS_ACCESS_KEY_ID": ""},  # credentials from a profile, SSO or an instance role
        {"AWS_REGION": "", "AWS_DEFAULT_REGION": ""},
        {"AWS_USE_FIPS_ENDPOINT": "true"},
        {"AWS_USE_DUALSTACK_ENDPOINT": "TRUE"},
        {"AWS_REGION": "us-isob-east-1"},  # a partition this client does not know
        {"AWS_REGION": "eusc-de-east-1"},
        {"HTTPS_PROXY": "http://proxy:3128"},  # boto3 honours proxies; these readers do not
        {"http_proxy": "http://proxy:3128"},
    ],
)
def test_environments_it_does_not_fully_understand_are_left_to_boto3(change: dict[str, str]) -> None:
    assert readers_from_environment(ENVIRONMENT | change) is None


def test_an_unknown_partition_with_configured_endpoints_is_served() -> None:
    environment = ENVIRONMENT | {"AWS_REGION": "us-isob-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:5000"}
    assert readers_from_environment(environment) is not None


def test_reader_falls_back_to_boto3_when_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    clients.reset_clients()
    try:
        assert isinstance(clients.reader("dynamodb"), DynamoDBReader)
        assert isinstance(clients.reader("s3"), S3Reader)
        monkeypatch.setenv(clients.SIGNED_READS_ENV, "false")
        clients.reset_clients()
        assert type(clients.reader("s3")).__module__.startswith("botocore")
    finally:
        clients.reset_clients()


# ---- retries, errors, response shapes -------------------------------------------------------


class Script:
    """A transport answering from a list; records requests and sleeps."""

    def __init__(self, *answers: HttpResponse | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[HttpRequest] = []
        self.sleeps: list[float] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def dynamodb(script: Script) -> DynamoDBReader:
    return DynamoDBReader(
        region="eu-west-1", credentials=CREDENTIALS, transport=script, sleep=script.sleeps.append
    )


def s3(script: Script) -> S3Reader:
    return S3Reader(region="eu-west-1", credentials=CREDENTIALS, transport=script, sleep=script.sleeps.append)


def ddb_error(code: str, status: int = 400) -> HttpResponse:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "m"}).encode()
    return HttpResponse(status, {}, body)


def s3_error(code: str, status: int) -> HttpResponse:
    return HttpResponse(status, {}, f"<Error><Code>{code}</Code><Message>m</Message></Error>".encode())


def test_throttling_is_retried_with_backoff_and_then_succeeds() -> None:
    item = {"Item": {"pk": {"S": "a"}}}
    script = Script(
        ddb_error("ProvisionedThroughputExceededException"),
        ddb_error("ThrottlingException"),
        HttpResponse(200, {}, json.dumps(item).encode()),
    )
    assert dynamodb(script).get_item(TableName="t", Key={"pk": {"S": "a"}}) == item
    assert len(script.requests) == 3
    assert len(script.sleeps) == 2 and 0 <= script.sleeps[0] <= 1.0 and 0 <= script.sleeps[1] <= 2.0
    # each attempt is signed afresh (a retry after a long backoff must not carry a stale date)
    assert all("authorization" in r.headers for r in script.requests)


def test_retries_stop_after_three_attempts_with_the_last_error() -> None:
    script = Script(s3_error("SlowDown", 503), s3_error("SlowDown", 503), s3_error("InternalError", 500))
    with pytest.raises(AwsServiceError) as raised:
        s3(script).get_object(Bucket="b-1", Key="k")
    assert (raised.value.code, raised.value.status) == ("InternalError", 500)
    assert len(script.requests) == 3


def test_client_errors_are_not_retried() -> None:
    script = Script(s3_error("NoSuchKey", 404))
    with pytest.raises(AwsServiceError) as raised:
        s3(script).get_object(Bucket="b-1", Key="k")
    assert raised.value.code == "NoSuchKey"
    assert len(script.requests) == 1 and not script.sleeps


def test_connection_failures_are_retried_then_reported_as_connection_errors() -> None:
    script = Script(
        ConnectionResetError("reset"), TimeoutError("timed out"), ConnectionRefusedError("refused")
    )
    with pytest.raises(AwsServiceError) as raised:
        dynamodb(script).get_item(TableName="t", Key={})
    assert raised.value.code == "ConnectionError"
    assert "ConnectionRefusedError" in raised.value.message


def test_a_dynamodb_body_that_fails_its_crc32_is_retried_then_refused() -> None:
    body = b'{"Item": {"pk": {"S": "a"}}}'
    good = HttpResponse(200, {"x-amz-crc32": str(zlib.crc32(body))}, body)
    bad = HttpResponse(200, {"x-amz-crc32": str(zlib.crc32(body) ^ 1)}, body)
    assert dynamodb(Script(bad, good)).get_item(TableName="t", Key={})["Item"] == {"pk": {"S": "a"}}
    garbled = HttpResponse(200, {"x-amz-crc32": "abc"}, body)
    with pytest.raises(AwsServiceError, match="CRC32"):
        dynamodb(Script(bad, garbled, bad)).get_item(TableName="t", Key={})


@pytest.mark.parametrize(
    "answer",
    [
        HttpResponse(200, {}, b"<html>proxy login</html>"),  # a captive portal or a proxy page
        HttpResponse(200, {}, b'{"Item": {"pk": {"S": "a", "N": "1"}}}'),  # not one type per value
        HttpResponse(200, {}, b'["not", "an", "object"]'),
    ],
)
def test_a_response_that_is_not_dynamodbs_json_is_an_aws_error_not_a_crash(answer: HttpResponse) -> None:
    script = Script(answer, answer, answer)
    with pytest.raises(AwsServiceError) as raised:
        dynamodb(script).get_item(TableName="t", Key={})
    assert raised.value.code == "InvalidResponse"
    with pytest.raises(Unavailable), clients.translate_errors("metadata table"):
        raise raised.value


def test_error_bodies_that_are_not_json_objects_fall_back_to_the_status() -> None:
    script = Script(*[HttpResponse(500, {}, b"null")] * 3)
    with pytest.raises(AwsServiceError) as raised:
        dynamodb(script).get_item(TableName="t", Key={})
    assert (raised.value.code, raised.value.status) == ("500", 500)
    bodiless = Script(HttpResponse(404, {}, b""))
    with pytest.raises(NotFound), clients.translate_errors("artifact store"):
        s3(bodiless).get_object(Bucket="b-1", Key="k")


def test_throttling_backs_off_like_botocore_and_transient_errors_sooner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "mlops_core.storage.aws_http.random.uniform", lambda low, high: high
    )  # the longest wait
    throttled = Script(*[ddb_error("ThrottlingException")] * 3)
    with pytest.raises(AwsServiceError):
        dynamodb(throttled).get_item(TableName="t", Key={})
    assert throttled.sleeps == [1.0, 2.0]
    transient = Script(*[s3_error("InternalError", 500)] * 3)
    with pytest.raises(AwsServiceError):
        s3(transient).get_object(Bucket="b-1", Key="k")
    assert transient.sleeps == [0.05, 0.1]


def test_a_certificate_that_does_not_verify_is_not_retried() -> None:
    import ssl

    script = Script(ssl.SSLCertVerificationError("certificate verify failed"))
    with pytest.raises(AwsServiceError, match="SSLCertVerificationError"):
        dynamodb(script).get_item(TableName="t", Key={})
    assert len(script.requests) == 1


def test_an_endpoint_with_a_path_signs_the_path_it_sends() -> None:
    script = Script(HttpResponse(200, {}, b"{}"))
    DynamoDBReader(
        region="us-east-1",
        credentials=CREDENTIALS,
        endpoint_url="https://proxy.example/dynamodb",
        transport=script,
    ).get_item(TableName="t", Key={})
    request = script.requests[0]
    assert request.url == "https://proxy.example/dynamodb"  # as botocore joins it: no slash added
    expected = sign(
        method="POST",
        host="proxy.example",
        path="/dynamodb",
        query={},
        headers={"content-type": "application/x-amz-json-1.0", "x-amz-target": "DynamoDB_20120810.GetItem"},
        payload_sha256=hashlib.sha256(request.body).hexdigest(),
        service="dynamodb",
        region="us-east-1",
        credentials=CREDENTIALS,
        now=datetime.strptime(request.headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC),
    )
    assert request.headers["authorization"] == expected["authorization"]


def test_an_ipv6_endpoint_keeps_its_brackets_in_the_signed_host() -> None:
    script = Script(HttpResponse(200, {}, b"{}"))
    DynamoDBReader(
        region="us-east-1", credentials=CREDENTIALS, endpoint_url="http://[::1]:5000", transport=script
    ).get_item(TableName="t", Key={})
    assert script.requests[0].headers["host"] == "[::1]:5000"


def test_an_empty_key_is_refused_before_anything_is_sent() -> None:
    script = Script()
    with pytest.raises(ValueError, match="bucket and a key"):
        s3(script).get_object(Bucket="b-1", Key="")
    assert script.requests == []


def test_binary_attributes_come_back_as_bytes_as_from_botocore() -> None:
    raw = {
        "B": {"S": "a key named B"},
        "blob": {"B": base64.b64encode(b"\x00\x01").decode()},
        "nested": {"M": {"set": {"BS": [base64.b64encode(b"x").decode()]}, "list": {"L": [{"N": "1"}]}}},
    }
    result = dynamodb(Script(HttpResponse(200, {}, json.dumps({"Item": raw}).encode()))).get_item(
        TableName="t", Key={}
    )
    assert result["Item"] == {
        "B": {"S": "a key named B"},
        "blob": {"B": b"\x00\x01"},
        "nested": {"M": {"set": {"BS": [b"x"]}, "list": {"L": [{"N": "1"}]}}},
    }


def test_get_object_returns_a_readable_body_and_the_version_id() -> None:
    script = Script(HttpResponse(200, {"x-amz-version-id": "v1", "etag": '"e"'}, b"onnx bytes"))
    response = s3(script).get_object(Bucket="mlops-artifacts", Key="models/m/1/model.onnx", VersionId="v1")
    assert response["Body"].read() == b"onnx bytes"
    assert response["VersionId"] == "v1"
    assert (
        script.requests[0].url
        == "https://mlops-artifacts.s3.eu-west-1.amazonaws.com/models/m/1/model.onnx?versionId=v1"
    )


@pytest.mark.parametrize(
    ("error", "expected", "message"),
    [
        (AwsServiceError("NoSuchKey", "m", status=404), NotFound, "object not found"),
        (AwsServiceError("NoSuchVersion", "m", status=404), NotFound, "object not found"),
        (AwsServiceError("ThrottlingException", "m", status=400), Unavailable, "throttled"),
        (AwsServiceError("ResourceNotFoundException", "m", status=400), Unavailable, "unavailable"),
        (AwsServiceError("AccessDenied", "m", status=403), Unavailable, r"unavailable \(AccessDenied\)"),
        (AwsServiceError("ConnectionError", "host: TimeoutError"), Unavailable, "unreachable"),
        (AwsServiceError("ConditionalCheckFailedException", "m", status=400), Conflict, "changed"),
        (
            AwsServiceError("ValidationException", "Item size has exceeded the maximum", status=400),
            Invalid,
            "metadata table refused the request: Item size has exceeded",
        ),
    ],
)
def test_reader_errors_translate_like_boto3_errors(
    error: AwsServiceError, expected: type, message: str
) -> None:
    with pytest.raises(expected, match=message), clients.translate_errors("metadata table"):
        raise error


# ---- the HTTP transport on a loopback server ----------------------------------------------


class _OneShotHandler(http.server.BaseHTTPRequestHandler):
    """Answers one request per connection, then closes it without saying so (as a server
    dropping an idle keep-alive connection does)."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.rfile.read(length)
        payload = json.dumps({"Item": {"pk": {"S": self.headers["X-Amz-Target"]}}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback() -> Iterator[str]:
    with loopback_server(_OneShotHandler) as url:
        yield url


def test_a_keep_alive_connection_the_server_dropped_is_replaced_without_a_retry(loopback: str) -> None:
    sleeps: list[float] = []
    reader = DynamoDBReader(
        region="us-east-1",
        credentials=CREDENTIALS,
        endpoint_url=loopback,
        transport=HttpTransport(),
        sleep=sleeps.append,
    )
    for _ in range(3):
        item = reader.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]
        assert item == {"pk": {"S": "DynamoDB_20120810.GetItem"}}
    assert sleeps == []  # each stale connection was replaced at once, not retried with a backoff


def test_an_unreachable_endpoint_is_a_connection_error_not_a_hang() -> None:
    reader = DynamoDBReader(
        region="us-east-1",
        credentials=CREDENTIALS,
        endpoint_url="http://127.0.0.1:9",
        transport=HttpTransport(connect_timeout=0.5),
        sleep=lambda _: None,
    )
    with pytest.raises(AwsServiceError) as raised:
        reader.get_item(TableName="t", Key={})
    assert raised.value.code == "ConnectionError"


# ---- S3 response checksums, as botocore checks them --------------------------------------


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def test_get_object_asks_for_the_checksum_and_accepts_a_matching_one() -> None:
    body = b"onnx bytes"
    script = Script(
        HttpResponse(200, {"x-amz-checksum-crc32": _b64(zlib.crc32(body).to_bytes(4, "big"))}, body)
    )
    assert s3(script).get_object(Bucket="b-1", Key="k")["Body"].read() == body
    assert script.requests[0].headers["x-amz-checksum-mode"] == "ENABLED"
    assert "x-amz-checksum-mode" in script.requests[0].headers["authorization"]


def test_a_body_that_fails_its_checksum_is_retried_then_refused() -> None:
    body = b"onnx bytes"
    bad = HttpResponse(200, {"x-amz-checksum-sha256": _b64(hashlib.sha256(b"other").digest())}, body)
    good = HttpResponse(200, {"x-amz-checksum-sha256": _b64(hashlib.sha256(body).digest())}, body)
    assert s3(Script(bad, good)).get_object(Bucket="b-1", Key="k")["Body"].read() == body
    with pytest.raises(AwsServiceError) as raised:
        s3(Script(bad, bad, bad)).get_object(Bucket="b-1", Key="k")
    assert raised.value.code == "ChecksumMismatch"
    with pytest.raises(Unavailable), clients.translate_errors("artifact store"):
        raise raised.value


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": "AAAAAA==-3"},  # a multipart object's composite checksum
        {"x-amz-checksum-crc64nvme": "AAAAAAAAAAA="},  # needs the CRT, which botocore skips too
        {"x-amz-checksum-crc32c": "AAAAAA=="},
        {},
    ],
)
def test_checksums_botocore_cannot_check_without_the_crt_are_not_checked(headers: dict[str, str]) -> None:
    assert (
        s3(Script(HttpResponse(200, headers, b"x"))).get_object(Bucket="b-1", Key="k")["Body"].read() == b"x"
    )


def test_the_first_checksum_in_botocores_order_is_the_one_checked() -> None:
    body = b"x"
    headers = {
        "x-amz-checksum-crc32": "AAAAAA==-2",  # composite: skipped
        "x-amz-checksum-sha1": _b64(hashlib.sha1(body).digest()),
        "x-amz-checksum-sha256": "not even base64!",  # never looked at
    }
    assert (
        s3(Script(HttpResponse(200, headers, body))).get_object(Bucket="b-1", Key="k")["Body"].read() == body
    )
