"""AWS clients and the translation of AWS failures into domain exceptions.

Clients are created once per process (cold start) and reused. ``AWS_ENDPOINT_URL``
(honoured by boto3 itself) points them at the local stack.

boto3 is imported on first use, not with this module: the inference function reads
through ``reader`` (``mlops_core.storage.signed_reads``) and never loads botocore at all, which is
about 300 ms of its cold start.

Under Lambda SnapStart, ``register_snapstart_hooks`` makes what a snapshot freezes safe to
use in each environment restored from it (connections, credentials, the random seed).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from mlops_core.errors import Conflict, Invalid, NotFound, Unavailable
from mlops_core.storage import deadline
from mlops_core.storage.aws_http import (
    CONNECT_TIMEOUT_S,
    MAX_ATTEMPTS,
    READ_TIMEOUT_S,
    THROTTLING_CODES,
    AwsServiceError,
)
from mlops_core.storage.container_credentials import ContainerCredentials
from mlops_core.storage.signed_reads import DynamoDBReader, S3Reader, readers_from_environment

if TYPE_CHECKING:
    import boto3

# Short timeouts and bounded retries: a prediction call must fail fast with a 503
# rather than hang until API Gateway's 29 s limit (the signed readers use the same).
_CLIENT_CONFIG = {
    "connect_timeout": CONNECT_TIMEOUT_S,
    "read_timeout": READ_TIMEOUT_S,
    "retries": {"mode": "standard", "max_attempts": MAX_ATTEMPTS},
}
# Set to "false" to send every read through boto3 (an escape hatch, not a tuning knob).
SIGNED_READS_ENV = "MLOPS_SIGNED_READS"

_NOT_FOUND = {"NoSuchKey", "NoSuchVersion", "404", "NotFound"}
#: ``AWS_LAMBDA_INITIALIZATION_TYPE`` of an environment that runs under SnapStart.
SNAPSTART_INITIALIZATION = "snap-start"

LOGGER = logging.getLogger(__name__)


_clients: dict[str, Any] = {}
_session: list[boto3.session.Session] = []
_readers: dict[str, DynamoDBReader | S3Reader | None] = {}
_reads_endpoint: list[str] = []
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
                import boto3
                from botocore.config import Config

                if not _session:
                    _session.append(boto3.session.Session())
                found = _session[0].client(service, config=Config(**_CLIENT_CONFIG))
                found.meta.events.register("before-send", _attempt_within_deadline)
                _clients[service] = found
    return found


def _attempt_within_deadline(**_: Any) -> None:
    """botocore calls this before every attempt (retries too): an attempt that could
    outlast the request's deadline is not started (``mlops_core.storage.deadline``)."""
    deadline.check("a dependency", needed=CONNECT_TIMEOUT_S + READ_TIMEOUT_S)


def reader(service: Literal["dynamodb", "s3"]) -> Any:
    """The client for reads by key: ``get_item`` and ``batch_get_item`` (DynamoDB; also the
    materializer's ``batch_write_item``), ``get_object`` (S3).

    A signed reader from ``mlops_core.storage.signed_reads`` when the environment is one it fully
    understands (credentials in the environment, as Lambda provides them; a region of a
    known partition or a configured endpoint; no FIPS or dual-stack endpoint), else the
    boto3 client. Both take the same arguments and return the same shape.
    """
    if service not in _readers:
        with _clients_lock:
            if service not in _readers:
                readers = None
                if os.environ.get(SIGNED_READS_ENV, "true").lower() != "false":
                    endpoint = _reads_endpoint[0] if _reads_endpoint else None
                    readers = readers_from_environment(endpoint_url=endpoint)
                _readers["dynamodb"], _readers["s3"] = readers or (None, None)
    return _readers[service] or client(service)


def send_reads_to(endpoint_url: str | None) -> None:
    """Point the signed readers at ``endpoint_url`` whatever the environment says.

    For tests that run moto in-process: boto3 calls are intercepted there, plain HTTP is
    not, so the readers go to a moto server thread sharing the same in-memory state.
    """
    with _clients_lock:
        _reads_endpoint[:] = [endpoint_url] if endpoint_url else []
        _readers.clear()


def under_snapstart() -> bool:
    """Whether this environment is initialized for a SnapStart snapshot (or restored from one)."""
    return os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == SNAPSTART_INITIALIZATION


def register_snapstart_hooks(before_snapshot: Callable[[], None], after_restore: Callable[[], None]) -> bool:
    """Register SnapStart runtime hooks, only when running under SnapStart.

    ``before_snapshot`` runs once, before Lambda takes the snapshot (warm what a restored
    environment should find ready); ``after_restore`` in every environment restored from it.
    Around them this module's own steps run: after ``before_snapshot``, credentials are
    forgotten (not kept in the snapshot) and connections closed; before ``after_restore``,
    ``refresh_after_restore``. Returns whether the hooks were registered.

    ``snapshot_restore_py`` ships with Lambda's Python runtimes; it is imported here only
    under SnapStart, so a normal cold start, the local stack and the tests never load it.
    """
    if not under_snapstart():
        return False
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # not Lambda's runtime: nothing will take a snapshot
        LOGGER.warning("AWS_LAMBDA_INITIALIZATION_TYPE is snap-start but snapshot_restore_py is missing")
        return False
    # Before-snapshot hooks run in the reverse order of registration, after-restore hooks in order.
    register_before_snapshot(_before_snapshot)
    register_before_snapshot(before_snapshot)
    register_after_restore(refresh_after_restore)
    register_after_restore(after_restore)
    return True


def _before_snapshot() -> None:
    for credentials in _container_credentials():
        credentials.forget()
    _reset_connections()


def refresh_after_restore() -> None:
    """Make what the snapshot froze safe to use in this environment.

    - ``random`` is re-seeded: every environment restored from one snapshot would otherwise
      draw the same retry jitter (uuid4 and ``secrets`` read the OS and need nothing).
    - The readers' connections are dropped; boto3 clients are forgotten and created again
      on first use (with their own connection pools and credentials).
    - Credentials from the container credentials endpoint are fetched anew now, so that the
      first request does not wait for them; a failure here is logged, and that request
      fetches them instead.
    """
    import random

    random.seed()
    _reset_connections()
    with _clients_lock:
        _clients.clear()
        _session.clear()
    for credentials in _container_credentials():
        credentials.forget()
        try:
            credentials.current()
        except AwsServiceError as error:
            LOGGER.warning("credentials not refreshed after restore: %s", error)


def _reset_connections() -> None:
    for found in list(_readers.values()):
        if found is not None:
            found.reset_connections()


def _container_credentials() -> list[ContainerCredentials]:
    found = {
        id(reader.credentials): reader.credentials
        for reader in list(_readers.values())
        if reader is not None and isinstance(reader.credentials, ContainerCredentials)
    }
    return list(found.values())


def error_code(error: Any) -> str:
    """The AWS error code of a botocore ``ClientError``."""
    return str(error.response.get("Error", {}).get("Code", ""))


def reset_clients() -> None:
    """Forget cached clients, readers and the session (tests that change endpoints or credentials)."""
    with _clients_lock:
        _clients.clear()
        _session.clear()
        _readers.clear()


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
    except AwsServiceError as error:
        if error.code == "ConnectionError":
            # The message names the host: kept in the exception chain (logs), not in the answer.
            raise Unavailable(f"{what} is unreachable", retry_after_seconds=2) from error
        _raise_for_code(what, error.code, error, error.message)
    except Exception as error:
        # botocore's exceptions, without importing botocore where it was never loaded.
        botocore_errors = sys.modules.get("botocore.exceptions")
        if botocore_errors is None:
            raise
        if isinstance(error, botocore_errors.ClientError):
            message = str(error.response.get("Error", {}).get("Message", ""))
            _raise_for_code(what, error_code(error), error, message)
        if isinstance(error, botocore_errors.BotoCoreError):
            raise Unavailable(
                f"{what} is unreachable ({type(error).__name__})", retry_after_seconds=2
            ) from error
        raise


def _raise_for_code(what: str, code: str, error: Exception, message: str = "") -> NoReturn:
    if code == "ConditionalCheckFailedException":
        raise Conflict(f"{what}: the item changed or already exists") from error
    if code == "TransactionCanceledException":
        response = getattr(error, "response", {})
        reasons = [
            None if r.get("Code") in (None, "None") else r.get("Code")
            for r in response.get("CancellationReasons", [])
        ]
        if "ConditionalCheckFailed" in reasons:
            conflict = Conflict(f"{what}: the item changed or already exists")
            # Which operations failed their condition, in request order (None: it passed), so a
            # caller can drop or re-read exactly those and retry the rest.
            conflict.cancellation_reasons = reasons
            raise conflict from error
        if "ValidationError" in reasons:  # retrying cannot help: a value DynamoDB refuses
            raise Invalid(f"{what} refused a value in the request") from error
        if any(r in {"ThrottlingError", "ProvisionedThroughputExceeded"} for r in reasons):
            unavailable = Unavailable(f"{what} is throttled, retry shortly", retry_after_seconds=1)
        else:  # e.g. TransactionConflict: another transaction was changing one of the items
            unavailable = Unavailable(f"{what}: transaction cancelled ({', '.join(map(str, reasons))})")
        unavailable.cancellation_reasons = reasons
        raise unavailable from error
    if code in {"PreconditionFailed", "ConditionalRequestConflict"}:  # S3 conditional writes
        raise Conflict(f"{what}: the object changed or already exists") from error
    if code in _NOT_FOUND:
        raise NotFound(f"{what}: object not found") from error
    if code == "ValidationException":  # retrying cannot help: an item too large, say
        raise Invalid(f"{what} refused the request: {message or code}") from error
    if code in THROTTLING_CODES:
        raise Unavailable(f"{what} is throttled, retry shortly", retry_after_seconds=1) from error
    raise Unavailable(f"{what} is unavailable ({code or 'error'})", retry_after_seconds=2) from error
