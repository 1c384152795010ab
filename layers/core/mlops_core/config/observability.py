"""Tracing that costs nothing when it is off, and the metrics every API function emits.

Powertools' ``Tracer()`` imports the X-Ray SDK (~150 ms) even when tracing is disabled.
``make_tracer`` returns a real Tracer only when tracing is on (the deployed functions:
tracing ACTIVE), and otherwise a stand-in whose decorators return the function as is.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])


class TracerLike(Protocol):
    """What the functions use of a tracer, typed so that decorated handlers keep their types."""

    def capture_method(self, method: F) -> F: ...

    def capture_lambda_handler(self, lambda_handler: F) -> F: ...

    def put_annotation(self, key: str, value: Any) -> None: ...


class _NoTracer:
    def capture_method(self, method: F | None = None, **_: Any) -> Any:
        return method if method is not None else (lambda function: function)

    def capture_lambda_handler(self, handler: F | None = None, **_: Any) -> Any:
        return handler if handler is not None else (lambda function: function)

    # Same signatures as Powertools' Tracer (callers pass these by name).
    def put_annotation(self, key: str, value: Any) -> None:  # noqa: ARG002
        return None

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:  # noqa: ARG002
        return None


def tracing_enabled() -> bool:
    return os.environ.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() not in {"1", "true", "yes"}


def make_tracer(*, patch_modules: Sequence[str] | None = None) -> TracerLike:
    """A Powertools Tracer when tracing is on, else a no-op with the same decorators.

    ``patch_modules`` limits which libraries X-Ray instruments (default: every supported
    one installed, which imports each of them). A function whose AWS calls are all signed
    reads (``mlops_core.storage.signed_reads``, over ``http.client``) passes ``("httplib",)`` and so
    does not import botocore just to patch it.
    """
    if not tracing_enabled():
        return cast(TracerLike, _NoTracer())
    from aws_lambda_powertools import Tracer

    return cast(TracerLike, Tracer(patch_modules=list(patch_modules) if patch_modules is not None else None))


def count_errors(metrics: Any, response: dict[str, Any]) -> None:
    """``ClientErrors`` / ``ServerErrors`` (EMF) for a 4xx / 5xx response: what alarms watch."""
    status = int(response.get("statusCode", 500))
    if status >= 400:
        metrics.add_metric(name="ServerErrors" if status >= 500 else "ClientErrors", unit="Count", value=1)
