"""The signed readers send what boto3 sends: whole requests compared with a real botocore client's.

For generated keys, version ids, buckets, tables, regions of the three partitions, endpoints
and credentials, each reader's request (method, URL, every header including the signature,
body) is compared with the request a botocore client built with the project's client
config (``clients._CLIENT_CONFIG``) prepares for the same call at the same frozen instant.
botocore's request is taken from its ``before-send`` event, so it is exactly what it would
put on the wire; nothing is sent.

The only headers left out of the comparison are the ones botocore does not sign and AWS
does not need: ``User-Agent`` (each client names itself) and ``amz-sdk-invocation-id`` /
``amz-sdk-request`` (SDK telemetry and retry bookkeeping). Leaving them out hides nothing
that is signed: a signed header missing on either side changes ``SignedHeaders`` and the
signature, which are compared.

Hypothesis runs a fixed number of examples with a fixed seed (``derandomize``), so the
test is as fast and as repeatable as a table of cases, and a failure prints the example.
"""

from __future__ import annotations

import http.server
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar
from unittest import mock
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mlops_core.storage import clients
from mlops_core.storage.aws_http import HttpRequest, HttpResponse, HttpTransport
from mlops_core.storage.signed_reads import DynamoDBReader, S3Reader, readers_from_environment
from mlops_core.storage.sigv4 import Credentials, dns_suffix
from tests.loopback import loopback_server

NOW = datetime(2026, 12, 1, 9, 30, 15, tzinfo=UTC)
#: Headers botocore sends unsigned that the readers do not send (see the module docstring).
UNSIGNED_SDK_HEADERS = ("user-agent", "amz-sdk-invocation-id", "amz-sdk-request")

EXAMPLES = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@dataclass(frozen=True)
class Wire:
    """A request as it goes out: lower-case header names, str values, bytes body."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes


class _Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def _capture(request: Any, **_: Any) -> None:
    raise _Captured(request)


_botocore_session: list[Any] = []


def botocore_request(
    service: str,
    operation: str,
    params: dict[str, Any],
    *,
    region: str,
    endpoint_url: str | None,
    credentials: Credentials,
    s3: dict[str, Any] | None = None,
) -> Wire:
    """What a real botocore client would send for ``operation(**params)`` at NOW."""
    import botocore.session
    from botocore.config import Config

    if not _botocore_session:  # one session: service models and endpoint rules load once
        _botocore_session.append(botocore.session.get_session())
    config = Config(**clients._CLIENT_CONFIG, ignore_configured_endpoint_urls=True, s3=s3 or {})
    client = _botocore_session[0].create_client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        aws_session_token=credentials.token,
        config=config,
    )
    # First, so that nothing (moto's mock, if a test in this process started it) answers instead.
    client.meta.events.register_first(f"before-send.{service}", _capture)
    with (
        mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)),
        pytest.raises(_Captured) as captured,
    ):
        getattr(client, operation)(**params)
    prepared = captured.value.request
    headers = {
        name.lower(): value.decode() if isinstance(value, bytes) else str(value)
        for name, value in prepared.headers.items()
    }
    for name in UNSIGNED_SDK_HEADERS:
        headers.pop(name, None)
    assert "host" not in headers
    headers["host"] = _host_header(prepared.url)  # what urllib3 sends: the URL's host[:port]
    body = prepared.body or b""
    return Wire(prepared.method, prepared.url, headers, body.encode() if isinstance(body, str) else body)


def _host_header(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}[parts.scheme]
    return parts.hostname if parts.port in (None, default) else f"{parts.hostname}:{parts.port}"  # type: ignore[return-value]


def _classify(request: Wire, region: str, endpoint: str | None, creds: Credentials) -> None:
    """What the example covered (``pytest --hypothesis-show-statistics`` counts them)."""
    partition = {"amazonaws.com.cn": "aws-cn"}.get(dns_suffix(region) or "", "aws")
    event(
        "custom endpoint"
        if endpoint
        else f"partition {'aws-us-gov' if region.startswith('us-gov-') else partition}"
    )
    event("session token" if creds.token else "no session token")
    event("query string" if "?" in request.url else "no query string")


class _Recorder:
    def __init__(self, answer: HttpResponse) -> None:
        self.answer = answer
        self.requests: list[HttpRequest] = []

    def __call__(self, request: HttpRequest) -> HttpResponse:
        self.requests.append(request)
        return self.answer


def our_request(send: Callable[[_Recorder], object], answer: HttpResponse) -> Wire:
    recorder = _Recorder(answer)
    send(recorder)
    (request,) = recorder.requests
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers.pop("user-agent") == "serverless-mlops/signed-reads"
    if request.body:  # http.client adds it from the body (see the wire test below)
        headers["content-length"] = str(len(request.body))
    return Wire(request.method, request.url, headers, request.body)


# ---- strategies -------------------------------------------------------------------------

_DIRECTIONS = ("east", "west", "north", "south", "central", "northeast", "southeast", "northwest")
regions = st.one_of(
    st.just("us-east-1"),
    st.builds(
        "{}-{}-{}".format,
        st.sampled_from(("us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx")),
        st.sampled_from(_DIRECTIONS),
        st.integers(1, 9),
    ),
    st.builds("cn-{}-{}".format, st.sampled_from(("north", "northwest")), st.integers(1, 3)),
    st.builds("us-gov-{}-{}".format, st.sampled_from(("west", "east")), st.integers(1, 2)),
)
_PIECES = [*("a", "B", "0", " ", "+", "%", "%2F", "~", "/", "//", ".", "..", "=", "&", "?", "#", ";", ":")]
_PIECES += ["@", "!", "*", "'", "(", ")", ",", "$", "[", "]", "\t", "ü", "é", "名前", "🙂", "\u00a0"]
keys = st.one_of(
    st.lists(st.sampled_from(_PIECES), min_size=1, max_size=40).map("".join),
    st.text(st.characters(codec="utf-8"), min_size=1, max_size=200),
    st.text(st.sampled_from("abz09-_./ ü"), min_size=900, max_size=1024),  # near S3's 1,024 bytes
    st.builds("{}/".format, st.text(st.sampled_from("abc/ "), min_size=1, max_size=20)),  # a "folder"
)
version_ids = st.one_of(
    st.none(),
    st.just("null"),
    st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=64),
)
dns_buckets = st.from_regex(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", fullmatch=True)
dotted_buckets = st.from_regex(r"[a-z0-9]{1,12}(\.[a-z0-9]{1,12}){1,3}", fullmatch=True)
legacy_buckets = st.from_regex(r"[a-z0-9]{1,8}[A-Z_][A-Za-z0-9_-]{1,20}", fullmatch=True)
buckets = st.one_of(dns_buckets, dotted_buckets, legacy_buckets)
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
credentials = st.builds(
    Credentials,
    st.from_regex(r"A[SK]IA[A-Z2-7]{16}", fullmatch=True),
    st.text(st.sampled_from(_B64), min_size=40, max_size=40),
    st.one_of(
        st.none(),
        st.text(st.sampled_from(_B64), min_size=16, max_size=600),
        st.just("IQoJb3JpZ2luX2VjE/////+=="),
    ),
)
endpoints = st.one_of(
    st.none(),
    st.none(),
    st.builds("http://127.0.0.1:{}".format, st.integers(1024, 65535)),  # the local stack's moto server
    st.builds("http://localhost:{}".format, st.integers(1024, 65535)),
    st.builds("http://127.0.0.1:{}/".format, st.integers(1024, 65535)),
    st.sampled_from(("https://proxy.example.internal/aws", "https://proxy.example.internal/a/b//")),
    st.sampled_from(("http://127.0.0.1:80", "https://vpce.example:443/")),
)
table_names = st.from_regex(r"[A-Za-z0-9_.-]{3,255}", fullmatch=True)
attribute_values = st.one_of(
    st.builds(lambda text: {"S": text}, st.text(st.characters(codec="utf-8"), min_size=1)),
    st.builds(lambda number: {"N": str(number)}, st.integers(-(10**38), 10**38)),
    st.builds(lambda number: {"N": repr(number)}, st.floats(allow_nan=False, allow_infinity=False)),
)


# ---- the comparisons --------------------------------------------------------------------


@EXAMPLES
@given(
    region=regions,
    bucket=buckets,
    key=keys,
    version_id=version_ids,
    creds=credentials,
    endpoint=endpoints,
    regional=st.booleans(),
)
def test_get_object_requests_are_the_ones_botocore_sends(
    region: str,
    bucket: str,
    key: str,
    version_id: str | None,
    creds: Credentials,
    endpoint: str | None,
    regional: bool,
) -> None:
    params: dict[str, Any] = {"Bucket": bucket, "Key": key} | (
        {"VersionId": version_id} if version_id else {}
    )
    reader = S3Reader  # the class: each example builds its own, with its own recorder

    def send(transport: _Recorder) -> object:
        return reader(
            region=region,
            credentials=creds,
            endpoint_url=endpoint,
            transport=transport,
            clock=lambda: NOW,
            us_east_1_regional=regional,
        ).get_object(**params)

    ours = our_request(send, HttpResponse(200, {}, b"bytes"))
    theirs = botocore_request(
        "s3",
        "get_object",
        params,
        region=region,
        endpoint_url=endpoint,
        credentials=creds,
        s3={"us_east_1_regional_endpoint": "regional" if regional else "legacy"},
    )
    assert ours == theirs
    _classify(ours, region, endpoint, creds)
    event("virtual-hosted" if ours.headers["host"].startswith(f"{bucket}.") else "path-style")
    event("version id" if version_id else "no version id")


@EXAMPLES
@given(
    region=regions,
    table=table_names,
    key=st.dictionaries(st.sampled_from(("pk", "sk", "ünï", "a b", "#x")), attribute_values, min_size=1),
    consistent=st.booleans(),
    creds=credentials,
    endpoint=endpoints,
)
def test_get_item_requests_are_the_ones_botocore_sends(
    region: str,
    table: str,
    key: dict[str, dict[str, str]],
    consistent: bool,
    creds: Credentials,
    endpoint: str | None,
) -> None:
    params = {"TableName": table, "Key": key, "ConsistentRead": consistent}

    def send(transport: _Recorder) -> object:
        return DynamoDBReader(
            region=region, credentials=creds, endpoint_url=endpoint, transport=transport, clock=lambda: NOW
        ).get_item(**params)  # type: ignore[arg-type]

    ours = our_request(send, HttpResponse(200, {}, b"{}"))
    theirs = botocore_request(
        "dynamodb", "get_item", params, region=region, endpoint_url=endpoint, credentials=creds
    )
    assert ours == theirs
    _classify(ours, region, endpoint, creds)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(region=st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-0123456789"), min_size=1, max_size=24))
def test_a_region_outside_the_known_partitions_is_left_to_boto3(region: str) -> None:
    environment = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": region}
    readers = readers_from_environment(environment)
    assert (readers is None) == (dns_suffix(region) is None)


# ---- what the transport puts on the wire ------------------------------------------------


class _RawRecorder(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[tuple[str, list[tuple[str, str]], bytes]]] = []

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.seen.append((self.requestline, list(self.headers.items()), self.rfile.read(length)))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = _record

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def raw_server() -> Iterator[str]:
    _RawRecorder.seen = []
    with loopback_server(_RawRecorder) as url:
        yield url


def test_the_transport_sends_exactly_the_signed_request(raw_server: str) -> None:
    """http.client adds only Content-Length (from the body) and Accept-Encoding: identity,
    neither of them signed; the path and query go out byte for byte as signed."""
    creds = Credentials("AKIDEXAMPLE", "secret", "token")
    s3_requests = _Recorder(HttpResponse(200, {}, b""))
    S3Reader(
        region="eu-west-1", credentials=creds, endpoint_url=raw_server, transport=s3_requests
    ).get_object(Bucket="mlops-artifacts", Key="a b/ü+%~//x/", VersionId="v+1=")
    transport = HttpTransport()
    for request in s3_requests.requests:
        transport(request)
    ddb = DynamoDBReader(region="eu-west-1", credentials=creds, endpoint_url=raw_server, transport=transport)
    ddb.get_item(TableName="t", Key={"pk": {"S": "ü"}})

    (s3_line, s3_headers, _), (ddb_line, ddb_headers, ddb_body) = _RawRecorder.seen
    sent = s3_requests.requests[0]
    assert s3_line == f"GET {sent.url.removeprefix(raw_server)} HTTP/1.1"
    assert {k.lower(): v for k, v in s3_headers} == {k.lower(): v for k, v in sent.headers.items()} | {
        "accept-encoding": "identity"
    }
    assert ddb_line == "POST / HTTP/1.1"
    wire = {k.lower(): v for k, v in ddb_headers}
    assert wire.pop("content-length") == str(len(ddb_body))
    assert wire.pop("accept-encoding") == "identity"
    assert set(wire) == {
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "authorization",
        "content-type",
        "x-amz-target",
        "user-agent",
    }
