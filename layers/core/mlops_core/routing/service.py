"""The routing use cases: read and set a model's routing policy (validated against the
registry, audited, one transaction), and summarize what each variant has earned.

A policy change is one DynamoDB transaction: the policy put under its revision, the audit
record, and a check that every version it names still exists. Nothing is written when
any check fails (422 for a policy that names what cannot serve, 409 for a concurrent
change).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from mlops_core.clock import now_iso
from mlops_core.errors import Conflict, Invalid, NotFound, Unavailable, detail
from mlops_core.registry.entities import AuditRecord
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.routing import bandit
from mlops_core.routing.bandit import ArmSummary
from mlops_core.routing.events import RoutingPolicyChanged
from mlops_core.routing.history import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    RoutingHistory,
    bucket_label,
    projection,
    series,
)
from mlops_core.routing.policy import BanditPolicy, SinglePolicy, SplitPolicy, parse_policy
from mlops_core.routing.repository import RoutingRepository
from mlops_core.routing.state import ArmsState, StoredRouting, VariantTotals, latency_quantile_ms
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher

LOGGER = logging.getLogger(__name__)
#: How many past policies a routing summary lists.
HISTORY_LIMIT = 20


class VariantSummary(BaseModel):
    """One version as the routing summary shows it."""

    version: int
    in_policy: bool = Field(description="Served (or shadowed) by the policy in force")
    role: str = Field(description="'served', 'shadow', or 'retired' (earned counts under an earlier policy)")
    weight: float | None = Field(description="Its share of a split; None for other policies")
    totals: VariantTotals
    reward_rate: float | None = Field(description="reward_sum / rewarded (plain, undiscounted)")
    error_rate: float | None = Field(description="errors / calls")
    p99_ms: float | None = Field(
        description="The latency histogram's bucket holding the 99th percentile call (its upper end, ms)"
    )
    posterior: ArmSummary = Field(
        description="Beta posterior of its reward rate from the bandit's (possibly discounted) counts, "
        "with the policy's prior (Beta(1, 1) for non-bandit policies): mean, 95% credible interval, "
        "P(best) among the served variants"
    )


class RoutingSummary(BaseModel):
    model_name: str
    routing: StoredRouting
    variants: list[VariantSummary]
    history: list[AuditRecord] = Field(description="Routing changes, newest first")


class RoutingService:
    def __init__(
        self,
        table: MetadataTable,
        *,
        registry: RegistryLookup | None = None,
        publisher: EventPublisher | None = None,
    ) -> None:
        self.registry = registry or RegistryLookup(table)
        self.repository = RoutingRepository(table)
        self.publisher = publisher

    def policy(self, name: str) -> StoredRouting:
        """The policy in force (the default ``single`` on ``production`` when none was set)."""
        self.registry.get_model(name)
        return self.repository.routing(name) or StoredRouting(model_name=name)

    def set_policy(
        self,
        name: str,
        data: Any,
        *,
        actor: str | None = None,
        reason: str = "",
        expected_revision: int | None = None,
    ) -> StoredRouting:
        """Replace the policy with ``data`` (validated: 422 with one detail per problem).

        ``expected_revision`` (optional) makes it a compare-and-set: 409 when the policy in
        force is at another revision.
        """
        policy = parse_policy(data)
        self.registry.get_model(name)  # 404 before any version check
        current = self.repository.routing(name, consistent=True) or StoredRouting(model_name=name)
        if expected_revision is not None and expected_revision != current.revision:
            raise Conflict(
                f"the routing of model '{name}' is at revision {current.revision}, not {expected_revision}",
                current={"revision": current.revision},
            )
        checks = self._check_servable(name, policy)
        at = now_iso()
        stored = StoredRouting(
            model_name=name,
            policy=policy,
            revision=current.revision + 1,
            updated_at=at,
            actor=actor,
            reason=reason,
        )
        record = AuditRecord(
            model_name=name,
            at=at,
            action="set_routing",
            alias=None,
            from_version=None,
            to_version=None,
            revision=stored.revision,
            actor=actor,
            reason=reason,
            routing=policy.model_dump(mode="json"),
        )
        try:
            self.registry.repository.transact(
                [
                    self.repository.routing_op(stored, expected_revision=current.revision),
                    self.registry.repository.audit_op(record),
                    *checks,
                ]
            )
        except Conflict as error:
            raise Conflict(
                f"the routing of model '{name}' (or a version it names) changed concurrently; "
                "read it again and retry"
            ) from error
        self._announce(
            RoutingPolicyChanged(
                model_name=name,
                revision=stored.revision,
                policy=policy.model_dump(mode="json"),
                previous=current.policy.model_dump(mode="json") if current.revision else None,
                actor=actor,
                reason=reason,
            )
        )
        return stored

    def _check_servable(
        self, name: str, policy: SinglePolicy | SplitPolicy | BanditPolicy
    ) -> list[dict[str, Any]]:
        """422 unless every version the policy names exists and is not archived (and a single
        policy's alias exists); the transaction's conditions that keep it so."""
        problems = []
        for index, version in enumerate(policy.named_versions):
            location = _location_of(policy, index)
            try:
                found = self.registry.get_version(name, version)
            except NotFound:
                problems.append(
                    detail(location, f"model '{name}' has no version {version}", "unknown_version")
                )
                continue
            if found.stage == "Archived":
                problems.append(
                    detail(location, f"version {version} is archived and cannot serve", "archived_version")
                )
        if isinstance(policy, SinglePolicy) and policy.alias is not None:
            try:
                self.registry.get_alias(name, policy.alias)
            except NotFound:
                problems.append(
                    detail(["alias"], f"model '{name}' has no alias '{policy.alias}'", "unknown_alias")
                )
        if problems:
            raise Invalid(
                "the routing policy names what cannot serve: " + "; ".join(p["msg"] for p in problems),
                details=problems,
            )
        return [self.registry.repository.version_exists_op(name, v) for v in policy.named_versions]

    def history(self, name: str, *, limit: int = HISTORY_LIMIT) -> list[AuditRecord]:
        """Routing changes, newest first (from the audit trail)."""
        changes = [r for r in self.registry.list_audit(name, limit=500) if r.action == "set_routing"]
        return changes[:limit]

    def summary(self, name: str) -> RoutingSummary:
        routing = self.policy(name)
        arms = self.repository.arms(name)
        totals = {t.version: t for t in self.repository.variants(name)}
        served = list(routing.policy.served_versions)
        if isinstance(routing.policy, SinglePolicy) and routing.policy.alias is not None:
            try:  # the version the alias names now is the one served
                served = [self.registry.get_alias(name, routing.policy.alias).version]
            except NotFound:
                served = []
        return RoutingSummary(
            model_name=name,
            routing=routing,
            variants=_variants(routing, served, arms, totals),
            history=self.history(name),
        )

    def routing_history(
        self,
        name: str,
        *,
        since: str | None = None,
        limit: int = DEFAULT_LIMIT,
        only: tuple[Sequence[int], Sequence[str]] | None = None,
    ) -> RoutingHistory:
        """Traffic share and posterior per variant over time: the newest ``limit`` buckets (from
        ``since``, an ISO 8601 time, on), oldest first. 404 for an unknown model. ``only``
        (versions, counters) reads just those counters of those versions (the console's
        charts); the others then read as 0."""
        if not 1 <= limit <= MAX_LIMIT:
            raise Invalid(
                f"limit must be between 1 and {MAX_LIMIT}, not {limit}",
                details=[detail(["query", "limit"], f"between 1 and {MAX_LIMIT}", "out_of_range")],
            )
        self.registry.get_model(name)
        start = None if since is None else bucket_label(int(_since_seconds(since)))
        attributes = None if only is None else projection(*only)
        return series(name, self.repository.history(name, since=start, limit=limit, attributes=attributes))

    def _announce(self, event: RoutingPolicyChanged) -> None:
        if self.publisher is None:
            return
        try:
            self.publisher.publish(event)
        except Unavailable as error:
            LOGGER.warning("event %s not published: %s", event.detail_type(), error.message)


def _since_seconds(since: str) -> float:
    """``since`` (ISO 8601; UTC when no offset is given) as Unix seconds; 422 otherwise."""
    try:
        moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise Invalid(
            f"since must be an ISO 8601 time such as 2026-12-01T17:00:00Z, not {since!r}",
            details=[detail(["query", "since"], "an ISO 8601 time", "invalid_time")],
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _location_of(policy: SinglePolicy | SplitPolicy | BanditPolicy, index: int) -> list[str | int]:
    """Where the ``index``-th of ``named_versions`` sits in the policy document."""
    listed = len(policy.named_versions) - (0 if getattr(policy, "shadow", None) is None else 1)
    if index >= listed:
        return ["shadow"]
    if isinstance(policy, SplitPolicy):
        return ["weights", index, "version"]
    if isinstance(policy, BanditPolicy):
        return ["versions", index]
    return ["version"]


def _variants(
    routing: StoredRouting, served: list[int], arms: ArmsState, totals: dict[int, VariantTotals]
) -> list[VariantSummary]:
    policy = routing.policy
    shadow = getattr(policy, "shadow", None)
    weights = {w.version: w.weight for w in policy.weights} if isinstance(policy, SplitPolicy) else {}
    counted = {arm.version: arm for arm in arms.arms}
    versions = sorted(set(served) | set(totals) | set(counted) | ({shadow} if shadow else set()))
    # P(best) compares the served variants (or, with none known, every version with counts).
    contenders = served or sorted(set(totals) | set(counted))
    alpha0, beta0 = (policy.alpha0, policy.beta0) if isinstance(policy, BanditPolicy) else (1.0, 1.0)
    contender_arms = [counted.get(v) or bandit.Arm(v) for v in contenders]
    in_race = {s.version: s for s in bandit.posterior_summary(contender_arms, alpha0=alpha0, beta0=beta0)}
    summaries = []
    for version in versions:
        posterior = in_race.get(version)
        if posterior is None:  # not a contender: its own posterior, and P(best) 0
            alone = bandit.posterior_summary(
                [counted.get(version) or bandit.Arm(version)], alpha0=alpha0, beta0=beta0
            )
            posterior = alone[0].model_copy(update={"p_best": 0.0})
        total = totals.get(version) or VariantTotals(version=version)
        role = "served" if version in served else "shadow" if version == shadow else "retired"
        summaries.append(
            VariantSummary(
                version=version,
                in_policy=role != "retired",
                role=role,
                weight=weights.get(version),
                totals=total,
                reward_rate=total.reward_sum / total.rewarded if total.rewarded else None,
                error_rate=total.errors / total.calls if total.calls else None,
                p99_ms=latency_quantile_ms(total.latency_ms, 0.99),
                posterior=posterior,
            )
        )
    return summaries
