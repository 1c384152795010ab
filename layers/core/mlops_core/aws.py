"""boto3 clients and the translation of AWS failures into domain exceptions.

Clients are created once per process (cold start) and reused. ``AWS_ENDPOINT_URL``
(honoured by boto3 itself) points them at the local stack.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from mlops_core.errors import Conflict, NotFound, Unavailable

# Short timeouts and bounded retries: a prediction call must fail fast with a 503
# rather than hang until API Gateway's 29 s limit.
_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"mode": "standard", "max_attempts": 3},
)

_THROTTLING = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "SlowDown",
    "TooManyRequestsException",
}
_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}


_clients: dict[str, Any] = {}
_session: list[boto3.session.Session] = []
# Clients are thread-safe, the session creating them is not (the local stack runs Map
# iterations in threads): creation is serialized, use is not.
_clients_lock = threading.Lock()


def client(service: str) -> Any:
    """A process-wide boto3 client for ``service``.

    Every client comes from one session, so endpoint rules, partitions and credentials
    are loaded once (a session per client cost ~100 ms more on a cold start).
    """
    found = _clients.get(service)
    if found is None:
        with _clients_lock:
            found = _clients.get(service)
            if found is None:
                if not _session:
                    _session.append(boto3.session.Session())
                found = _clients[service] = _session[0].client(service, config=_CLIENT_CONFIG)
    return found


def reset_clients() -> None:
    """Forget cached clients and their session (tests that change endpoints or credentials)."""
    with _clients_lock:
        _clients.clear()
        _session.clear()


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn AWS failures raised inside the block into domain exceptions.

    ``what`` names the dependency in the message a caller sees ("metadata table",
    "artifact store"). Conditional-check failures become ``Conflict``; missing S3
    objects ``NotFound``; throttling, timeouts and anything else ``Unavailable``,
    so that a dependency failure is a 503 and never a 500 with a stack trace.
    """
    try:
        yield
    except ClientError as error:
        code = error_code(error)
        if code == "ConditionalCheckFailedException":
            raise Conflict(f"{what}: the item changed or already exists") from error
        if code == "TransactionCanceledException":
            reasons = [r.get("Code") for r in error.response.get("CancellationReasons", [])]
            if "ConditionalCheckFailed" in reasons:
                raise Conflict(f"{what}: the item changed or already exists") from error
            if any(r in {"ThrottlingError", "ProvisionedThroughputExceeded"} for r in reasons):
                raise Unavailable(f"{what} is throttled, retry shortly", retry_after_seconds=1) from error
            raise Unavailable(f"{what}: transaction cancelled ({', '.join(map(str, reasons))})") from error
        if code in _NOT_FOUND:
            raise NotFound(f"{what}: object not found") from error
        if code in _THROTTLING:
            raise Unavailable(f"{what} is throttled, retry shortly", retry_after_seconds=1) from error
        raise Unavailable(f"{what} is unavailable ({code or 'error'})", retry_after_seconds=2) from error
    except BotoCoreError as error:
        raise Unavailable(f"{what} is unreachable ({type(error).__name__})", retry_after_seconds=2) from error
