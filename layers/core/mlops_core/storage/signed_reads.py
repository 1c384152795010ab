"""Signed reads without botocore: DynamoDB ``GetItem`` and ``BatchGetItem``, S3 ``GetObject``.

Why this exists: importing botocore and creating a DynamoDB and an S3 client costs about
300 ms of a 750 ms inference cold start (each client parses its service model and endpoint
rule set), and these two reads are all the prediction path does with AWS. Here they are
plain HTTPS requests signed with Signature Version 4 (checked byte for byte against
botocore's signer in the tests), over ``http.client`` with keep-alive. Everything else
(writes, queries, transactions) stays on boto3; see ``mlops_core.storage.clients.reader`` for when
this client is used and ``docs/decision_log.md`` (2026-11-27) for the alternatives.

Behaviour matches the project's boto3 clients: connect timeout 2 s, read timeout 5 s, up to
3 attempts for throttling (backing off as botocore's standard mode does), 5xx, timeouts,
bad checksums and connection failures, a kept-alive connection the server closed replaced
without counting an attempt, and responses shaped as boto3 returns them (``{"Item": ...}``,
``{"Body": ..., "VersionId": ...}``), so the adapters use either client the same way.
Failures raise ``AwsServiceError`` with AWS's error code, which
``mlops_core.storage.clients.translate_errors`` maps like a ``ClientError``.

Credentials come from the environment (``AWS_ACCESS_KEY_ID``…, as Lambda sets them for a
function) or from the container credentials endpoint (``AWS_CONTAINER_CREDENTIALS_FULL_URI``
with ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` or ``_FILE``, as Lambda provides them under
SnapStart): fetched on first use, cached, refreshed before they expire, as botocore's
container provider does.

The parts are in their own modules: ``sigv4`` (credentials, partitions, the signer),
``aws_http`` (requests, the kept-alive transport, retries and back-off, ``AwsServiceError``)
and ``container_credentials``; this one holds the two readers and chooses them from the
environment. Only the standard library is imported by any of them: they are on the cold
path.
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.client
import io
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from mlops_core.storage import deadline
from mlops_core.storage.aws_http import (
    _MIN_ATTEMPT_S,
    MAX_ATTEMPTS,
    THROTTLING_CODES,
    AwsServiceError,
    HttpRequest,
    HttpResponse,
    HttpTransport,
    Transport,
    _backoff,
    _reset_connections,
)
from mlops_core.storage.container_credentials import (
    ContainerCredentials,
)
from mlops_core.storage.sigv4 import (
    EMPTY_SHA256,
    USER_AGENT,
    Credentials,
    CredentialSource,
    configured_endpoint,
    dns_suffix,
    sign,
)

# S3 response checksums botocore checks without the CRT, in its order of preference.
_S3_CHECKSUMS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    ("crc32", lambda body: zlib.crc32(body).to_bytes(4, "big")),
    ("sha1", lambda body: hashlib.sha1(body).digest()),  # noqa: S324 - S3's checksum, not a signature
    ("sha256", lambda body: hashlib.sha256(body).digest()),
    ("sha512", lambda body: hashlib.sha512(body).digest()),
)

_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Failures that say nothing about the request itself (botocore retries these too).
_TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "CRC32CheckFailed",
        "ChecksumMismatch",
        "InvalidResponse",
    }
)
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


# ---- Signature Version 4 ------------------------------------------------------------------


# ---- transport ----------------------------------------------------------------------------


# ---- the clients ------------------------------------------------------------------------


class _SignedClient:
    service = ""
    env_name = ""

    def __init__(
        self,
        *,
        region: str,
        credentials: CredentialSource,
        endpoint_url: str | None = None,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.region = region
        self.credentials = credentials
        self.endpoint_url = endpoint_url or None
        self.transport: Transport = transport or HttpTransport()
        self.sleep = sleep
        self.clock = clock
        if self.endpoint_url is None and dns_suffix(region) is None:
            raise ValueError(f"no known endpoint for region '{region}'")

    def _send(
        self,
        *,
        method: str,
        url: str,
        path: str,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes,
        payload_sha256: str,
        check: Callable[[HttpResponse], AwsServiceError | None] = lambda _: None,
    ) -> HttpResponse:
        """Send, retrying what may succeed later. ``check`` vets a 2xx response (a failed
        check is retried like a transient error)."""
        host = urlsplit(url).netloc
        for attempt in range(1, MAX_ATTEMPTS + 1):
            left = deadline.remaining()
            if left is not None and left <= _MIN_ATTEMPT_S:
                raise AwsServiceError("DeadlineExceeded", f"{host}: no time left in the request's deadline")
            signed = sign(
                method=method,
                host=_canonical_host(url),
                path=path,
                query=query,
                headers=headers,
                payload_sha256=payload_sha256,
                service=self.service,
                region=self.region,
                credentials=self.credentials.current(),
                now=self.clock(),
            )
            signed["user-agent"] = USER_AGENT
            try:
                response = self.transport(HttpRequest(method, url, signed, body))
            except (OSError, http.client.HTTPException) as error:
                failure = AwsServiceError("ConnectionError", f"{host}: {type(error).__name__}: {error}")
                if attempt == MAX_ATTEMPTS or _is_certificate_error(error):
                    raise failure from error
            else:
                problem = check(response) if response.status < 300 else self._error(response)
                if problem is None:
                    return response
                failure = problem
                if attempt == MAX_ATTEMPTS or not _retryable(failure):
                    raise failure
            pause = _backoff(failure, attempt)
            left = deadline.remaining()
            if left is not None and pause + _MIN_ATTEMPT_S >= left:
                raise failure  # no time for another attempt: the caller answers 503 now
            self.sleep(pause)
        raise AssertionError("unreachable")  # the loop returns or raises

    def reset_connections(self) -> None:
        """Open new connections from now on (see ``HttpTransport.reset``)."""
        _reset_connections(self.transport)

    def _error(self, response: HttpResponse) -> AwsServiceError:
        raise NotImplementedError


def _is_certificate_error(error: BaseException) -> bool:
    ssl = sys.modules.get("ssl")  # never imported for plain-HTTP endpoints
    return ssl is not None and isinstance(error, ssl.SSLCertVerificationError)


def _canonical_host(url: str) -> str:
    parts = urlsplit(url)
    default = 443 if parts.scheme == "https" else 80
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets, as in the Host header
        host = f"[{host}]"
    return host if parts.port in (None, default) else f"{host}:{parts.port}"


def _retryable(error: AwsServiceError) -> bool:
    return (
        error.code in THROTTLING_CODES
        or error.code in _TRANSIENT_CODES
        or (error.status is not None and error.status in _RETRYABLE_STATUS)
    )


def _decode_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _decode_value(value) for name, value in item.items()}


def _decode_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """An attribute value with ``B``/``BS`` decoded from base64 to bytes, as botocore does."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(v) for v in inner]}
    if kind == "M":
        return {"M": _decode_item(inner)}
    if kind == "L":
        return {"L": [_decode_value(v) for v in inner]}
    return dict(value)


class DynamoDBReader(_SignedClient):
    """``get_item`` and ``batch_get_item`` with boto3's arguments and response shapes."""

    service = "dynamodb"
    env_name = "DYNAMODB"

    def _url(self) -> str:
        if self.endpoint_url:  # its path as given, or "/" (botocore's join for a "/" request URI)
            parts = urlsplit(self.endpoint_url)
            return f"{parts.scheme}://{parts.netloc}{parts.path or '/'}"
        return f"https://dynamodb.{self.region}.{dns_suffix(self.region)}/"

    def get_item(
        self, *, TableName: str, Key: Mapping[str, Any], ConsistentRead: bool = False
    ) -> dict[str, Any]:
        def decode(result: dict[str, Any]) -> None:
            if "Item" in result:
                result["Item"] = _decode_item(result["Item"])

        return self._call(
            "GetItem", {"TableName": TableName, "Key": Key, "ConsistentRead": ConsistentRead}, decode
        )

    def batch_get_item(self, *, RequestItems: Mapping[str, Any]) -> dict[str, Any]:
        """``BatchGetItem`` (up to 100 keys): ``Responses`` per table with their items decoded
        as boto3 decodes them, and ``UnprocessedKeys`` as DynamoDB returned them (the caller
        sends those again, as with boto3)."""

        def decode(result: dict[str, Any]) -> None:
            responses = result.get("Responses")
            if responses is not None:
                result["Responses"] = {
                    table: [_decode_item(item) for item in items] for table, items in responses.items()
                }

        return self._call("BatchGetItem", {"RequestItems": RequestItems}, decode)

    def batch_write_item(self, *, RequestItems: Mapping[str, Any]) -> dict[str, Any]:
        """``BatchWriteItem`` (up to 25 puts), as boto3 answers it (``UnprocessedItems`` to send
        again). Not a read, but the same signed JSON call: the materializer sends thousands,
        and botocore's request building costs ~1-3 ms of CPU each. Attribute values must be
        JSON-ready (no ``B`` bytes: the features table stores none)."""

        def decode(_: dict[str, Any]) -> None:
            return None  # UnprocessedItems stay as DynamoDB sent them (no bytes to decode)

        return self._call("BatchWriteItem", {"RequestItems": RequestItems}, decode)

    def _call(
        self, operation: str, payload: Mapping[str, Any], decode: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any]:
        """One JSON call of DynamoDB's API (a read: GetItem, BatchGetItem), retried as botocore
        would, its response checked against ``x-amz-crc32`` and parsed."""
        body = json.dumps(payload).encode()
        url = self._url()
        parsed: list[dict[str, Any]] = []

        def check(response: HttpResponse) -> AwsServiceError | None:
            expected_crc = response.headers.get("x-amz-crc32", "")
            if expected_crc and (
                not expected_crc.isdigit() or zlib.crc32(response.body) != int(expected_crc)
            ):
                return AwsServiceError("CRC32CheckFailed", "the response body does not match its x-amz-crc32")
            try:
                result = json.loads(response.body or b"{}")
                if not isinstance(result, dict):
                    raise TypeError(f"expected a JSON object, got {type(result).__name__}")
                decode(result)
            except (ValueError, TypeError, AttributeError) as error:  # not DynamoDB's JSON (a proxy page?)
                return AwsServiceError("InvalidResponse", f"unreadable {operation} response: {error}")
            parsed.append(result)
            return None

        self._send(
            method="POST",
            url=url,
            path=urlsplit(url).path,
            query={},
            headers={
                "content-type": "application/x-amz-json-1.0",
                "x-amz-target": f"DynamoDB_20120810.{operation}",
            },
            body=body,
            payload_sha256=hashlib.sha256(body).hexdigest(),
            check=check,
        )
        return parsed[-1]

    def _error(self, response: HttpResponse) -> AwsServiceError:
        code, message = "", response.body[:200].decode(errors="replace")
        try:
            payload = json.loads(response.body)
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            # "com.amazonaws.dynamodb.v20120810#ThrottlingException" or "Code:detail", as botocore reads it
            code = str(payload.get("__type", "")).rpartition("#")[2].partition(":")[0]
            message = str(payload.get("message") or payload.get("Message") or "")
        return AwsServiceError(code or str(response.status), message, status=response.status)


class S3Reader(_SignedClient):
    """``get_object`` with boto3's arguments and response shape (``Body`` is readable).

    Asks for S3's checksum (``x-amz-checksum-mode: ENABLED``) and checks the first of
    CRC32, SHA-1, SHA-256 and SHA-512 the response carries, as botocore does without the
    CRT (CRC32C and CRC64NVME need it, and a multipart object's composite checksum cannot
    be checked from its bytes): a mismatch is retried like a bad DynamoDB CRC32.
    """

    service = "s3"
    env_name = "S3"

    def __init__(self, *, us_east_1_regional: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # boto3's default ("legacy") sends us-east-1 requests to the global s3.amazonaws.com.
        self.us_east_1_regional = us_east_1_regional

    def _location(self, bucket: str, key: str) -> tuple[str, str]:
        encoded_key = quote(key, safe="/~")
        if self.endpoint_url:  # a configured endpoint (moto, a proxy): path-style addressing
            parts = urlsplit(self.endpoint_url)
            path = f"{parts.path.rstrip('/')}/{bucket}/{encoded_key}"
            return f"{parts.scheme}://{parts.netloc}{path}", path
        regional = self.region != "us-east-1" or self.us_east_1_regional
        host = f"s3.{self.region}.{dns_suffix(self.region)}" if regional else "s3.amazonaws.com"
        if _DNS_BUCKET.match(bucket):  # virtual-hosted style, as boto3 uses for such names
            return f"https://{bucket}.{host}/{encoded_key}", f"/{encoded_key}"
        path = f"/{bucket}/{encoded_key}"
        return f"https://{host}{path}", path

    def get_object(self, *, Bucket: str, Key: str, VersionId: str | None = None) -> dict[str, Any]:
        if not Bucket or not Key:  # "GET /" would be a listing, answered with its XML
            raise ValueError("get_object needs a bucket and a key")
        base, path = self._location(Bucket, Key)
        query = {"versionId": VersionId} if VersionId else {}
        url = base + ("?versionId=" + quote(VersionId, safe="-_.~") if VersionId else "")
        response = self._send(
            method="GET",
            url=url,
            path=path,
            query=query,
            headers={"x-amz-checksum-mode": "ENABLED", "x-amz-content-sha256": EMPTY_SHA256},
            body=b"",
            payload_sha256=EMPTY_SHA256,
            check=_checksum_problem,
        )
        return {
            "Body": io.BytesIO(response.body),
            "ContentLength": len(response.body),
            "VersionId": response.headers.get("x-amz-version-id"),
            "ETag": response.headers.get("etag"),
        }

    def _error(self, response: HttpResponse) -> AwsServiceError:
        text = response.body.decode(errors="replace")
        code = re.search(r"<Code>([^<]*)</Code>", text)
        message = re.search(r"<Message>([^<]*)</Message>", text)
        return AwsServiceError(
            html.unescape(code.group(1)) if code else str(response.status),  # a HEAD-like 404 has no body
            html.unescape(message.group(1)) if message else "",
            status=response.status,
        )


def _checksum_problem(response: HttpResponse) -> AwsServiceError | None:
    for name, digest in _S3_CHECKSUMS:
        expected = response.headers.get(f"x-amz-checksum-{name}")
        if expected is None or "-" in expected:  # absent, or a multipart object's composite
            continue
        try:
            matches = base64.b64decode(expected, validate=True) == digest(response.body)
        except ValueError:
            matches = False
        return (
            None
            if matches
            else AwsServiceError("ChecksumMismatch", f"the object does not match its x-amz-checksum-{name}")
        )
    return None


def readers_from_environment(
    environ: Mapping[str, str] = os.environ, *, endpoint_url: str | None = None
) -> tuple[DynamoDBReader, S3Reader] | None:
    """Both readers when the environment is one they fully understand, else None.

    That is: credentials in the environment (as Lambda provides them for a function) or from
    the container credentials endpoint (as Lambda provides them under SnapStart), a region,
    no FIPS or dual-stack endpoint asked for, no proxy, and either a configured endpoint or
    a region of a known partition. Profiles, SSO, instance roles, ECS task roles, proxies
    and other partitions are left to boto3.
    """
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        return None
    if any(
        environ.get(flag, "").lower() == "true"
        for flag in ("AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT")
    ) or any(environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return None
    dynamodb_endpoint = endpoint_url or configured_endpoint(DynamoDBReader.env_name, environ)
    s3_endpoint = endpoint_url or configured_endpoint(S3Reader.env_name, environ)
    if dns_suffix(region) is None and not (dynamodb_endpoint and s3_endpoint):
        return None
    credentials: CredentialSource | None = Credentials.from_environment(
        environ
    ) or ContainerCredentials.from_environment(environ)
    if credentials is None:
        return None
    transport = HttpTransport()
    return (
        DynamoDBReader(
            region=region, credentials=credentials, endpoint_url=dynamodb_endpoint, transport=transport
        ),
        S3Reader(
            region=region,
            credentials=credentials,
            endpoint_url=s3_endpoint,
            transport=transport,
            us_east_1_regional=environ.get("AWS_S3_US_EAST_1_REGIONAL_ENDPOINT", "").lower() == "regional",
        ),
    )
