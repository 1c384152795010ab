"""Point-in-time training sets: each label row joined with the feature rows that were known
at its time, and never later.

For a label row (entity, time ``t``, label) and a view, the feature row used is the
**latest row of that entity with event time <= t**; rows of one entity at the same event
time are ordered as materialization orders them (``materialization``: created time, a row
without one oldest; then the later source object and line), so the online store and a
training set agree on which row is "the latest". A row older than the view's TTL at ``t``
(``t - event time > ttl``) is **expired**: the label row gets no values from that view,
exactly as a lookup at ``t`` would have found the row stale. A label row whose entity has no
row at or before ``t`` is **missing**. Every label row is returned, in the labels' order,
with a status per view (``ok``, ``missing``, ``expired``) and counts: nothing is dropped
here (what to do with incomplete rows is the caller's policy: ``TrainingSetPolicy``).

The join reads a view's **offline source** (the same S3 objects materialization reads,
parsed by ``sources.parse_object``), not the online table: the online table holds one row
per entity, the latest, which is exactly the leak this module exists to avoid.

Vectorized with numpy: entity ids and times are coded as integers, the feature rows sorted
once by (entity, event time, tie-breakers), and every label row found with one
``searchsorted`` (the last row whose (entity, time) key is <= the label's).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from mlops_core.errors import Invalid, detail
from mlops_core.features.entities import (
    EntityKeyType,
    FeatureType,
    FeatureViewDefinition,
    canonical_entity_id,
    iso_ms,
)
from mlops_core.features.sources import ParsedObject, _iso_column_ms, parse_timestamp_ms

#: Label rows named in an error (all are counted).
MAX_EXAMPLES = 10
#: Views one training set may join.
MAX_VIEWS = 10


class RowStatus(IntEnum):
    ok = 0
    missing = 1  # no row of the entity at or before the label's time
    expired = 2  # the latest such row is older than the view's TTL at the label's time


STATUS_NAMES = {RowStatus.ok: "ok", RowStatus.missing: "missing", RowStatus.expired: "expired"}


class InvalidLabels(Invalid):
    """The labels cannot be joined (a column missing, an unreadable time or entity id)."""


@dataclass(frozen=True)
class Labels:
    """Label rows, column by column (index i is one row), in the file's order."""

    entity_ids: list[str]
    event_ms: np.ndarray  # int64
    labels: list[str]
    entity_column: str
    timestamp_column: str
    label_column: str

    @property
    def rows(self) -> int:
        return len(self.entity_ids)


def parse_labels(data: bytes, *, entity: str, timestamp: str, label: str, name: str = "labels") -> Labels:
    """A labels CSV (a header row; ``entity``, ``timestamp`` and ``label`` columns; others
    ignored). Every row must have an entity id, a readable time and a label: a label row
    cannot be joined without them, and dropping it would be the silent loss this join
    refuses, so ``InvalidLabels`` names the first offending lines instead."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidLabels(f"{name} is not UTF-8 text (byte {error.start})") from None
    reader = csv.reader(io.StringIO(text))
    header = [h.strip() for h in next(reader, [])]
    position = {column: i for i, column in enumerate(header)}
    absent = [c for c in (entity, timestamp, label) if c not in position]
    if absent:
        raise InvalidLabels(
            f"{name} lacks the column(s) {', '.join(absent)} (header: {', '.join(header)[:200]})",
            details=[detail([name, c], "column missing", "missing_column") for c in absent],
        )
    rows = [r for r in reader if r]
    if not rows:
        raise InvalidLabels(f"{name} has no rows")
    width = max(position[c] for c in (entity, timestamp, label)) + 1
    short = [i for i, r in enumerate(rows) if len(r) < width]
    if short:
        raise InvalidLabels(f"{name}: line {short[0] + 2} has fewer fields than the header")
    entities = [r[position[entity]].strip() for r in rows]
    times_raw = [r[position[timestamp]].strip() for r in rows]
    values = [r[position[label]].strip() for r in rows]
    fast = _iso_column_ms(times_raw)
    if fast is not None:
        times = np.asarray(fast, dtype=np.int64)
    else:
        parsed = [parse_timestamp_ms(v) for v in times_raw]
        bad = [i for i, v in enumerate(parsed) if v is None]
        if bad:
            lines = ", ".join(str(i + 2) for i in bad[:MAX_EXAMPLES])
            raise InvalidLabels(
                f"{name}: {len(bad)} row(s) with no or an unreadable {timestamp} (lines {lines})",
                details=[
                    detail([name, "line", i + 2, timestamp], "unreadable time", "timestamp") for i in bad[:10]
                ],
            )
        times = np.asarray(parsed, dtype=np.int64)
    for column, found in ((entity, entities), (label, values)):
        empty = [i for i, v in enumerate(found) if not v]
        if empty:
            lines = ", ".join(str(i + 2) for i in empty[:MAX_EXAMPLES])
            raise InvalidLabels(
                f"{name}: {len(empty)} row(s) with an empty {column} (lines {lines})",
                details=[detail([name, "line", i + 2, column], "empty", "empty") for i in empty[:10]],
            )
    return Labels(
        entity_ids=entities,
        event_ms=times,
        labels=values,
        entity_column=entity,
        timestamp_column=timestamp,
        label_column=label,
    )


@dataclass
class ViewJoin:
    """One view's side of the join: per label row, its status and (when ok) values."""

    view: FeatureViewDefinition
    version: int | None
    status: np.ndarray  # int8, RowStatus per label row
    feature_event_ms: np.ndarray  # int64: the matched row's event time (-1 where missing)
    #: feature -> its value per label row: float64 (NaN: none) for a float64 feature, else
    #: object (None: none); none where the row is not ok or holds no value.
    values: dict[str, np.ndarray]
    source_rows: int
    source_rows_rejected: int

    def count(self, status: RowStatus) -> int:
        return int(np.count_nonzero(self.status == status))

    def nulls(self, feature: str) -> int:
        """Label rows whose matched (ok) row holds no value for ``feature``."""
        ok = self.status == RowStatus.ok
        return int(np.count_nonzero(ok & ~present(self.values[feature])))


def _entity_codes(ids: Sequence[str], key_type: EntityKeyType) -> tuple[np.ndarray, np.ndarray]:
    """Integer-comparable entity keys of ``ids`` (canonical form), and which ids are usable."""
    if key_type is EntityKeyType.int64:
        try:  # the common case: every id is a plain integer (numpy parses them at C speed)
            return np.asarray(ids, dtype=np.int64), np.ones(len(ids), dtype=bool)
        except (ValueError, OverflowError):
            pass
        canonical = [canonical_entity_id(v, key_type) for v in ids]
        usable = np.fromiter((c is not None for c in canonical), dtype=bool, count=len(ids))
        return np.asarray([int(c) if c is not None else 0 for c in canonical], dtype=np.int64), usable
    array = np.asarray(ids, dtype=object)
    usable = np.fromiter((0 < len(v) <= 1024 for v in ids), dtype=bool, count=len(ids))
    return array, usable


def present(column: np.ndarray) -> np.ndarray:
    """Which label rows have a value in ``column`` (a ``ViewJoin.values`` array)."""
    if column.dtype == np.float64:
        found: np.ndarray = ~np.isnan(column)
        return found
    return np.fromiter((v is not None for v in column), dtype=bool, count=column.size)


def _int_column(parts: Sequence[Sequence[int | None]], *, none: int | None = None) -> np.ndarray:
    """Lists of integers (``None`` as ``none``, where allowed) as one int64 array."""
    arrays = []
    for part in parts:
        try:
            arrays.append(np.asarray(part, dtype=np.int64))
        except TypeError:  # a None among them
            if none is None:
                raise
            arrays.append(np.asarray([none if v is None else v for v in part], dtype=np.int64))
    return np.concatenate(arrays) if arrays else np.empty(0, dtype=np.int64)


def join_view(
    view: FeatureViewDefinition,
    objects: Sequence[ParsedObject],
    labels: Labels,
    *,
    version: int | None = None,
) -> ViewJoin:
    """Each label row's latest row of ``view`` at or before its time (see the module's doc)."""
    ordered = sorted(objects, key=lambda p: p.key)  # the later object wins a tie, as materializing
    feature_ids = [e for p in ordered for e in p.entity_ids]
    n_features, n_labels = len(feature_ids), labels.rows
    event = _int_column([p.event_ms for p in ordered])
    created = _int_column([p.created_ms for p in ordered], none=-1)
    object_index = np.repeat(np.arange(len(ordered), dtype=np.int64), [len(p.entity_ids) for p in ordered])
    line = _int_column([p.lines for p in ordered])

    # One coding of entities and times for both sides: dense integer ranks.
    label_keys, label_usable = _entity_codes(labels.entity_ids, view.entity.type)
    feature_keys, _ = _entity_codes(feature_ids, view.entity.type)  # source ids are canonical already
    all_entities = np.concatenate([feature_keys, label_keys]) if n_features else label_keys
    _, entity_code = np.unique(all_entities, return_inverse=True)
    all_times = np.concatenate([event, labels.event_ms])
    _, time_code = np.unique(all_times, return_inverse=True)
    n_times = int(time_code.max()) + 1 if time_code.size else 1
    key = entity_code.astype(np.int64) * n_times + time_code.astype(np.int64)
    feature_key, label_key = key[:n_features], key[n_features:]

    # Sorted by (entity, event time, created, object, line): the last row of a run of equal
    # (entity, time) keys is the one that wins the tie.
    order = np.lexsort((line, object_index, created, feature_key))
    sorted_keys = feature_key[order]
    found = np.searchsorted(sorted_keys, label_key, side="right") - 1
    clipped = np.clip(found, 0, max(n_features - 1, 0))
    label_entity = entity_code[n_features:]
    same_entity = (
        (found >= 0) & (entity_code[:n_features][order][clipped] == label_entity) & label_usable
        if n_features
        else np.zeros(n_labels, dtype=bool)
    )
    matched_row = np.where(same_entity, order[clipped] if n_features else 0, -1)
    matched_event = np.where(same_entity, event[matched_row] if n_features else -1, -1)
    status = np.full(n_labels, RowStatus.missing, dtype=np.int8)
    age_ms = labels.event_ms - matched_event
    status[same_entity] = np.where(age_ms[same_entity] > view.ttl * 1000, RowStatus.expired, RowStatus.ok)

    ok = status == RowStatus.ok
    rows_ok = matched_row[ok]
    values: dict[str, np.ndarray] = {}
    for feature in view.features:
        parts = [p.values[feature.name] for p in ordered]
        if feature.type is FeatureType.float64:  # numpy reads None as NaN: C speed both ways
            source = (
                np.concatenate([np.asarray(v, dtype=np.float64) for v in parts]) if parts else np.empty(0)
            )
            column_out = np.full(n_labels, np.nan)
            column_out[ok] = source[rows_ok]
        else:
            flat = parts[0] if len(parts) == 1 else [v for part in parts for v in part]
            column_out = np.full(n_labels, None, dtype=object)
            picked = np.empty(rows_ok.size, dtype=object)
            picked[:] = [flat[i] for i in rows_ok.tolist()]
            column_out[ok] = picked
        values[feature.name] = column_out
    return ViewJoin(
        view=view,
        version=version,
        status=status,
        feature_event_ms=np.where(same_entity, matched_event, -1),
        values=values,
        source_rows=sum(p.rows_read for p in ordered),
        source_rows_rejected=sum(sum(p.rejected.values()) for p in ordered),
    )


# ---- the training set --------------------------------------------------------------------
class FeatureCounts(BaseModel):
    view: str
    feature: str
    type: FeatureType
    missing: int = Field(description="Label rows with no row of the entity at or before their time")
    expired: int = Field(description="Label rows whose latest row was older than the view's TTL")
    null: int = Field(description="Label rows whose row holds no value for this feature")


class ViewCounts(BaseModel):
    view: str
    version: int | None
    ttl_seconds: int
    ok: int
    missing: int
    expired: int
    source_rows: int = Field(description="Rows read from the view's source objects")
    source_rows_rejected: int = Field(description="Source rows rejected as malformed (not joinable)")


class IncompleteRow(BaseModel):
    line: int = Field(description="The label row's line in the labels CSV (the header is line 1)")
    entity_id: str
    event_time: str
    missing: list[str] = Field(description="view or view.feature: what it lacks")


class TrainingSetReport(BaseModel):
    """What a point-in-time join found: every label row is counted, none is dropped unseen."""

    rows: int = Field(description="Label rows (all returned by the join)")
    complete: int = Field(description="Label rows with every feature present")
    incomplete: int = Field(description="Label rows lacking at least one feature (missing, expired or null)")
    views: list[ViewCounts]
    features: list[FeatureCounts]
    examples: list[IncompleteRow] = Field(default_factory=list, description="The first incomplete rows")
    policy: str | None = Field(default=None, description="What was done with the incomplete rows")
    rows_dropped: int = 0
    rows_kept: int | None = None


@dataclass
class TrainingSet:
    labels: Labels
    joins: list[ViewJoin]
    complete: np.ndarray = field(init=False)  # bool per label row

    def __post_init__(self) -> None:
        complete = np.ones(self.labels.rows, dtype=bool)
        for join in self.joins:
            complete &= join.status == RowStatus.ok
            for column in join.values.values():
                complete &= present(column)
        self.complete = complete

    @property
    def feature_columns(self) -> list[tuple[FeatureViewDefinition, str]]:
        return [(j.view, name) for j in self.joins for name in j.view.feature_names]

    def report(self) -> TrainingSetReport:
        views = [
            ViewCounts(
                view=j.view.name,
                version=j.version,
                ttl_seconds=j.view.ttl,
                ok=j.count(RowStatus.ok),
                missing=j.count(RowStatus.missing),
                expired=j.count(RowStatus.expired),
                source_rows=j.source_rows,
                source_rows_rejected=j.source_rows_rejected,
            )
            for j in self.joins
        ]
        features = [
            FeatureCounts(
                view=j.view.name,
                feature=f.name,
                type=f.type,
                missing=j.count(RowStatus.missing),
                expired=j.count(RowStatus.expired),
                null=j.nulls(f.name),
            )
            for j in self.joins
            for f in j.view.features
        ]
        incomplete_rows = np.flatnonzero(~self.complete)
        examples = [self._incomplete(int(i)) for i in incomplete_rows[:MAX_EXAMPLES]]
        return TrainingSetReport(
            rows=self.labels.rows,
            complete=int(self.complete.sum()),
            incomplete=int(incomplete_rows.size),
            views=views,
            features=features,
            examples=examples,
        )

    def _incomplete(self, row: int) -> IncompleteRow:
        lacking: list[str] = []
        for join in self.joins:
            status = RowStatus(int(join.status[row]))
            if status is not RowStatus.ok:
                lacking.append(f"{join.view.name} ({STATUS_NAMES[status]})")
                continue
            lacking += [
                f"{join.view.name}.{n} (null)"
                for n, c in join.values.items()
                if not present(c[row : row + 1])[0]
            ]
        return IncompleteRow(
            line=row + 2,
            entity_id=self.labels.entity_ids[row],
            event_time=iso_ms(int(self.labels.event_ms[row])),
            missing=lacking,
        )

    def to_csv(self, *, rows: np.ndarray | None = None, with_status: bool = True) -> bytes:
        """The set as CSV: entity, time, label, every feature (empty where absent) and, with
        ``with_status``, a ``{view}__status`` column per view (ok, missing, expired)."""
        chosen = np.arange(self.labels.rows) if rows is None else rows
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        header = [self.labels.entity_column, self.labels.timestamp_column, self.labels.label_column]
        header += [name for _, name in self.feature_columns]
        if with_status:
            header += [f"{j.view.name}__status" for j in self.joins]
        writer.writerow(header)
        columns = [j.values[name] for j in self.joins for name in j.view.feature_names]
        for i in chosen.tolist():
            line = [self.labels.entity_ids[i], iso_ms(int(self.labels.event_ms[i])), self.labels.labels[i]]
            line += [_cell(c[i]) for c in columns]
            if with_status:
                line += [STATUS_NAMES[RowStatus(int(j.status[i]))] for j in self.joins]
            writer.writerow(line)
        return out.getvalue().encode()

    def dataset_csv(self, rows: np.ndarray) -> bytes:
        """The rows trained on: the features, then the label (no ids, times or statuses:
        every column of a run's dataset but the target is a model input)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([name for _, name in self.feature_columns] + [self.labels.label_column])
        columns = [j.values[name] for j in self.joins for name in j.view.feature_names]
        for i in rows.tolist():
            writer.writerow([*(_cell(c[i]) for c in columns), self.labels.labels[i]])
        return out.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):  # numpy's float64 is a float
        return repr(float(value)) if math.isfinite(value) else ""
    return str(value)


def check_columns(views: Sequence[FeatureViewDefinition], label_columns: Sequence[str]) -> None:
    """The training set's columns must be distinct: ``Invalid`` naming any feature that two
    views share or that is also a label column."""
    if len(views) > MAX_VIEWS:
        raise Invalid(f"at most {MAX_VIEWS} feature views in one training set ({len(views)} named)")
    names = [v.name for v in views]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise Invalid(f"feature views named twice: {', '.join(twice)}")
    seen: dict[str, str] = {c: "the labels" for c in label_columns}
    clashes = []
    for view in views:
        for name in view.feature_names:
            if name in seen:
                clashes.append(f"{name} ({seen[name]} and {view.name})")
            seen[name] = view.name
    if clashes:
        raise Invalid(
            "feature names must be distinct across the views and the label columns: " + "; ".join(clashes)
        )


def build_training_set(
    labels: Labels,
    views: Sequence[tuple[FeatureViewDefinition, Sequence[ParsedObject], int | None]],
) -> TrainingSet:
    """Join ``labels`` with each view (its definition, parsed source objects and version)."""
    check_columns(
        [v for v, _, _ in views], [labels.entity_column, labels.timestamp_column, labels.label_column]
    )
    return TrainingSet(
        labels=labels,
        joins=[join_view(view, objects, labels, version=version) for view, objects, version in views],
    )


MissingPolicy = Literal["drop", "fail"]


class IncompleteTrainingSet(Invalid):
    """Too many label rows lack features for the policy (``report`` says which and why)."""

    def __init__(self, message: str, report: TrainingSetReport) -> None:
        super().__init__(message)
        self.report = report


def apply_policy(
    training_set: TrainingSet, *, policy: MissingPolicy, max_incomplete_fraction: float
) -> tuple[np.ndarray, TrainingSetReport]:
    """The label rows to train on, and the report saying what was done with the others.

    ``drop``: incomplete rows are left out and counted, unless they are more than
    ``max_incomplete_fraction`` of the rows (then ``IncompleteTrainingSet``: a training set
    that much smaller than its labels is more likely a broken source than a few late rows).
    ``fail``: any incomplete row fails. Never imputed: a model trained on imputed values
    would be served real ones (or the entity path's declared defaults), not the same thing.
    """
    report = training_set.report()
    incomplete = report.incomplete
    share = incomplete / report.rows if report.rows else 0.0
    worst = sorted(report.features, key=lambda f: -(f.missing + f.expired + f.null))[:3]
    summary = ", ".join(
        f"{f.view}.{f.feature}: {f.missing} missing, {f.expired} expired, {f.null} null" for f in worst
    )
    if policy == "fail" and incomplete:
        raise IncompleteTrainingSet(
            f"{incomplete} of {report.rows} label rows lack features (policy fail): {summary}", report
        )
    if share > max_incomplete_fraction:
        raise IncompleteTrainingSet(
            f"{incomplete} of {report.rows} label rows ({share:.1%}) lack features, more than the "
            f"allowed {max_incomplete_fraction:.1%}: {summary}",
            report,
        )
    kept = np.flatnonzero(training_set.complete)
    report.policy = policy
    report.rows_dropped = incomplete
    report.rows_kept = int(kept.size)
    return kept, report
