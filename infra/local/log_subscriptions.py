"""The template's CloudWatch Logs subscription filters, run by the local stack.

moto stores subscription filters but never delivers to them (our functions' output does
not go to moto's CloudWatch Logs at all). The local stack reads each
``AWS::Logs::SubscriptionFilter`` from the template, watches what the source function
writes to stdout while it runs, and delivers the matching lines to the destination
function every ``flush_seconds`` as the same ``{"awslogs": {"data": ...}}`` event
CloudWatch Logs sends (gzip, base64), through the in-process invoker.

Only JSON filter patterns of the form ``{ $.field = value }`` (number or quoted string)
are understood — the form the template uses; any other pattern is refused when the
stack starts, so a template that needs more fails loudly rather than capturing nothing.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
import logging
import re
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TextIO

LOGGER = logging.getLogger(__name__)
_JSON_EQUALS = re.compile(
    r"^\{\s*\$\.(?P<field>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>-?\d+(\.\d+)?|\"[^\"]*\")\s*\}$"
)

Invoke = Callable[[str, dict[str, Any]], Any]


class UnsupportedFilterPattern(Exception):
    """A subscription filter pattern the local stack cannot evaluate."""


@dataclass(frozen=True)
class Subscription:
    name: str
    source_function: str  # logical id
    destination_function: str  # logical id
    field: str
    value: Any

    def matches(self, line: str) -> bool:
        # Cheap tests first: every line the function logs passes here.
        if not line.startswith("{") or f'"{self.field}"' not in line:
            return False
        try:
            document = json.loads(line)
        except ValueError:
            return False
        return isinstance(document, dict) and document.get(self.field) == self.value


def parse_pattern(pattern: str) -> tuple[str, Any]:
    match = _JSON_EQUALS.match(pattern.strip())
    if match is None:
        raise UnsupportedFilterPattern(
            f"filter pattern {pattern!r}: the local stack runs only '{{ $.field = value }}' patterns"
        )
    return match["field"], json.loads(match["value"])


def subscriptions_from_template(template: dict[str, Any]) -> list[Subscription]:
    resources = template.get("Resources", {})
    function_of_log_group = {
        properties["LoggingConfig"]["LogGroup"]["Ref"]: logical_id
        for logical_id, resource in resources.items()
        if resource.get("Type") == "AWS::Lambda::Function"
        and isinstance(
            (properties := resource.get("Properties", {})).get("LoggingConfig", {}).get("LogGroup"), dict
        )
    }
    found = []
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Logs::SubscriptionFilter":
            continue
        properties = resource["Properties"]
        field, value = parse_pattern(properties["FilterPattern"])
        source = function_of_log_group.get(properties["LogGroupName"].get("Ref"))
        destination = properties["DestinationArn"].get("Fn::GetAtt", [None])[0]
        if source is None or destination is None:
            raise UnsupportedFilterPattern(
                f"{logical_id}: source or destination is not a function of this stack"
            )
        found.append(
            Subscription(properties.get("FilterName", logical_id), source, destination, field, value)
        )
    return found


class _LineRouter:
    """Stands in for sys.stdout: writes through, and hands each complete line written while a
    subscribed function runs (in this thread) to the subscriptions."""

    def __init__(self, target: TextIO, deliver: Callable[[str, str], None]) -> None:
        self._target = target
        self._deliver = deliver
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        previous = getattr(self._local, "function", None)
        self._local.function, self._local.pending = function, ""
        try:
            yield
        finally:
            self._local.function = previous

    def write(self, text: str) -> int:
        written = self._target.write(text)
        function = getattr(self._local, "function", None)
        if function is not None:
            buffered = self._local.pending + text
            *lines, self._local.pending = buffered.split("\n")
            for line in lines:
                self._deliver(function, line)
        return written


class LogSubscriptions:
    def __init__(self, template: dict[str, Any], invoke: Invoke, *, flush_seconds: float = 1.0) -> None:
        self.subscriptions = subscriptions_from_template(template)
        self._by_source: dict[str, list[Subscription]] = defaultdict(list)
        for subscription in self.subscriptions:
            self._by_source[subscription.source_function].append(subscription)
        self._invoke = invoke
        self._flush_seconds = flush_seconds
        self._pending: dict[Subscription, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._router: _LineRouter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.subscriptions:
            return
        self._router = _LineRouter(sys.stdout, self._collect)
        sys.stdout = self._router
        self._thread = threading.Thread(target=self._run, name="log-subscriptions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()
        if self._router is not None and sys.stdout is self._router:
            sys.stdout = self._router._target

    @contextmanager
    def running(self, function: str) -> Iterator[None]:
        """Watch what ``function`` writes while the block runs (in this thread)."""
        if self._router is None or function not in self._by_source:
            yield
            return
        with self._router.running(function):
            yield

    def _collect(self, function: str, line: str) -> None:
        for subscription in self._by_source.get(function, []):
            if subscription.matches(line):
                now_ms = int(time.time() * 1000)
                event_id = f"{now_ms * 10**36 + next(self._ids):056d}"
                with self._lock:
                    self._pending[subscription].append({"id": event_id, "timestamp": now_ms, "message": line})

    def _run(self) -> None:
        while not self._stop.wait(self._flush_seconds):
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batches, self._pending = dict(self._pending), defaultdict(list)
        for subscription, log_events in batches.items():
            event = _delivery(subscription, log_events)
            try:
                self._invoke(subscription.destination_function, event)
            except Exception:
                # CloudWatch Logs would retry; here the failure is logged with its trace.
                LOGGER.exception(
                    "subscription %s: delivery to %s failed",
                    subscription.name,
                    subscription.destination_function,
                )


def _delivery(subscription: Subscription, log_events: list[dict[str, Any]]) -> dict[str, Any]:
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": f"/aws/lambda/{subscription.source_function}",
        "logStream": "local",
        "subscriptionFilters": [subscription.name],
        "logEvents": log_events,
    }
    return {"awslogs": {"data": base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()}}
