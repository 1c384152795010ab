"""The signed reads' HTTP: requests and responses as plain values, one kept-alive
``http.client`` connection per host and thread, timeouts clipped to the request's deadline,
and ``AwsServiceError`` for failures (``translate_errors`` maps it like a ``ClientError``).

Only the standard library: this module is on the inference cold path.
"""

from __future__ import annotations

import http.client
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlops_core.storage import deadline

CONNECT_TIMEOUT_S = 2.0


READ_TIMEOUT_S = 5.0


# An attempt with less time than this left is not started (the request's deadline).
_MIN_ATTEMPT_S = 0.05


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


def _within_deadline(timeout: float) -> float:
    """A socket timeout clipped to the request's deadline (never 0: that means non-blocking)."""
    return max(_MIN_ATTEMPT_S, deadline.clip(timeout))


MAX_ATTEMPTS = 3


BACKOFF_BASE_S = 0.05


THROTTLING_BACKOFF_BASE_S = 1.0


BACKOFF_CAP_S = 20.0


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


def _backoff(failure: AwsServiceError, attempt: int) -> float:
    """Full jitter (not a secret: it spreads the retries of many containers apart).

    Throttling backs off as botocore's standard mode does (up to 1 s, then 2 s): retrying
    a throttled table sooner only adds load. Transient failures retry sooner.
    """
    base = THROTTLING_BACKOFF_BASE_S if failure.code in THROTTLING_CODES else BACKOFF_BASE_S
    return random.uniform(0, min(BACKOFF_CAP_S, base * 2 ** (attempt - 1)))  # noqa: S311
