"""A rollout step's verdict: the candidate's window against production's baseline.

The rules, in order:
1. Too few candidate calls in the window (``min_calls``): nothing is judged; the step is
   held, rolled back or let through as ``on_insufficient_traffic`` says.
2. Otherwise each guardrail is checked: error rate (the candidate's minus production's,
   production counting as 0 errors without calls), p99 latency against production's
   (a ratio, above a floor) and against an absolute limit, and, when asked for, the reward
   rate (both sides need ``min_rewards``; too few is insufficient traffic, as in 1).
3. Any trip: roll back. None, and enough data: proceed.

How often a held step may be held again is the service's to count (``max_holds``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_core.routing.rollout.entities import Decision, Guardrails, Measurement, Trip
from mlops_core.routing.state import LATENCY_BUCKETS_MS, VariantTotals

#: Rates compared within this are equal (0.05 - 0.03 is 0.020000000000000004).
EPSILON = 1e-9


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    candidate: Measurement
    production: Measurement
    tripped: tuple[Trip, ...]
    message: str


def judge(candidate: VariantTotals, production: VariantTotals, guardrails: Guardrails) -> Verdict:
    """The verdict on ``candidate`` (its step's window) against ``production`` (its baseline)."""
    mine, theirs = Measurement.of(candidate), Measurement.of(production)
    if mine.calls < guardrails.min_calls:
        return _insufficient(
            mine,
            theirs,
            guardrails,
            f"v{mine.version} answered {mine.calls} call(s), fewer than the {guardrails.min_calls} needed",
        )
    tripped = [*_error_rate(mine, theirs, guardrails), *_latency(mine, theirs, guardrails)]
    reward_trip, reward_shortfall = _reward(mine, theirs, guardrails)
    tripped.extend(reward_trip)
    if tripped:
        return Verdict("rollback", mine, theirs, tuple(tripped), "; ".join(t.message for t in tripped))
    if reward_shortfall:
        return _insufficient(mine, theirs, guardrails, reward_shortfall)
    return Verdict("proceed", mine, theirs, (), _passed(mine, theirs))


def _insufficient(mine: Measurement, theirs: Measurement, guardrails: Guardrails, why: str) -> Verdict:
    policy = guardrails.on_insufficient_traffic
    if policy == "proceed":
        return Verdict("proceed", mine, theirs, (), f"{why}; proceeding unjudged (on_insufficient_traffic)")
    if policy == "rollback":
        trip = Trip(
            guardrail="insufficient_traffic", observed=mine.calls, limit=guardrails.min_calls, message=why
        )
        return Verdict("rollback", mine, theirs, (trip,), why)
    return Verdict("hold", mine, theirs, (), f"{why}; baking again")


def insufficient_after_holds(verdict: Verdict, holds: int) -> Verdict:
    """A held verdict once the step may be held no more: rolled back, naming why."""
    message = f"{verdict.message.removesuffix('; baking again')} after {holds} extra bake(s)"
    trip = Trip(
        guardrail="insufficient_traffic", observed=verdict.candidate.calls, limit=None, message=message
    )
    return Verdict("rollback", verdict.candidate, verdict.production, (trip,), message)


def _error_rate(mine: Measurement, theirs: Measurement, guardrails: Guardrails) -> list[Trip]:
    if mine.error_rate is None:
        return []
    baseline = theirs.error_rate or 0.0
    increase = mine.error_rate - baseline
    if increase <= guardrails.max_error_rate_increase + EPSILON:
        return []
    return [
        Trip(
            guardrail="error_rate",
            observed=mine.error_rate,
            limit=baseline + guardrails.max_error_rate_increase,
            message=f"error rate {mine.error_rate:.2%} ({mine.errors} of {mine.calls} calls) vs production's "
            f"{baseline:.2%}: more than {guardrails.max_error_rate_increase:.2%} higher",
        )
    ]


#: A p99 of fewer calls is the slowest of a handful (one GC pause decides it): the latency
#: guardrails judge a step only from this many candidate calls on.
P99_MIN_CALLS = 100


def _latency(mine: Measurement, theirs: Measurement, guardrails: Guardrails) -> list[Trip]:
    ours, baseline = mine.p99_upper_ms, theirs.p99_upper_ms
    if ours is None or mine.calls < P99_MIN_CALLS:
        return []
    trips = []
    ratio = guardrails.max_p99_ratio
    if (
        ratio is not None
        and baseline is not None
        and ours > guardrails.p99_floor_ms
        and ours > ratio * baseline
    ):
        trips.append(
            Trip(
                guardrail="p99_ratio",
                observed=None if ours == float("inf") else ours,
                limit=ratio * baseline if baseline != float("inf") else None,
                message=f"p99 latency {_ms(ours)} vs production's {_ms(baseline)}: more than {ratio:g}x",
            )
        )
    if guardrails.max_p99_ms is not None and ours > guardrails.max_p99_ms:
        trips.append(
            Trip(
                guardrail="p99_ms",
                observed=None if ours == float("inf") else ours,
                limit=guardrails.max_p99_ms,
                message=f"p99 latency {_ms(ours)} above the limit {guardrails.max_p99_ms:g} ms",
            )
        )
    return trips


def _reward(mine: Measurement, theirs: Measurement, guardrails: Guardrails) -> tuple[list[Trip], str]:
    """The reward trip, if any, and why the reward could not be judged ("" if it could)."""
    drop = guardrails.max_reward_drop
    if drop is None:
        return [], ""
    needed = guardrails.min_rewards
    if mine.rewarded < needed or theirs.rewarded < needed:
        return [], (
            f"rewards: v{mine.version} has {mine.rewarded}, production {theirs.rewarded}; "
            f"{needed} each are needed"
        )
    assert mine.reward_rate is not None and theirs.reward_rate is not None  # noqa: S101 - rewarded > 0
    if theirs.reward_rate - mine.reward_rate <= drop + EPSILON:
        return [], ""
    trip = Trip(
        guardrail="reward",
        observed=mine.reward_rate,
        limit=theirs.reward_rate - drop,
        message=f"reward rate {mine.reward_rate:.4f} ({mine.rewarded} rewards) vs production's "
        f"{theirs.reward_rate:.4f}: more than {drop:g} lower",
    )
    return [trip], ""


def _passed(mine: Measurement, theirs: Measurement) -> str:
    parts = [f"v{mine.version}: {mine.calls} calls"]
    if mine.error_rate is not None:
        parts.append(f"error rate {mine.error_rate:.2%} (production {(theirs.error_rate or 0.0):.2%})")
    if mine.p99_bucket is not None:
        parts.append(f"p99 {_ms(mine.p99_upper_ms)} (production {_ms(theirs.p99_upper_ms)})")
    if mine.reward_rate is not None:
        production = "n/a" if theirs.reward_rate is None else f"{theirs.reward_rate:.4f}"
        parts.append(f"reward rate {mine.reward_rate:.4f} (production {production})")
    return "passed: " + ", ".join(parts)


def _ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == float("inf"):
        return f"> {LATENCY_BUCKETS_MS[-2]:g} ms"
    return f"<= {value:g} ms"
