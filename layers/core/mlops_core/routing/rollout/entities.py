"""What a guarded rollout is: the request (candidate, steps, bake, guardrails) and the
record the workflow keeps (status, each step's window and every check with its numbers).

Pure data: no storage, no clock (callers pass times in).
"""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlops_core.errors import Conflict
from mlops_core.routing.state import LATENCY_BUCKET_NAMES, VariantTotals, latency_quantile_ms

ROLLOUT_ID_PATTERN = r"^rollout-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$"
#: At most this many steps, bake periods of at most a day, at most this many extensions of
#: a step: the longest rollout (10 x 24 h x 6) stays well inside a Step Functions standard
#: execution's year.
MAX_STEPS = 10
MAX_BAKE_SECONDS = 86_400
MAX_HOLDS = 5

RolloutStatus = Literal["running", "promoting", "succeeded", "rolled_back", "aborted", "failed"]
#: Statuses a rollout never leaves.
ENDED: frozenset[str] = frozenset({"succeeded", "rolled_back", "aborted", "failed"})
Decision = Literal["proceed", "hold", "rollback"]
GuardrailName = Literal["error_rate", "p99_ratio", "p99_ms", "reward", "insufficient_traffic"]
Percent = Annotated[int, Field(ge=1, le=100)]


class Guardrails(BaseModel):
    """What a step must show before the rollout goes on. The candidate is judged on the
    calls of the step's window; production on everything it served since the rollout
    started (at 100 % it serves nothing new, and a longer baseline is a steadier one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_error_rate_increase: float = Field(
        default=0.02,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="The candidate's error rate may exceed production's by at most this (0.02: 2 points)",
    )
    max_p99_ratio: float | None = Field(
        default=2.0,
        ge=1.0,
        le=100.0,
        allow_inf_nan=False,
        description="The candidate's p99 latency may be at most this multiple of production's (None: off)",
    )
    p99_floor_ms: float = Field(
        default=10.0,
        ge=0.0,
        le=60_000.0,
        allow_inf_nan=False,
        description="A candidate p99 at or below this never trips the ratio: latencies are counted in "
        "buckets (1, 2, 5, 10, 20 ms ...), too coarse to compare fast calls",
    )
    max_p99_ms: float | None = Field(
        default=None,
        gt=0.0,
        le=60_000.0,
        allow_inf_nan=False,
        description="The candidate's p99 latency may be at most this many ms (None: off)",
    )
    min_calls: int = Field(
        default=100,
        ge=0,
        le=1_000_000,
        description="Candidate calls a step's window needs before it is judged",
    )
    on_insufficient_traffic: Literal["hold", "rollback", "proceed"] = Field(
        default="hold",
        description="A step without enough calls (or rewards): hold (bake once more, up to max_holds "
        "times, then roll back), rollback at once, or proceed unjudged",
    )
    max_holds: int = Field(
        default=3, ge=0, le=MAX_HOLDS, description="How many times a step may be baked again"
    )
    max_reward_drop: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="The candidate's reward rate may be below production's by at most this (None: off)",
    )
    min_rewards: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Rewards each side needs before the reward guardrail is judged",
    )


class RolloutRequest(BaseModel):
    """``POST /models/{name}/rollouts``: move traffic from production to a candidate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    candidate_version: int = Field(ge=1, description="The version to roll out")
    steps: tuple[Percent, ...] = Field(
        default=(10, 50, 100),
        max_length=MAX_STEPS,
        description="The candidate's share of the traffic at each step, in percent: increasing, "
        "ending at 100",
    )
    bake_seconds: int = Field(
        default=600, ge=1, le=MAX_BAKE_SECONDS, description="How long each step serves before it is judged"
    )
    guardrails: Guardrails = Field(default_factory=Guardrails)
    reason: str = Field(default="", max_length=1000, description="Recorded in the audit trail")

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: tuple[int, ...]) -> tuple[int, ...]:
        if not steps:
            raise ValueError("give at least one step (100: all at once, after one bake)")
        for before, after in itertools.pairwise(steps):
            if after <= before:
                raise ValueError(f"steps must increase: {after} follows {before}")
        if steps[-1] != 100:
            raise ValueError(f"the last step must be 100 (the candidate serves everything), not {steps[-1]}")
        return steps


class Measurement(BaseModel):
    """One version's numbers over a window, as a check compared them."""

    model_config = ConfigDict(frozen=True)

    version: int
    calls: int
    errors: int
    error_rate: float | None = Field(description="errors / calls; None without calls")
    p99_ms: float | None = Field(
        description="Upper end of the latency bucket holding the 99th percentile call; None without "
        "calls or when that bucket is the unbounded one (see p99_bucket)"
    )
    p99_bucket: str | None = Field(description="That bucket's name (le_5: at most 5 ms; le_inf: above 5 s)")
    rewarded: int
    reward_rate: float | None = Field(description="reward_sum / rewarded; None without rewards")
    latency_ms: dict[str, int] = Field(default_factory=dict, description="Calls per latency bucket")

    @classmethod
    def of(cls, totals: VariantTotals) -> Measurement:
        p99 = latency_quantile_ms(totals.latency_ms, 0.99)
        bucket = None
        if p99 is not None:
            bucket = "le_inf" if math.isinf(p99) else f"le_{p99:g}"
        return cls(
            version=totals.version,
            calls=totals.calls,
            errors=totals.errors,
            error_rate=totals.errors / totals.calls if totals.calls > 0 else None,
            p99_ms=None if p99 is None or math.isinf(p99) else p99,
            p99_bucket=bucket,
            rewarded=totals.rewarded,
            reward_rate=totals.reward_sum / totals.rewarded if totals.rewarded > 0 else None,
            latency_ms={k: v for k, v in totals.latency_ms.items() if k in LATENCY_BUCKET_NAMES and v},
        )

    @property
    def p99_upper_ms(self) -> float | None:
        """The p99 bucket's upper end, infinite for the unbounded bucket (for comparisons)."""
        return math.inf if self.p99_bucket == "le_inf" else self.p99_ms


class Trip(BaseModel):
    """A guardrail that tripped, with the number that tripped it and its limit."""

    model_config = ConfigDict(frozen=True)

    guardrail: GuardrailName
    observed: float | None
    limit: float | None
    message: str


class Check(BaseModel):
    """One judgement of a step (a step that is held is judged again after each bake)."""

    model_config = ConfigDict(frozen=True)

    at: str
    attempt: int = Field(description="0 for the first judgement of the step, 1 after one hold, ...")
    decision: Decision
    candidate: Measurement = Field(description="The candidate over the step's window")
    production: Measurement = Field(description="Production since the rollout started")
    tripped: tuple[Trip, ...] = ()
    message: str


class StepRecord(BaseModel):
    """A step: the candidate's share, when it started, and its checks."""

    model_config = ConfigDict(frozen=True)

    index: int = Field(description="0-based; step 1 in messages and reasons")
    percent: int
    started_at: str
    wait_seconds: int = Field(description="How long each bake of this step waits")
    routing_revision: int = Field(description="The routing revision this step set")
    candidate_before: VariantTotals = Field(description="The candidate's totals when the step started")
    production_before: VariantTotals | None = Field(
        default=None, description="Production's totals when the step started (the same window's baseline)"
    )
    checks: tuple[Check, ...] = ()


class Outcome(BaseModel):
    """How a rollout ended."""

    model_config = ConfigDict(frozen=True)

    cause: Literal["promoted", "guardrail", "error", "aborted"]
    at: str
    message: str
    step: int | None = Field(default=None, description="The step (1-based) it ended at, if any")
    tripped: tuple[Trip, ...] = ()
    error: dict[str, Any] | None = Field(
        default=None, description="The workflow's error (Error, Cause) when a step failed"
    )


class Rollout(BaseModel):
    """A rollout as the registry keeps it (``MODEL#{name} / ROLLOUT#{id}``)."""

    model_config = ConfigDict(frozen=True)

    rollout_id: str
    model_name: str
    candidate_version: int
    production_version: int = Field(description="The version production named when it started")
    production_alias_revision: int = Field(description="Promotion is conditioned on it: still that alias")
    steps: tuple[int, ...]
    bake_seconds: int
    guardrails: Guardrails
    reason: str = ""
    actor: str | None = None
    status: RolloutStatus = "running"
    created_at: str
    updated_at: str
    ended_at: str | None = None
    routing_revision: int = Field(description="The routing revision the rollout last set (or found)")
    previous_routing: dict[str, Any] = Field(description="The routing policy in force when it started")
    production_before: VariantTotals = Field(description="Production's totals when it started")
    progress: tuple[StepRecord, ...] = ()
    promoted_alias_revision: int | None = Field(
        default=None, description="The production alias's revision once Promote moved it"
    )
    outcome: Outcome | None = None
    execution_arn: str | None = None
    revision: int = Field(default=1, ge=1, description="Optimistic lock of the record")

    @property
    def current_step(self) -> StepRecord | None:
        return self.progress[-1] if self.progress else None


class RolloutNotRunning(Conflict):
    """A step ran for a rollout that has ended (aborted, say): the workflow stops there
    (its Step Functions error name is this class's)."""


class WorkflowState(BaseModel):
    """What the workflow passes a step: the rollout, the step's index, holds so far, and
    after a Catch the failed state's error."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model_name: str = Field(min_length=1, max_length=128)
    rollout_id: str = Field(pattern=ROLLOUT_ID_PATTERN)
    step: int = Field(default=0, ge=0, lt=MAX_STEPS)
    holds: int = Field(default=0, ge=0, le=MAX_HOLDS)
    error: dict[str, Any] | None = Field(default=None, description="The Catch's {Error, Cause}")
