"""One deadline per request, that every dependency call and its retries fit inside.

The HTTP entry point (``mlops_core.http.resolve``) starts it from the function's
remaining time (less a margin to answer in, and never past API Gateway's 29 s), so a
slow dependency becomes a 503 with ``Retry-After`` while the function can still answer,
never a Lambda timeout that API Gateway turns into a 502. The signed reads clip their
socket timeouts and back-off sleeps to it; boto3 calls check it before every attempt.

A ``ContextVar``: each request (and each thread) sees its own; code run with no deadline
(workflow steps, tests) keeps each client's own timeouts and retries.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from mlops_core.errors import Unavailable

#: API Gateway's integration timeout for REST APIs.
API_GATEWAY_TIMEOUT_S = 29.0
#: Time kept back to build and return the response (and its error body) after a failure.
RESPONSE_MARGIN_S = 0.5

_deadline: ContextVar[float | None] = ContextVar("mlops_request_deadline", default=None)


@contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Within the block, dependency calls must finish ``seconds`` from now."""
    token = _deadline.set(time.monotonic() + max(0.0, seconds))
    try:
        yield
    finally:
        _deadline.reset(token)


def seconds_for_request(remaining_ms: int | None) -> float:
    """The budget of a request given the function's remaining time (None: API Gateway's limit)."""
    available = (
        API_GATEWAY_TIMEOUT_S if remaining_ms is None else min(remaining_ms / 1000, API_GATEWAY_TIMEOUT_S)
    )
    return available - RESPONSE_MARGIN_S


def remaining() -> float | None:
    """Seconds left before the deadline (may be negative), or None when there is none."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def clip(seconds: float) -> float:
    """``seconds``, or less if the deadline comes sooner."""
    left = remaining()
    return seconds if left is None else max(0.0, min(seconds, left))


def check(what: str, *, needed: float = 0.0) -> None:
    """Refuse to start a call that cannot finish in time (``needed``: its worst case)."""
    left = remaining()
    if left is not None and left <= needed:
        raise Unavailable(f"{what} did not answer within the request's deadline", retry_after_seconds=1)
