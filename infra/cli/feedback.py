"""`mlops feedback send`: feedback on predictions, one (`--prediction-id`) or a JSON Lines file.

Each line of a file is one feedback, ``{"prediction_id": ..., "reward": 0|1}`` or
``{"prediction_id": ..., "label": ...}``, checked here with the API's own model
(``mlops_core.feedback.requests.FeedbackEntry``): a file with a malformed line is refused
before anything is sent, naming each bad line. The rest goes in batches of 100.

A prediction made a moment ago may not be in the prediction log yet (409, "not captured
yet"): those items are sent again, after the Retry-After the API gives, for up to
``wait`` seconds. Feedback is idempotent, so sending again is always safe.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from mlops_core.feedback.requests import MAX_FEEDBACK_PER_CALL, FeedbackEntry

NOT_CAPTURED = 409
#: Longest pause between two attempts at items not captured yet.
MAX_PAUSE_SECONDS = 5.0


class BadFeedback(ValueError):
    """The caller's feedback cannot be sent as it is; ``problems`` lists each (line: what)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
        super().__init__(shown)


def parse_label(text: str) -> Any:
    """``--label``: JSON when it is a JSON scalar (``1``, ``true``, ``"1"``), else the text itself."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return text
    return value if isinstance(value, str | int | float | bool) else text


def entry(prediction_id: str, *, reward: int | None, label: Any) -> dict[str, Any]:
    """One feedback as the API takes it (``BadFeedback`` if the API would refuse it)."""
    body: dict[str, Any] = {"prediction_id": prediction_id}
    if reward is not None:
        body["reward"] = reward
    if label is not None:
        body["label"] = label
    try:
        FeedbackEntry.model_validate(body)
    except ValidationError as error:
        raise BadFeedback([_describe(e) for e in error.errors()]) from None
    return body


def read_lines(text: str) -> list[tuple[int, dict[str, Any]]]:
    """(line number, feedback) for each non-blank line; ``BadFeedback`` naming every bad line."""
    entries, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"line {number}: not JSON ({error.msg}, column {error.colno})")
            continue
        try:
            FeedbackEntry.model_validate(value)
        except ValidationError as error:
            problems.extend(f"line {number}: {_describe(e)}" for e in error.errors())
            continue
        entries.append((number, value))
    if problems:
        raise BadFeedback(problems)
    if not entries:
        raise BadFeedback(["the file has no feedback (one JSON object per line)"])
    return entries


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()))
    return f"{where}: {error['msg']}" if where else str(error["msg"])


@dataclass
class Sent:
    """What the API answered for each item (in the order given), once retries are over."""

    results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.get("status") != 200)

    def summary(self) -> dict[str, Any]:
        ok = [r for r in self.results if r.get("status") == 200]
        return {
            "results": self.results,
            "recorded": sum(1 for r in ok if not r.get("duplicate")),
            "duplicates": sum(1 for r in ok if r.get("duplicate")),
            "failed": self.failed,
        }


def send_batches(
    post: Callable[[list[dict[str, Any]]], dict[str, Any]],
    entries: list[dict[str, Any]],
    *,
    wait: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] | None = None,
) -> Sent:
    """Send ``entries`` in batches; send again those not captured yet, for up to ``wait`` seconds."""
    sleep = sleep or time.sleep
    results: list[dict[str, Any] | None] = [None] * len(entries)
    pending = list(range(len(entries)))
    deadline = clock() + wait
    while True:
        for start in range(0, len(pending), MAX_FEEDBACK_PER_CALL):
            chunk = pending[start : start + MAX_FEEDBACK_PER_CALL]
            answer = post([entries[i] for i in chunk])
            for i, result in zip(chunk, answer["results"], strict=True):
                results[i] = result
        waiting = [i for i in pending if (results[i] or {}).get("status") == NOT_CAPTURED]
        pause = min(
            MAX_PAUSE_SECONDS,
            max((float((results[i] or {}).get("retry_after_seconds") or 1) for i in waiting), default=0),
        )
        if not waiting or clock() + pause > deadline:
            return Sent([r for r in results if r is not None])
        sleep(pause)
        pending = waiting


def retry_not_captured(
    send: Callable[[], dict[str, Any]],
    is_not_captured: Callable[[Exception], float | None],
    *,
    wait: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """``send()`` one feedback; while it fails as not captured yet (``is_not_captured`` gives the
    pause, or None for any other failure), try again for up to ``wait`` seconds."""
    sleep = sleep or time.sleep
    deadline = clock() + wait
    while True:
        try:
            return send()
        except Exception as error:
            pause = is_not_captured(error)
            if pause is None or clock() + pause > deadline:
                raise
            sleep(min(MAX_PAUSE_SECONDS, pause))
