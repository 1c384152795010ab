"""Where routing state lives: the model's partition of the metadata table
(``ROUTING`` the policy, ``ARMS`` the bandit's counts, ``VARIANT#…`` each version's
totals; keys in ``mlops_core.storage.keys``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlops_core.routing import history as timeline
from mlops_core.routing.bandit import Arm
from mlops_core.routing.state import LATENCY_BUCKET_NAMES, ArmsState, StoredRouting, VariantTotals
from mlops_core.storage import keys
from mlops_core.storage.dynamo import Item, MetadataTable

Operation = dict[str, Any]

#: The totals a counter may add to (``add_to_variant_op``); latency buckets are stored as
#: attributes ``latency_le_5`` and so on.
LATENCY_PREFIX = "latency_"
VARIANT_COUNTERS = frozenset(
    {"calls", "errors", "model_loads", "requests", "shadow_requests", "feedback", "rewarded", "reward_sum"}
    | {LATENCY_PREFIX + name for name in LATENCY_BUCKET_NAMES}
)


class RoutingRepository:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    # ---- the policy ---------------------------------------------------------------------
    def routing(self, name: str, *, consistent: bool = False) -> StoredRouting | None:
        item = self.table.get(keys.model_pk(name), keys.ROUTING_SK, consistent=consistent)
        return None if item is None else StoredRouting.model_validate(_fields(item))

    def routing_op(self, routing: StoredRouting, *, expected_revision: int) -> Operation:
        """Put ``routing`` if the stored policy is still at ``expected_revision`` (0: none stored)."""
        item = {
            keys.PARTITION_KEY: keys.model_pk(routing.model_name),
            keys.SORT_KEY: keys.ROUTING_SK,
            **routing.model_dump(mode="json"),
        }
        if expected_revision == 0:
            return self.table.put_op(item, condition="attribute_not_exists(pk)")
        return self.table.put_op(item, condition="revision = :rev", values={":rev": expected_revision})

    # ---- the bandit's counts ----------------------------------------------------------------
    def arms(self, name: str, *, consistent: bool = False) -> ArmsState:
        item = self.table.get(keys.model_pk(name), keys.ARMS_SK, consistent=consistent)
        if item is None:
            return ArmsState(model_name=name)
        return ArmsState(
            model_name=name,
            arms=tuple(
                Arm(int(version), float(counts[0]), float(counts[1]))
                for version, counts in sorted(item.get("arms", {}).items(), key=lambda kv: int(kv[0]))
            ),
            revision=int(item["revision"]),
            updated_at=item.get("updated_at"),
        )

    def arms_op(self, state: ArmsState, *, expected_revision: int) -> Operation:
        """Put ``state`` if no one counted since ``expected_revision`` was read (0: nothing yet)."""
        item = {
            keys.PARTITION_KEY: keys.model_pk(state.model_name),
            keys.SORT_KEY: keys.ARMS_SK,
            "model_name": state.model_name,
            "arms": {str(arm.version): [arm.successes, arm.failures] for arm in state.arms},
            "revision": state.revision,
            "updated_at": state.updated_at,
        }
        if expected_revision == 0:
            return self.table.put_op(item, condition="attribute_not_exists(pk)")
        return self.table.put_op(item, condition="revision = :rev", values={":rev": expected_revision})

    # ---- per-version totals -----------------------------------------------------------------
    def variants(self, name: str) -> list[VariantTotals]:
        return [
            _variant(_fields(item))
            for item in self.table.query(keys.model_pk(name), sk_prefix=keys.VARIANT_PREFIX)
        ]

    def add_to_variant_op(self, name: str, version: int, counts: Mapping[str, float]) -> Operation:
        """Add ``counts`` (names from ``VARIANT_COUNTERS``) to one version's totals; the item is
        created by the first addition."""
        unknown = set(counts) - VARIANT_COUNTERS
        if unknown or not counts:
            raise ValueError(f"unknown or no counters: {sorted(unknown) or 'none given'}")
        names = {f"#c{i}": counter for i, counter in enumerate(counts)}
        values: dict[str, Any] = {f":c{i}": value for i, value in enumerate(counts.values())}
        names["#version"] = "version"
        values[":version"] = version
        adds = ", ".join(f"#c{i} :c{i}" for i in range(len(counts)))
        return self.table.update_op(
            keys.model_pk(name),
            keys.variant_sk(version),
            update=f"SET #version = :version ADD {adds}",
            names=names,
            values=values,
        )

    # ---- routing over time ------------------------------------------------------------------
    def add_to_history_op(
        self,
        name: str,
        start_s: int,
        seconds: int,
        counts: Mapping[int, Mapping[str, float]],
        *,
        posterior: Mapping[str, list[float]] | None = None,
        posterior_at: str | None = None,
    ) -> Operation:
        """Add ``counts`` (per version, names from ``routing.history.COUNTERS``) to one bucket of the
        model's history, and with ``posterior`` set the bucket's posterior snapshot; the item
        is created by the first write, with its TTL."""
        names: dict[str, str] = {
            "#start": "bucket_start",
            "#seconds": "bucket_seconds",
            "#expires": keys.EXPIRES_AT,
        }
        values: dict[str, Any] = {
            ":start": timeline.bucket_label(start_s),
            ":seconds": seconds,
            ":expires": timeline.expires_at(start_s, seconds),
        }
        sets = ["#start = :start", "#seconds = :seconds", "#expires = :expires"]
        if posterior is not None:
            names |= {"#posterior": "posterior", "#posterior_at": "posterior_at"}
            # One string, not a map of lists: a read then returns one value per bucket, not a
            # dozen (the local emulator's serializer costs per value returned).
            values |= {":posterior": timeline.encode_posterior(posterior), ":posterior_at": posterior_at}
            sets += ["#posterior = :posterior", "#posterior_at = :posterior_at"]
        adds: list[str] = []
        for version, counters in counts.items():
            for counter, value in counters.items():
                i = len(adds)
                names[f"#c{i}"] = timeline.counter_attribute(version, counter)
                values[f":c{i}"] = value
                adds.append(f"#c{i} :c{i}")
        update = "SET " + ", ".join(sets) + (" ADD " + ", ".join(adds) if adds else "")
        return self.table.update_op(
            keys.model_pk(name),
            keys.routing_history_sk(timeline.bucket_label(start_s)),
            update=update,
            names=names,
            values=values,
        )

    def history(
        self,
        name: str,
        *,
        since: str | None = None,
        limit: int = timeline.DEFAULT_LIMIT,
        attributes: Sequence[str] | None = None,
    ) -> list[Item]:
        """The newest ``limit`` buckets of the model's history (from ``since``, a bucket start
        in ``bucket_label``'s spelling, on), newest first; with ``attributes``, only those
        (``timeline.projection``)."""
        items = []
        for item in self.table.query(
            keys.model_pk(name),
            sk_prefix=keys.ROUTING_HISTORY_PREFIX,
            newest_first=True,
            limit=limit,
            attributes=attributes,
        ):
            if since is not None and str(item.get("bucket_start", "")) < since:
                break
            items.append(item)
        return items


def _variant(fields: dict[str, Any]) -> VariantTotals:
    latency = {
        name.removeprefix(LATENCY_PREFIX): int(value)
        for name, value in fields.items()
        if name.startswith(LATENCY_PREFIX)
    }
    plain = {k: v for k, v in fields.items() if not k.startswith(LATENCY_PREFIX)}
    return VariantTotals.model_validate(plain | {"latency_ms": latency})


def _fields(item: Item) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in keys.KEY_ATTRIBUTES}
