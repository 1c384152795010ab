"""Domain exceptions.

Adapters translate AWS errors into these, and ``mlops_core.http`` maps them to
HTTP responses in one place, so handlers never see a botocore exception.
"""

from __future__ import annotations

from typing import Any


class MlopsError(Exception):
    """Base class of every error the core raises on purpose."""

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class NotFound(MlopsError):
    """The named model, version, alias or object does not exist."""


class Conflict(MlopsError):
    """The request contradicts the current state (exists already, stale revision).

    ``retry_after_seconds``, when given, says the state is expected to change by then (a
    prediction not captured yet, say): the same request may then succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        current: dict[str, Any] | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        super().__init__(message, details=details)
        self.current = current
        self.retry_after_seconds = retry_after_seconds
        #: For a cancelled DynamoDB transaction: each operation's cancellation code, in the
        #: order they were sent ("ConditionalCheckFailed", or None where it passed).
        self.cancellation_reasons: list[str | None] = []


class Invalid(MlopsError):
    """The caller sent something wrong; ``details`` lists each problem with its location."""


class Unavailable(MlopsError):
    """A dependency is throttled or down; the same request may succeed later."""

    def __init__(
        self, message: str, *, retry_after_seconds: int = 1, details: list[dict[str, Any]] | None = None
    ) -> None:
        super().__init__(message, details=details)
        self.retry_after_seconds = retry_after_seconds
        #: For a cancelled DynamoDB transaction: each operation's cancellation code, in order
        #: ("TransactionConflict", "ThrottlingError"..., or None), as on ``Conflict``.
        self.cancellation_reasons: list[str | None] = []


class IntegrityError(Unavailable):
    """A stored artifact does not match the checksum the registry recorded for it.

    Served as 503: the caller did nothing wrong, and nothing is served from that artifact.
    """


def detail(loc: list[str | int], msg: str, type_: str) -> dict[str, Any]:
    """One field-level problem, shaped like pydantic's validation errors."""
    return {"loc": loc, "msg": msg, "type": type_}
