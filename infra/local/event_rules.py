"""The template's EventBridge rules, run by the local stack where moto does not.

moto keeps rules and matches events against their patterns, but it delivers only to SQS,
CloudWatch Logs, archives and other buses: a rule whose target is a Lambda function or a
state machine raises ``NotImplementedError`` inside ``PutEvents``, and a rule with a
``ScheduleExpression`` never fires. This module is the one place that fills both gaps:

- **Pattern rules** — ``install`` wraps moto's ``Rule.send_to_targets``: moto keeps the
  targets it supports; Lambda and Step Functions targets are dispatched by this module, on
  a worker thread (EventBridge delivers asynchronously: ``PutEvents`` never waits for the
  target), with the target's ``Input``, ``InputPath`` or ``InputTransformer`` applied by
  moto's own template parser.
- **Schedule rules** — ``rate(N unit)`` rules fire every N units divided by ``speedup``
  (``mlops up --schedule-speedup 60`` makes an hourly rule fire every minute), with the
  event EventBridge sends (``detail-type: Scheduled Event``, ``source: aws.events``) or the
  target's constant ``Input``. ``cron(...)`` expressions are refused when the stack starts:
  a template that needs them fails loudly rather than never firing.
"""

from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LOGGER = logging.getLogger(__name__)

#: Runs one function of the stack by logical id with an event (the stack's invoker).
Invoke = Callable[[str, dict[str, Any]], Any]
#: Starts one state machine (by ARN) with an input document.
StartExecution = Callable[[str, str], Any]

_RATE = re.compile(r"^rate\((?P<n>\d+) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class UnsupportedSchedule(Exception):
    """A schedule expression the local stack cannot run."""


def schedule_seconds(expression: str) -> float:
    """The period of a ``rate(...)`` expression in seconds."""
    match = _RATE.match(expression.strip())
    if match is None:
        raise UnsupportedSchedule(
            f"the local stack runs rate(N minute[s]|hour[s]|day[s]) schedules only, not {expression!r}"
        )
    n = int(match["n"])
    if n == 0 or (n == 1) != (not match["unit"].endswith("s")):
        raise UnsupportedSchedule(f"{expression!r} is not a valid rate (rate(1 hour), rate(5 minutes))")
    return float(n * _UNIT_SECONDS[match["unit"].rstrip("s")])


@dataclass(frozen=True)
class ScheduledRule:
    logical_id: str
    period_seconds: float
    targets: tuple[dict[str, Any], ...]  # the template's target declarations


def scheduled_rules(template: dict[str, Any]) -> list[ScheduledRule]:
    """The template's enabled rules with a schedule (raises ``UnsupportedSchedule``)."""
    rules = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Events::Rule":
            continue
        properties = resource.get("Properties", {})
        expression = properties.get("ScheduleExpression")
        if expression is None or properties.get("State", "ENABLED") != "ENABLED":
            continue
        rules.append(
            ScheduledRule(logical_id, schedule_seconds(expression), tuple(properties.get("Targets", [])))
        )
    return rules


def scheduled_event(rule_arn: str, *, region: str, account: str) -> dict[str, Any]:
    """The event EventBridge sends a scheduled rule's targets."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class EventRules:
    """Delivers the stack's rule targets that moto cannot, and fires its schedules."""

    def __init__(
        self,
        template: dict[str, Any],
        invoke: Invoke,
        start_execution: StartExecution,
        *,
        function_names: dict[str, str],
        resolve: Callable[[str], str | None],
        speedup: float = 1.0,
    ) -> None:
        if speedup <= 0:
            raise ValueError(f"speedup must be positive, not {speedup}")
        self.schedules = scheduled_rules(template)
        self.invoke = invoke
        self.start_execution = start_execution
        #: Function name -> logical id (targets name functions by ARN).
        self.function_ids = {name: logical_id for logical_id, name in function_names.items()}
        #: A target's logical id (``Fn::GetAtt``/``Ref`` in the template) -> its ARN.
        self.resolve = resolve
        self.speedup = speedup
        self._deliveries: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.delivered = 0  # for tests and the banner

    # ---- delivery -----------------------------------------------------------------------
    def handles(self, arn: str) -> bool:
        return arn.split(":")[2:3] in (["lambda"], ["states"])

    def deliver(self, target_arn: str, payload: dict[str, Any]) -> None:
        """Queue one delivery (returns at once, as PutEvents does)."""
        self._deliveries.put((target_arn, payload))

    def _deliver_now(self, target_arn: str, payload: dict[str, Any]) -> None:
        service = target_arn.split(":")[2]
        if service == "states":
            self.start_execution(target_arn, json.dumps(payload))
        else:
            name = target_arn.split(":")[6]
            logical_id = self.function_ids.get(name)
            if logical_id is None:
                LOGGER.error("rule target %s is not a function of this stack", target_arn)
                return
            self.invoke(logical_id, payload)
        self.delivered += 1

    def _work(self) -> None:
        while True:
            item = self._deliveries.get()
            if item is None:
                return
            try:
                self._deliver_now(*item)
            except Exception:
                # EventBridge retries and then drops (or dead-letters) a failed delivery; the
                # local stack logs it, which is what a developer needs to see.
                LOGGER.exception("delivery to %s failed", item[0])

    # ---- schedules ------------------------------------------------------------------------
    def fire(self, rule: ScheduledRule, *, rule_arn: str, region: str, account: str) -> None:
        for target in rule.targets:
            payload = json.loads(target["Input"]) if "Input" in target else None
            for arn in _target_arns(target, self.resolve):
                self.deliver(arn, payload or scheduled_event(rule_arn, region=region, account=account))

    def _tick(self, rule: ScheduledRule, region: str, account: str) -> None:
        period = rule.period_seconds / self.speedup
        rule_arn = f"arn:aws:events:{region}:{account}:rule/{rule.logical_id}"
        while not self._stop.wait(period):
            self.fire(rule, rule_arn=rule_arn, region=region, account=account)

    def start(self, *, region: str, account: str) -> None:
        worker = threading.Thread(target=self._work, name="event-rules", daemon=True)
        self._threads = [worker]
        for rule in self.schedules:
            self._threads.append(
                threading.Thread(
                    target=self._tick,
                    args=(rule, region, account),
                    name=f"schedule-{rule.logical_id}",
                    daemon=True,
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._deliveries.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []


def _target_arns(target: dict[str, Any], resolve: Callable[[str], str | None]) -> Iterator[str]:
    arn = target.get("Arn")
    if isinstance(arn, str):
        yield arn
    elif isinstance(arn, dict) and "Fn::GetAtt" in arn:
        resolved = resolve(arn["Fn::GetAtt"][0])
        if resolved is not None:
            yield resolved
    elif isinstance(arn, dict) and "Ref" in arn:
        resolved = resolve(arn["Ref"])
        if resolved is not None:
            yield resolved


# ---- moto's pattern rules ----------------------------------------------------------------
_installed: list[EventRules] = []


def install(rules: EventRules) -> None:
    """Route moto's deliveries to Lambda and Step Functions targets through ``rules``."""
    _installed[:] = [rules]
    patch_moto()


def patch_moto() -> None:
    """Make moto's ``PutEvents`` behave as EventBridge's where the stack depends on it
    (idempotent; ``deploy_template`` calls it, so every moto deployment of the template has it):

    - a rule with a ``ScheduleExpression`` matches no event (moto treats its empty pattern as
      matching every event on its bus, and then fails on its Lambda target);
    - once ``install`` gave it an ``EventRules``, Lambda and Step Functions targets are
      delivered by it; moto keeps the targets it supports.
    """
    from moto.events import models
    from moto.events.models import EventTemplateParser

    if getattr(models.Rule, "_mlops_original_send", None) is not None:
        return
    original = models.Rule.send_to_targets

    def send_to_targets(self: Any, original_event: Any, transform_input: bool = True) -> None:
        if getattr(self, "scheduled_expression", None):
            return
        ours = [t for t in self.targets if _installed and _installed[0].handles(t["Arn"])]
        if ours and self.event_pattern.matches_event(original_event):
            delivered = as_delivered(original_event)
            for target in ours:
                _installed[0].deliver(target["Arn"], _payload(target, delivered, EventTemplateParser))
        theirs = [t for t in self.targets if t not in ours]
        saved, self.targets = self.targets, theirs
        try:
            original(self, original_event, transform_input)
        finally:
            self.targets = saved

    models.Rule._mlops_original_send = original  # type: ignore[attr-defined]
    models.Rule.send_to_targets = send_to_targets  # type: ignore[method-assign]


def as_delivered(event: dict[str, Any]) -> dict[str, Any]:
    """The event as EventBridge delivers it: moto keeps ``time`` as Unix seconds (a float) and
    converts it only for its own targets; EventBridge sends ISO 8601 to the second, in UTC
    (``2026-12-01T14:08:53Z``), which the retrain function stamps its run ids with."""
    moment = event.get("time")
    if isinstance(moment, int | float):
        return {**event, "time": datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return dict(event)


def _payload(target: dict[str, Any], event: dict[str, Any], parser: Any) -> dict[str, Any]:
    if "Input" in target:
        parsed: dict[str, Any] = json.loads(target["Input"])
        return parsed
    if "InputPath" in target:
        return _json_path(event, target["InputPath"])
    transformer = target.get("InputTransformer")
    if transformer:
        rendered = parser.parse(
            input_template=transformer.get("InputTemplate"),
            input_paths_map=transformer.get("InputPathsMap", {}),
            event=event,
        )
        return rendered if isinstance(rendered, dict) else json.loads(rendered)
    return dict(event)


def _json_path(event: dict[str, Any], path: str) -> Any:
    """``$.detail`` or ``$.detail.model_name``: the simple paths InputPath takes."""
    value: Any = event
    for part in path.removeprefix("$").strip(".").split("."):
        if part:
            value = value[part]
    return value


def waited_for(rules: EventRules, count: int, timeout: float = 10.0) -> bool:
    """True once ``count`` deliveries were made (tests)."""
    until = time.monotonic() + timeout
    while rules.delivered < count and time.monotonic() < until:
        time.sleep(0.05)
    return rules.delivered >= count
