"""Credentials from the container credentials endpoint (``AWS_CONTAINER_CREDENTIALS_FULL_URI``
with ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` or ``_FILE``), as Lambda provides them under
SnapStart: fetched on first use, cached, refreshed before they expire in botocore's two
windows (advisory: one caller refreshes; mandatory: every caller waits), thread-safe.
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from urllib.parse import urlsplit

from mlops_core.storage.aws_http import (
    MAX_ATTEMPTS,
    AwsServiceError,
    HttpRequest,
    HttpTransport,
    Transport,
    _backoff,
    _reset_connections,
)
from mlops_core.storage.sigv4 import Credentials

# Container credentials are refreshed this long before they expire: in the advisory
# window one caller refreshes while the others keep signing with the current ones; in the
# mandatory window every caller waits for new ones (botocore's two windows).
ADVISORY_REFRESH_S = 15 * 60


MANDATORY_REFRESH_S = 10 * 60


CREDENTIALS_READ_TIMEOUT_S = 2.0


# Where botocore lets a plain-HTTP credentials URI point (any https URI is allowed):
# loopback, ECS/EKS/Lambda's link-local addresses.
_CREDENTIALS_HOSTS = frozenset({"169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"})


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


_OTHER_CREDENTIAL_SOURCES = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
)
