"""Feature views and what the feature store records about them.

A **feature view** is declared in the repository (``features/*.toml``, loaded by ``mlops
features apply``) and registered as data: ``PUT /feature-views/{view}`` stores it with a
version that grows whenever the definition changes (``digest``). Its source is CSV or JSON
Lines objects under ``feature-sources/`` in the artifacts bucket, one row per (entity, event
time); materialization writes the latest row per entity to the online store.

Durations (``ttl``, ``freshness_target``, ``schedule``) are given as seconds or as text with a
unit: ``"45s"``, ``"15m"``, ``"6h"``, ``"30d"``; they are stored as seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from mlops_core.clock import iso
from mlops_core.features.ids import EntityKeyType, canonical_entity_id
from mlops_core.storage import keys

__all__ = ["EntityKeyType", "canonical_entity_id"]  # re-exported: they live in features.ids

#: View names: lower-case letters, digits and underscores (they are part of every online key).
VIEW_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
#: Feature and column names: identifiers (they are JSON keys and model signature names).
COLUMN_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
MAX_FEATURES = 200
#: The template's schedule runs the dispatcher every this many minutes (infra/cdk/constructs/features.py):
#: no view can be scheduled more often.
DISPATCH_MINUTES = 5
MIN_SCHEDULE_SECONDS = DISPATCH_MINUTES * 60
MAX_TTL_SECONDS = 5 * 365 * 86400

_DURATION = re.compile(r"^\s*(?P<n>\d+)\s*(?P<unit>s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: Any) -> Any:
    """``"30d"`` -> 2592000; integers pass as seconds; anything else is left to pydantic."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a duration: write seconds, or e.g. '45s', '15m', '6h', '30d'")
        return int(match["n"]) * _UNIT_SECONDS[match["unit"]]
    return value


Seconds = Annotated[int, BeforeValidator(_seconds)]


def iso_ms(at_ms: int) -> str:
    """Unix ms as the project writes times: ISO 8601, UTC, milliseconds, a trailing Z."""
    return iso(datetime.fromtimestamp(at_ms / 1000, UTC))


def describe_seconds(seconds: int | None) -> str:
    """2592000 -> "30d", 5400 -> "90m": the largest unit that divides it."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class FeatureType(StrEnum):
    int64 = "int64"
    float64 = "float64"
    string = "string"
    bool = "bool"


class SourceFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


class Feature(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=COLUMN_NAME_PATTERN, description="The source column and the value's name")
    type: FeatureType
    description: str = Field(default="", max_length=1000)


class EntityKey(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=COLUMN_NAME_PATTERN, description="The source column holding the entity id")
    type: EntityKeyType = EntityKeyType.string


class FeatureSource(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: SourceFormat = Field(description="csv (a header row) or jsonl (one JSON object per line)")
    path: str = Field(
        min_length=len(keys.FEATURE_SOURCES_PREFIX) + 1,
        max_length=900,
        description=f"An object key, or a prefix ending in '/', under {keys.FEATURE_SOURCES_PREFIX} in the "
        "artifacts bucket: every object under a prefix is read",
    )
    event_timestamp: str = Field(
        pattern=COLUMN_NAME_PATTERN,
        description="The column with each row's event time: ISO 8601 (UTC unless it says otherwise) "
        "or Unix seconds",
    )
    created_timestamp: str | None = Field(
        default=None,
        pattern=COLUMN_NAME_PATTERN,
        description="Optional: the column that breaks ties between rows of the same entity and event time",
    )

    @field_validator("format", mode="before")
    @classmethod
    def _no_parquet(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() == "parquet":
            raise ValueError(
                "parquet sources are not supported: reading Parquet needs pyarrow (~150 MB unpacked), "
                "which would not fit beside the core layer; export CSV or JSON Lines"
            )
        return value

    @field_validator("path")
    @classmethod
    def _under_sources(cls, path: str) -> str:
        if not path.startswith(keys.FEATURE_SOURCES_PREFIX):
            raise ValueError(
                f"must start with {keys.FEATURE_SOURCES_PREFIX!r} (where the materializer may read)"
            )
        if any(part in ("", ".", "..") for part in path.removesuffix("/").split("/")):
            raise ValueError("must not contain empty, '.' or '..' path segments")
        return path


class FeatureViewDefinition(BaseModel):
    """What a view is, as declared (``features/*.toml``) and as ``PUT /feature-views/{view}`` takes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=VIEW_NAME_PATTERN)
    description: str = Field(default="", max_length=2000)
    owner: str = Field(min_length=1, max_length=200, description="Who answers for it (a team or an address)")
    entity: EntityKey
    features: list[Feature] = Field(min_length=1, max_length=MAX_FEATURES)
    source: FeatureSource
    ttl: Seconds = Field(
        ge=60,
        le=MAX_TTL_SECONDS,
        description="How long a row stays valid after its event time: older rows are stale (and "
        "DynamoDB's TTL "
        "deletes them, within about two days)",
    )
    freshness_target: Seconds | None = Field(
        default=None,
        ge=60,
        le=MAX_TTL_SECONDS,
        description="The newest row should be at most this old; a view staler than that raises the alarm",
    )
    schedule: Seconds | None = Field(
        default=None,
        ge=MIN_SCHEDULE_SECONDS,
        le=7 * 86400,
        description=f"Materialize every this long (>= {describe_seconds(MIN_SCHEDULE_SECONDS)}); "
        "none: on demand only",
    )

    @model_validator(mode="after")
    def _distinct_columns(self) -> FeatureViewDefinition:
        names = [f.name for f in self.features]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"features listed twice: {', '.join(twice)}")
        special = {self.entity.name, self.source.event_timestamp}
        if self.source.created_timestamp:
            special.add(self.source.created_timestamp)
        clash = sorted(special & set(names))
        if clash:
            raise ValueError(f"the entity and timestamp columns cannot also be features: {', '.join(clash)}")
        if self.source.created_timestamp == self.source.event_timestamp:
            raise ValueError("created_timestamp must be another column than event_timestamp")
        if self.entity.name in (self.source.event_timestamp, self.source.created_timestamp):
            raise ValueError("the entity column cannot be a timestamp column")
        return self

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def digest(self) -> str:
        """sha256 of the canonical JSON: the same definition has the same digest (an unchanged
        apply is a no-op), any change makes a new version."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def diff(before: FeatureViewDefinition | None, after: FeatureViewDefinition) -> list[str]:
    """What changes from ``before`` to ``after``, one line per change (empty: the same)."""
    if before is None:
        return [f"new view: {len(after.features)} features, entity {after.entity.name} ({after.entity.type})"]
    changes: list[str] = []
    old = {f.name: f for f in before.features}
    new = {f.name: f for f in after.features}
    changes += [f"+ feature {n} ({new[n].type})" for n in new if n not in old]
    changes += [f"- feature {n}" for n in old if n not in new]
    changes += [
        f"~ feature {n}: {old[n].type} -> {new[n].type}"
        for n in new
        if n in old and old[n].type != new[n].type
    ]
    changes += [
        f"~ feature {n}: description" for n in new if n in old and old[n].description != new[n].description
    ]
    if [n for n in before.feature_names if n in new] != [n for n in after.feature_names if n in old]:
        changes.append("~ feature order")
    if before.entity != after.entity:
        changes.append(
            f"~ entity: {before.entity.name} ({before.entity.type}) -> "
            f"{after.entity.name} ({after.entity.type})"
        )
    for field in ("format", "path", "event_timestamp", "created_timestamp"):
        was, now = getattr(before.source, field), getattr(after.source, field)
        if was != now:
            changes.append(f"~ source.{field}: {was} -> {now}")
    for field in ("ttl", "freshness_target", "schedule"):
        was, now = getattr(before, field), getattr(after, field)
        if was != now:
            changes.append(f"~ {field}: {describe_seconds(was)} -> {describe_seconds(now)}")
    for field in ("owner", "description"):
        if getattr(before, field) != getattr(after, field):
            changes.append(f"~ {field}")
    return changes


class StoredFeatureView(BaseModel):
    """A registered view: its definition at ``version`` (1, 2, ... one per change)."""

    model_config = ConfigDict(extra="ignore")

    definition: FeatureViewDefinition
    version: int = Field(ge=1)
    digest: str
    applied_at: str
    applied_by: str | None = None
    reason: str = ""


class ApplyResult(BaseModel):
    view: StoredFeatureView
    changed: bool = Field(description="False: the definition was already deployed (nothing written)")
    previous_version: int | None = None
    changes: list[str] = Field(description="What changed from the deployed version, one line each")
    dry_run: bool = False


class RejectedRow(BaseModel):
    object_key: str = Field(description="Where in the source: the object's key (relative to the view's path)")
    line: int = Field(description="1-based line in the object (the CSV header is line 1)")
    reason: str


class FailedSource(BaseModel):
    """A source object a partitioned run could not materialize (its rows were not written)."""

    object_key: str = Field(description="The object's key, relative to the view's path")
    error: str
    error_detail: list[dict[str, Any]] | None = None


Trigger = Literal["schedule", "on_demand"]
RunStatus = Literal["requested", "running", "succeeded", "failed", "skipped"]


class MaterializationRecord(BaseModel):
    """One materialization run, as the metadata table keeps it (``MATERIALIZATION#{run}``)."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    view: str
    view_version: int
    trigger: Trigger
    status: RunStatus
    requested_at: str
    started_at: str | None = None
    finished_at: str | None = None
    incremental: bool = Field(
        description="True: source objects read before and unchanged are skipped (the watermark); "
        "false: a full run, every object in the window read again"
    )
    window_start_ms: int | None = Field(
        default=None, description="Rows with an event time before this are left out"
    )
    window_end_ms: int | None = Field(
        default=None, description="Rows with an event time after this are left out"
    )
    objects_read: int = 0
    objects_skipped: int = Field(
        default=0, description="Source objects read before and unchanged (watermark)"
    )
    rows_read: int = 0
    rows_rejected: int = 0
    rejected_reasons: dict[str, int] = Field(default_factory=dict)
    rejected_examples: list[RejectedRow] = Field(
        default_factory=list, description="The first few rejected rows"
    )
    rows_outside_window: int = 0
    rows_superseded: int = Field(
        default=0, description="Rows of an entity that a newer row of the same run replaced"
    )
    entities: int = Field(default=0, description="Entities with a row in the window")
    items_written: int = 0
    items_unchanged: int = Field(
        default=0, description="Entities whose stored row is as new (same values) or newer: not written"
    )
    items_lost_race: int = Field(
        default=0, description="Conditional writes refused because a newer row landed meanwhile"
    )
    read_requests: int = 0
    write_requests: int = 0
    duration_ms: int | None = None
    error: str | None = None
    error_detail: list[dict[str, Any]] | None = None
    partitioned: bool = Field(
        default=False,
        description="True: the chosen objects were too large for one function and were materialized by a "
        "Distributed Map, one child per object (entities then counts an entity once per object holding it)",
    )
    failed_objects: list[FailedSource] = Field(
        default_factory=list, description="Partitioned runs: the objects whose child failed (the first 100)"
    )


class ViewState(BaseModel):
    """What the materializer keeps about a view between runs (``STATE``)."""

    model_config = ConfigDict(extra="ignore")

    view_version: int = 0
    entities: int = 0
    newest_event_ms: int | None = None
    #: Stored entities by event time: bucket start (Unix ms, as text) -> count.
    histogram: dict[str, int] = Field(default_factory=dict)
    bucket_ms: int = 60_000
    last_run_id: str | None = None
    last_run_status: RunStatus | None = None
    last_run_at_ms: int | None = None
    last_scheduled_at_ms: int | None = None
    last_success_at_ms: int | None = None
    #: Set before a run first writes: until then the store holds nothing of this view, and a
    #: run need not read stored rows to compare with.
    ever_written: bool = False


class Freshness(BaseModel):
    """How fresh a view's online rows are (``GET /feature-views/{view}/freshness``)."""

    view: str
    version: int
    entities: int = Field(description="Entities in the online store (as the materializer counted them)")
    newest_event_time: str | None
    age_seconds: float | None = Field(description="Age of the newest row")
    freshness_target_seconds: int | None
    stale: bool = Field(
        description="The newest row is older than the freshness target (or nothing is stored)"
    )
    expired_entities: int = Field(description="Entities whose row is older than the TTL")
    expired_share: float = Field(description="expired_entities / entities (0 when there are none)")
    ttl_seconds: int
    last_run_id: str | None
    last_run_status: str | None
    last_success_at: str | None
