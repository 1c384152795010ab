"""Signed reads without botocore: DynamoDB ``GetItem`` and S3 ``GetObject``.

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

Only the standard library is imported here: this module is on the cold path.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import http.client
import io
import json
import os
import random
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

from mlops_core.storage import deadline

CONNECT_TIMEOUT_S = 2.0
READ_TIMEOUT_S = 5.0
MAX_ATTEMPTS = 3
# An attempt with less time than this left is not started (the request's deadline).
_MIN_ATTEMPT_S = 0.05
BACKOFF_BASE_S = 0.05
THROTTLING_BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 20.0
USER_AGENT = "serverless-mlops/signed-reads"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Container credentials are refreshed this long before they expire: in the advisory
# window one caller refreshes while the others keep signing with the current ones; in the
# mandatory window every caller waits for new ones (botocore's two windows).
ADVISORY_REFRESH_S = 15 * 60
MANDATORY_REFRESH_S = 10 * 60
CREDENTIALS_READ_TIMEOUT_S = 2.0
# Where botocore lets a plain-HTTP credentials URI point (any https URI is allowed):
# loopback, ECS/EKS/Lambda's link-local addresses.
_CREDENTIALS_HOSTS = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"})
# S3 response checksums botocore checks without the CRT, in its order of preference.
_S3_CHECKSUMS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    ("crc32", lambda body: zlib.crc32(body).to_bytes(4, "big")),
    ("sha1", lambda body: hashlib.sha1(body).digest()),  # noqa: S324 - S3's checksum, not a signature
    ("sha256", lambda body: hashlib.sha256(body).digest()),
    ("sha512", lambda body: hashlib.sha512(body).digest()),
)

# AWS error codes that mean "slow down": retried here, a 503 with Retry-After for callers.
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "SlowDown",
        "TooManyRequestsException",
        "RequestThrottled",
    }
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
# Regions of the partitions this client knows the endpoints of. Anything else (ISO
# partitions, the European Sovereign Cloud, a region added later) is left to boto3.
_PARTITIONS = (
    (re.compile(r"^cn-[a-z]+-\d+$"), "amazonaws.com.cn"),
    (re.compile(r"^us-gov-[a-z]+-\d+$"), "amazonaws.com"),
    (re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)-[a-z]+-\d+$"), "amazonaws.com"),
)
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class AwsServiceError(Exception):
    """An AWS request that failed for good (after retries where they apply).

    ``code`` is AWS's error code (``NoSuchKey``, ``ThrottlingException``…), or
    ``ConnectionError`` when no response came back.
    """

    def __init__(self, code: str, message: str, *, status: int | None = None) -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None

    def current(self) -> Credentials:
        """Static credentials are their own source (see ``CredentialSource``)."""
        return self

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Credentials | None:
        """The credentials Lambda puts in every function's environment, if present."""
        access_key = environ.get("AWS_ACCESS_KEY_ID")
        secret_key = environ.get("AWS_SECRET_ACCESS_KEY")
        if not access_key or not secret_key:
            return None
        return cls(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None)


class CredentialSource(Protocol):
    """Where a reader gets the credentials to sign each attempt with."""

    def current(self) -> Credentials: ...


def dns_suffix(region: str) -> str | None:
    """The endpoint domain of ``region``'s partition, or None for partitions left to boto3."""
    for pattern, suffix in _PARTITIONS:
        if pattern.match(region):
            return suffix
    return None


def configured_endpoint(service_env_name: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """``AWS_ENDPOINT_URL_<SERVICE>`` or ``AWS_ENDPOINT_URL``, as boto3 reads them."""
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() == "true":
        return None
    return environ.get(f"AWS_ENDPOINT_URL_{service_env_name}") or environ.get("AWS_ENDPOINT_URL") or None


# ---- Signature Version 4 ------------------------------------------------------------------


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    payload_sha256: str,
    service: str,
    region: str,
    credentials: Credentials,
    now: datetime,
) -> dict[str, str]:
    """The headers to send: ``headers`` plus host, date, token and ``Authorization``.

    ``path`` is the URI-encoded path sent. S3 signs it as it is; every other service signs
    it normalized (dot segments and empty segments removed) and encoded once more, as
    SigV4 specifies and botocore does. Every header passed in is signed, so callers pass
    only what AWS must see unaltered.
    """
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    signed = {name.lower(): " ".join(str(value).split()) for name, value in headers.items()}
    signed["host"] = host
    signed["x-amz-date"] = amz_date
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical_request = "\n".join(
        [
            method,
            path if service == "s3" else quote(_remove_dot_segments(path) or "/", safe="/~"),
            canonical_query,
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/{service}/aws4_request"
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = _hmac(
        _hmac(_hmac(_hmac(f"AWS4{credentials.secret_key}".encode(), day), region), service), "aws4_request"
    )
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    return signed


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, with consecutive slashes collapsed too (botocore's ``remove_dot_segments``)."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    leading = "/" if path.startswith("/") else ""
    trailing = "/" if path.endswith("/") and kept else ""
    return leading + "/".join(kept) + trailing


# ---- transport ----------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str  # scheme://host[:port]/path?query, path and query already encoded
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


Transport = Callable[[HttpRequest], HttpResponse]


def _reset_connections(transport: Transport) -> None:
    reset = getattr(transport, "reset", None)  # a test's fake transport has no connections
    if callable(reset):
        reset()


# What sending on a connection the server already closed raises.
_STALE_CONNECTION = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class HttpTransport:
    """``http.client`` with one kept-alive connection per host and thread."""

    def __init__(
        self, *, connect_timeout: float = CONNECT_TIMEOUT_S, read_timeout: float = READ_TIMEOUT_S
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._local = threading.local()
        self._ssl_context: Any = None
        self._generation = 0

    def reset(self) -> None:
        """Open new connections from now on, in every thread.

        For an environment restored from a SnapStart snapshot: its sockets belong to the
        environment that was snapshotted, their peers closed them long ago, and a request
        on one may hang until the read timeout rather than fail at once.
        """
        self._generation += 1

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        state = self._local.__dict__
        if state.get("generation") != self._generation:
            for stale in state.get("connections", {}).values():
                stale.close()
            state["connections"], state["generation"] = {}, self._generation
        connections: dict[tuple[str, str], http.client.HTTPConnection] = state["connections"]
        connection = connections.get((scheme, netloc))
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    netloc, timeout=self.connect_timeout, context=self._tls_context()
                )
            else:
                connection = http.client.HTTPConnection(netloc, timeout=self.connect_timeout)
            connections[(scheme, netloc)] = connection
        return connection

    def _tls_context(self) -> Any:
        # Created on the first HTTPS request only (loading CA certificates takes ~20 ms);
        # AWS_CA_BUNDLE is honoured as boto3 honours it.
        if self._ssl_context is None:
            import ssl

            self._ssl_context = ssl.create_default_context(cafile=os.environ.get("AWS_CA_BUNDLE") or None)
        return self._ssl_context

    def __call__(self, request: HttpRequest) -> HttpResponse:
        parts = urlsplit(request.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        connection = self._connection(parts.scheme, parts.netloc)
        reused = connection.sock is not None
        try:
            return self._exchange(connection, request, target)
        except _STALE_CONNECTION:
            if not reused:
                raise
        # The server closed the kept-alive connection while it was idle (S3 does after
        # ~20 s, and a Lambda container may be frozen far longer): the request never
        # reached it, so it is sent again at once on a new connection, not counted as
        # a failed attempt.
        return self._exchange(connection, request, target)

    def _exchange(
        self, connection: http.client.HTTPConnection, request: HttpRequest, target: str
    ) -> HttpResponse:
        try:
            if connection.sock is None:
                connection.timeout = _within_deadline(self.connect_timeout)
                connection.connect()
            connection.sock.settimeout(_within_deadline(self.read_timeout))
            connection.request(request.method, target, body=request.body or None, headers=request.headers)
            response = connection.getresponse()
            body = response.read()
        except BaseException:
            connection.close()  # a half-read or stale connection is never reused
            raise
        if response.will_close:
            connection.close()
        return HttpResponse(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


# ---- credentials from the container credentials endpoint --------------------------------


def credentials_uri_allowed(uri: str) -> bool:
    """Whether botocore would fetch credentials from ``uri``: any https URI, or plain HTTP to
    a loopback address or one of the link-local addresses ECS, EKS and Lambda use."""
    parts = urlsplit(uri)
    if parts.scheme == "https":
        return bool(parts.hostname)
    if parts.scheme != "http" or not parts.hostname:
        return False
    import ipaddress  # only when the endpoint is configured: not on the usual cold path

    try:
        return ipaddress.ip_address(parts.hostname).is_loopback or parts.hostname in _CREDENTIALS_HOSTS
    except ValueError:
        return parts.hostname in _CREDENTIALS_HOSTS


class ContainerCredentials:
    """Credentials from the container credentials endpoint, cached until shortly before they expire.

    What Lambda provides under SnapStart (and ECS, EKS Pod Identity): a URI in
    ``AWS_CONTAINER_CREDENTIALS_FULL_URI``, answered with the role's temporary credentials
    when asked with the token of ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` (or read from
    ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`` on every fetch, since it may rotate).
    Nothing is fetched until the first request is signed. Thread-safe: one caller fetches,
    the others wait (mandatory window) or keep signing with the current ones (advisory
    window, see ``ADVISORY_REFRESH_S``).
    """

    def __init__(
        self,
        uri: str,
        *,
        token: str | None = None,
        token_file: str | None = None,
        transport: Transport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.uri = uri
        self.token = token
        self.token_file = token_file
        self.transport: Transport = transport or HttpTransport(read_timeout=CREDENTIALS_READ_TIMEOUT_S)
        self.sleep = sleep
        self.clock = clock
        self._cached: tuple[Credentials, datetime] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> ContainerCredentials | None:
        """The endpoint Lambda names in the environment, if it is one botocore would use too.

        ``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`` (ECS tasks) takes precedence in botocore;
        it is left to boto3, as is anything that would make boto3 look elsewhere first
        (a profile, web identity, a credentials or config file).
        """
        uri = environ.get("AWS_CONTAINER_CREDENTIALS_FULL_URI")
        if not uri or environ.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
            return None
        home = environ.get("HOME")
        if any(environ.get(name) for name in _OTHER_CREDENTIAL_SOURCES) or (
            home
            and any(os.path.exists(os.path.join(home, ".aws", name)) for name in ("credentials", "config"))
        ):
            return None
        if not credentials_uri_allowed(uri):
            return None
        return cls(
            uri,
            token=environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN") or None,
            token_file=environ.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") or None,
        )

    def current(self) -> Credentials:
        cached = self._cached
        left = self._seconds_left(cached)
        if cached is not None and left > ADVISORY_REFRESH_S:
            return cached[0]
        if cached is not None and left > MANDATORY_REFRESH_S:
            if not self._lock.acquire(blocking=False):
                return cached[0]  # advisory window: another caller is refreshing
        else:
            self._lock.acquire()
        try:
            cached = self._cached
            if cached is not None and self._seconds_left(cached) > ADVISORY_REFRESH_S:
                return cached[0]  # refreshed while this caller waited
            try:
                self._cached = self._fetch()
            except AwsServiceError:
                if cached is not None and self._seconds_left(cached) > MANDATORY_REFRESH_S:
                    return cached[0]  # still good for a while: the next call tries again
                raise
            return self._cached[0]
        finally:
            self._lock.release()

    def forget(self) -> None:
        """Drop the cached credentials and the endpoint's connection: the next request
        fetches new ones, on a new connection."""
        with self._lock:
            self._cached = None
            _reset_connections(self.transport)

    def _seconds_left(self, cached: tuple[Credentials, datetime] | None) -> float:
        return (cached[1] - self.clock()).total_seconds() if cached is not None else 0.0

    def _authorization(self) -> str | None:
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as file:
                    token: str | None = file.read()
            except OSError as error:
                raise AwsServiceError(
                    "CredentialsUnavailable", f"cannot read the authorization token file: {error.strerror}"
                ) from error
        else:
            token = self.token
        if token is not None and ("\r" in token or "\n" in token):
            raise AwsServiceError(
                "CredentialsUnavailable", "the authorization token is not a legal header value"
            )
        return token

    def _fetch(self) -> tuple[Credentials, datetime]:
        headers = {"accept": "application/json"}
        token = self._authorization()
        if token:
            headers["authorization"] = token
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                response = self.transport(HttpRequest("GET", self.uri, headers, b""))
            except (OSError, http.client.HTTPException) as error:
                failure = AwsServiceError(
                    "CredentialsUnavailable", f"credentials endpoint: {type(error).__name__}: {error}"
                )
            else:
                if response.status == 200:
                    return _parse_credentials(response.body)
                failure = AwsServiceError(
                    "CredentialsUnavailable",
                    f"credentials endpoint answered {response.status}",
                    status=response.status,
                )
            if attempt == MAX_ATTEMPTS:
                raise failure
            self.sleep(_backoff(failure, attempt))
        raise AssertionError("unreachable")  # the loop returns or raises


_OTHER_CREDENTIAL_SOURCES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)


def _parse_credentials(body: bytes) -> tuple[Credentials, datetime]:
    """The endpoint's ``{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}``."""
    try:
        document = json.loads(body)
        expiration = datetime.fromisoformat(document["Expiration"])
        token = document.get("Token")
        credentials = Credentials(
            str(document["AccessKeyId"]), str(document["SecretAccessKey"]), str(token) if token else None
        )
    except (ValueError, TypeError, KeyError) as error:  # never echo the body: it holds the secret
        raise AwsServiceError(
            "CredentialsUnavailable", f"unreadable credentials response ({type(error).__name__})"
        ) from None
    if not credentials.access_key or not credentials.secret_key:
        raise AwsServiceError("CredentialsUnavailable", "the credentials response has empty keys")
    return credentials, expiration if expiration.tzinfo else expiration.replace(tzinfo=UTC)


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


def _within_deadline(timeout: float) -> float:
    """A socket timeout clipped to the request's deadline (never 0: that means non-blocking)."""
    return max(_MIN_ATTEMPT_S, deadline.clip(timeout))


def _backoff(failure: AwsServiceError, attempt: int) -> float:
    """Full jitter (not a secret: it spreads the retries of many containers apart).

    Throttling backs off as botocore's standard mode does (up to 1 s, then 2 s): retrying
    a throttled table sooner only adds load. Transient failures retry sooner.
    """
    base = THROTTLING_BACKOFF_BASE_S if failure.code in THROTTLING_CODES else BACKOFF_BASE_S
    return random.uniform(0, min(BACKOFF_CAP_S, base * 2 ** (attempt - 1)))  # noqa: S311


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
    """``get_item`` with boto3's arguments and response shape."""

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
        body = json.dumps({"TableName": TableName, "Key": Key, "ConsistentRead": ConsistentRead}).encode()
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
                if "Item" in result:
                    result["Item"] = _decode_item(result["Item"])
            except (ValueError, TypeError, AttributeError) as error:  # not DynamoDB's JSON (a proxy page?)
                return AwsServiceError("InvalidResponse", f"unreadable GetItem response: {error}")
            parsed.append(result)
            return None

        self._send(
            method="POST",
            url=url,
            path=urlsplit(url).path,
            query={},
            headers={
                "content-type": "application/x-amz-json-1.0",
                "x-amz-target": "DynamoDB_20120810.GetItem",
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
