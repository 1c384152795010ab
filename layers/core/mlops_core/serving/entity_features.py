"""Predicting by entity id: a request's rows assembled from the online feature store.

A version's signature names the feature views that feed its inputs (``feature_views``); a
request sends, per row, the entity id of each view (by the view's name or its entity key).
All rows x views are read with **one** ``OnlineStore.read_many`` (one BatchGetItem: at most
``MAX_KEYS_PER_READ`` distinct keys per request), merged with the request-time inputs the
caller sends in ``instances`` (a request value for an input a view feeds is refused), and
missing or stale rows follow the model's ``FeaturePolicy``. The assembled rows are then
checked against the signature like any instance (``instances.instances_to_matrix``).

No boto3: the online store reads through ``storage.clients.reader`` (signed reads on Lambda).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from mlops_core.errors import Invalid, detail
from mlops_core.features.ids import EntityKeyType, canonical_entity_id
from mlops_core.features.online import MAX_KEYS_PER_READ, OnlineRow, OnlineStore
from mlops_core.registry.entities import FeaturePolicy
from mlops_core.registry.signature import FeatureViewInput, ModelSignature

MAX_REPORTED = 20
_REFUSES = "the model's feature policy refuses"
Served = Literal["online", "stale", "defaulted"]


@dataclass(frozen=True)
class EntityServed:
    """How one view's features of one row were served."""

    view: str
    entity_id: str
    served: Served
    #: Why it was defaulted (or that the values served are stale).
    reason: Literal["missing", "stale"] | None = None
    age_seconds: float | None = None
    #: The inputs that got the policy's default.
    defaulted: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Assembled:
    #: One object per row, input name -> value (request-time and online features).
    rows: list[dict[str, Any]]
    #: Per row, view -> the entity id read (canonical form).
    entity_ids: list[dict[str, str]]
    served: list[list[EntityServed]]
    #: DynamoDB round trips spent (one BatchGetItem, or none).
    reads: int


def _key_type(view: FeatureViewInput) -> EntityKeyType:
    return EntityKeyType(view.entity_type) if view.entity_type else EntityKeyType.string


class EntityFeatures:
    def __init__(self, online: OnlineStore, *, clock: Callable[[], float] = time.time) -> None:
        self.online = online
        self.clock = clock

    def assemble(
        self,
        signature: ModelSignature,
        entity_ids: Sequence[Mapping[str, Any]],
        instances: Sequence[Any] | None,
        policy: FeaturePolicy,
        *,
        model: str,
        max_rows: int,
    ) -> Assembled:
        views = signature.feature_views
        if not views:
            raise Invalid(
                f"{model}'s signature names no feature views: send instances, not entity_ids",
                details=[detail(["body", "entity_ids"], "this version reads no feature views", "no_views")],
            )
        if not entity_ids or len(entity_ids) > max_rows:
            raise Invalid(
                f"send 1 to {max_rows} rows of entity_ids, not {len(entity_ids)}",
                details=[detail(["body", "entity_ids"], f"1 to {max_rows} rows", "length")],
            )
        if instances is not None and len(instances) != len(entity_ids):
            raise Invalid(
                f"instances ({len(instances)}) and entity_ids ({len(entity_ids)}) must have one row each",
                details=[detail(["body", "instances"], "one object per row of entity_ids", "length")],
            )
        problems: list[dict[str, Any]] = []
        ids = [self._row_ids(views, row, i, problems) for i, row in enumerate(entity_ids)]
        base = [self._request_row(signature, instances, i, problems) for i in range(len(entity_ids))]
        _raise(problems, "invalid entity_ids or instances")
        wanted = list(dict.fromkeys((view, entity) for row in ids for view, entity in row.items()))
        if len(wanted) > MAX_KEYS_PER_READ:
            raise Invalid(
                f"{len(entity_ids)} rows x {len(views)} feature view(s) are {len(wanted)} distinct "
                f"(view, entity) keys; one request reads at most {MAX_KEYS_PER_READ}: send fewer rows",
                details=[
                    detail(
                        ["body", "entity_ids"], f"at most {MAX_KEYS_PER_READ} (view, entity) keys", "too_long"
                    )
                ],
            )
        found = self.online.read_many(wanted)
        now_ms = int(self.clock() * 1000)
        served: list[list[EntityServed]] = []
        for i, row_ids in enumerate(ids):
            row_served = []
            for view in views:
                entity = row_ids[view.view]
                outcome = self._serve(view, entity, found.get((view.view, entity)), policy, now_ms)
                loc: list[str | int] = ["body", "entity_ids", i, view.view]
                if isinstance(outcome, str):
                    problems.append(detail(loc, outcome, "feature_unavailable"))
                    continue
                values, entry = outcome
                base[i].update(values)
                row_served.append(entry)
            served.append(row_served)
        if problems:
            first = problems[0]["msg"]
            raise Invalid(
                f"{len(problems)} entit{'y' if len(problems) == 1 else 'ies'} cannot be served: {first}"
                + (" (and more)" if len(problems) > 1 else ""),
                details=problems[:MAX_REPORTED],
            )
        return Assembled(rows=base, entity_ids=ids, served=served, reads=1)

    # ---- the parts ---------------------------------------------------------------------------
    def _row_ids(
        self,
        views: Sequence[FeatureViewInput],
        row: Mapping[str, Any],
        i: int,
        problems: list[dict[str, Any]],
    ) -> dict[str, str]:
        loc: list[str | int] = ["body", "entity_ids", i]
        if not isinstance(row, Mapping):
            problems.append(detail(loc, "a row of entity_ids is an object: {view or entity key: id}", "type"))
            return {}
        known = {v.view for v in views} | {v.entity for v in views if v.entity}
        problems.extend(
            detail(
                [*loc, name], f"{name!r} is neither a feature view nor an entity key of this model", "unknown"
            )
            for name in row
            if name not in known
        )
        ids = {}
        for view in views:
            key = view.view if view.view in row else view.entity
            if key is None or key not in row:
                by = f" (or {view.entity})" if view.entity else ""
                problems.append(
                    detail([*loc, view.view], f"no entity id for view {view.view}{by}", "missing")
                )
                continue
            canonical = canonical_entity_id(row[key], _key_type(view))
            if canonical is None:
                problems.append(
                    detail(
                        [*loc, key],
                        f"{str(row[key])[:64]!r} is not a valid {view.entity or view.view} "
                        f"({_key_type(view).value})",
                        "entity_id",
                    )
                )
                continue
            ids[view.view] = canonical
        return ids

    def _request_row(
        self,
        signature: ModelSignature,
        instances: Sequence[Any] | None,
        i: int,
        problems: list[dict[str, Any]],
    ) -> dict[str, Any]:
        if instances is None:
            return {}
        instance = instances[i]
        loc: list[str | int] = ["body", "instances", i]
        if not isinstance(instance, Mapping):
            problems.append(
                detail(loc, "with entity_ids, an instance is an object of request-time inputs", "type")
            )
            return {}
        fed = signature.view_inputs
        problems.extend(
            detail(
                [*loc, name],
                f"'{name}' is read from a feature view: it cannot also be sent (send every feature "
                "without entity_ids to override them)",
                "fed_by_view",
            )
            for name in instance
            if name in fed
        )
        return dict(instance)

    def _serve(
        self,
        view: FeatureViewInput,
        entity: str,
        row: OnlineRow | None,
        policy: FeaturePolicy,
        now_ms: int,
    ) -> tuple[dict[str, Any], EntityServed] | str:
        """The inputs this view feeds for this entity and how they were served, or why not."""
        who = f"{view.view} {view.entity or 'entity'} {entity}"
        age = None if row is None else round(row.age_seconds(now_ms), 3)
        stale = row is not None and row.is_stale(now_ms)
        if row is None or (stale and policy.stale == "default"):
            reason: Literal["missing", "stale"] = "missing" if row is None else "stale"
            if row is None and policy.missing == "refuse":
                return f"{who}: no online features ({_names(view.inputs)}); {_REFUSES} missing ones"
            return self._defaults(
                who, view.inputs, policy, EntityServed(view.view, entity, "defaulted", reason, age)
            )
        if stale and policy.stale == "refuse":
            return (
                f"{who}: features are stale ({age or 0:.0f} s old, past the view's TTL): "
                f"{_names(view.inputs)}; {_REFUSES} stale ones"
            )
        values = {f.input_name: row.values.get(f.name) for f in view.features}
        absent = [f.input_name for f in view.features if values[f.input_name] is None]
        if not absent:
            entry = EntityServed(
                view.view, entity, "stale" if stale else "online", "stale" if stale else None, age
            )
            return values, entry
        if policy.missing == "refuse":
            return f"{who}: features missing from the online row: {_names(absent)}; {_REFUSES} missing ones"
        return self._defaults(
            who, absent, policy, EntityServed(view.view, entity, "defaulted", "missing", age), base=values
        )

    @staticmethod
    def _defaults(
        who: str,
        inputs: Sequence[str],
        policy: FeaturePolicy,
        entry: EntityServed,
        *,
        base: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, Any], EntityServed] | str:
        undeclared = [name for name in inputs if name not in policy.defaults]
        if undeclared:
            return (
                f"{who}: features {entry.reason}, and the model's policy declares no default for "
                f"{_names(undeclared)}"
            )
        values = {**(base or {}), **{name: policy.defaults[name] for name in inputs}}
        return values, replace(entry, defaulted=list(inputs))


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(names[:10])
    return shown + (f", … ({len(names)} in all)" if len(names) > 10 else "")


def _raise(problems: list[dict[str, Any]], what: str) -> None:
    if problems:
        raise Invalid(f"{len(problems)} {what}: {problems[0]['msg']}", details=problems[:MAX_REPORTED])
