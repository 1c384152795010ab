"""Reading a view's source objects (CSV with a header row, or JSON Lines) into typed rows.

Two kinds of problem, kept apart on purpose:

- **The source does not match the view** (a declared column is missing, or a feature's values
  are not of its declared type): ``SourceMismatch``, naming every such column and the first
  offending line. The materialization then fails and writes nothing: the definition or the
  data is wrong, and guessing would store wrong values.
- **A row is malformed** (no or an unreadable event timestamp, an unreadable created
  timestamp, an empty or unreadable entity id): the row is rejected, counted by reason, and
  the rest are materialized (the record lists the first few).

Values: an empty CSV field (or a JSON ``null``) is a null value; CSV ``nan`` in a float64
column is null too (JSON cannot carry NaN); ``inf`` is refused. Timestamps are ISO 8601
(``2026-12-01T12:00:00Z``; without an offset: UTC) or Unix seconds (a number).
Columns are converted with numpy where they can be (a float64 column of 300,000 rows in
milliseconds); a column that fails is then read value by value to say where.
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mlops_core.errors import Invalid, detail
from mlops_core.features.entities import (
    EntityKeyType,
    FeatureType,
    FeatureViewDefinition,
    RejectedRow,
    SourceFormat,
    canonical_entity_id,
)
from mlops_core.storage.s3 import ArtifactStore, ListedObject

#: Rejected rows listed in a run's record (all are counted).
MAX_REJECTED_EXAMPLES = 10


class SourceMismatch(Invalid):
    """The source's columns or types do not match the view (``details``: each column)."""


@dataclass
class ParsedObject:
    """One source object's rows that passed, column by column (index i is one row)."""

    key: str
    entity_ids: list[str] = field(default_factory=list)
    event_ms: list[int] = field(default_factory=list)
    created_ms: list[int | None] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    values: dict[str, list[Any]] = field(default_factory=dict)
    rows_read: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    examples: list[RejectedRow] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1
        if len(self.examples) < MAX_REJECTED_EXAMPLES:
            self.examples.append(RejectedRow(object_key=self.key, line=line, reason=reason))


def parse_timestamp_ms(value: Any) -> int | None:
    """Unix ms of an ISO 8601 text or a Unix-seconds number; None if it is neither."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return round(value * 1000) if math.isfinite(value) else None
    text = str(value).strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        try:  # a number written as text (CSV): Unix seconds
            seconds = float(text)
        except ValueError:
            return None
        return round(seconds * 1000) if math.isfinite(seconds) else None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_object(view: FeatureViewDefinition, key: str, data: bytes) -> ParsedObject:
    """The object's rows (``SourceMismatch`` if its columns or types do not match the view)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise SourceMismatch(
            f"source object {key} is not UTF-8 text",
            details=[detail(["source", key], f"not UTF-8 at byte {error.start}", "encoding")],
        ) from None
    if view.source.format is SourceFormat.csv:
        return _parse_csv(view, key, text)
    return _parse_jsonl(view, key, text)


def list_source_objects(store: ArtifactStore, view: FeatureViewDefinition) -> list[ListedObject]:
    """The view's source objects: the one object its path names, or every object under its
    prefix (empty objects and folder markers left out): the objects materialization reads
    (``FeatureStoreService._list_sources`` chooses among the same), for point-in-time joins."""
    path = view.source.path
    listed = list(store.objects(path))
    if not path.endswith("/"):  # one object: the prefix listing may hold longer keys too
        listed = [o for o in listed if o.key == path]
    return [o for o in listed if not o.key.endswith("/") and o.size > 0]


def read_source_object(
    store: ArtifactStore, view: FeatureViewDefinition, listed: ListedObject
) -> ParsedObject:
    """One source object read and parsed; named relative to the view's path."""
    relative = (
        listed.key[len(view.source.path) :]
        if view.source.path.endswith("/")
        else listed.key.rsplit("/", 1)[-1]
    )
    data = store.get(listed.key).data
    return parse_object(view, relative or listed.key.rsplit("/", 1)[-1], data)


def _required_columns(view: FeatureViewDefinition) -> list[str]:
    columns = [view.entity.name, view.source.event_timestamp]
    if view.source.created_timestamp:
        columns.append(view.source.created_timestamp)
    return [*columns, *view.feature_names]


def _parse_csv(view: FeatureViewDefinition, key: str, text: str) -> ParsedObject:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        return ParsedObject(key=key, values={n: [] for n in view.feature_names})
    position = {name.strip(): i for i, name in enumerate(header)}
    missing = [c for c in _required_columns(view) if c not in position]
    if missing:
        raise SourceMismatch(
            f"source object {key} lacks the view's columns: {', '.join(missing)}",
            details=[detail(["source", key, c], "column missing", "missing_column") for c in missing],
        )
    width = len(header)
    rows = [r for r in reader if r]  # csv yields [] for a blank line
    parsed = ParsedObject(key=key, rows_read=len(rows))
    short = [i for i, r in enumerate(rows) if len(r) < width]
    if short:
        first = short[0]
        raise SourceMismatch(
            f"source object {key}: line {first + 2} has {len(rows[first])} fields, the header {width}",
            details=[detail(["source", key, "line", first + 2], "fewer fields than the header", "row_width")],
        )
    columns = list(zip(*rows, strict=False)) if rows else [() for _ in header]
    problems: list[dict[str, Any]] = []
    converted = {}
    for feature in view.features:
        values, problem = _convert_column(columns[position[feature.name]], feature.type)
        if problem is not None:
            line, raw = problem
            problems.append(
                detail(
                    ["source", key, feature.name],
                    f"line {line + 2}: {raw[:40]!r} is not {feature.type}",
                    "type_mismatch",
                )
            )
        converted[feature.name] = values
    if problems:
        names = ", ".join(str(p["loc"][2]) for p in problems)
        raise SourceMismatch(
            f"source object {key}: values do not match the view's types in {names}", details=problems
        )
    entity_column = columns[position[view.entity.name]]
    event_column = columns[position[view.source.event_timestamp]]
    created_column = (
        columns[position[view.source.created_timestamp]] if view.source.created_timestamp else None
    )
    if not _keep_all_rows(
        view,
        parsed,
        entity_column=entity_column,
        event_column=event_column,
        created_column=created_column,
        converted=converted,
    ):
        _keep_rows(
            view,
            parsed,
            entity_column=entity_column,
            event_column=event_column,
            created_column=created_column,
            converted=converted,
            first_line=2,
        )
    return parsed


def _keep_all_rows(
    view: FeatureViewDefinition,
    parsed: ParsedObject,
    *,
    entity_column: Sequence[str],
    event_column: Sequence[str],
    created_column: Sequence[str] | None,
    converted: dict[str, list[Any]],
) -> bool:
    """The fast path, column by column (numpy): True if every row's entity id and timestamps
    are usable as they are (no row to reject); False to go row by row (``_keep_rows``)."""
    entities = _entity_column(entity_column, view.entity.type)
    events = _iso_column_ms(event_column) if entities is not None else None
    if entities is None or events is None:
        return False
    created: list[int | None]
    if created_column is None or not any(created_column):
        created = [None] * len(events)
    else:
        fast = _iso_column_ms(created_column)
        if fast is None:
            return False
        created = list(fast)
    parsed.entity_ids, parsed.event_ms, parsed.created_ms = entities, events, created
    parsed.lines = list(range(2, len(events) + 2))
    parsed.values = converted
    return True


def _entity_column(raw: Sequence[str], key_type: EntityKeyType) -> list[str] | None:
    """Canonical ids of a CSV column, or None if any needs a closer look."""
    if key_type is EntityKeyType.string:
        return list(raw) if all(0 < len(v) <= 1024 for v in raw) else None
    if not all(raw):
        return None
    try:
        return [str(v) for v in np.asarray(raw, dtype=np.int64).tolist()]
    except (ValueError, OverflowError):
        return None


def _iso_column_ms(raw: Sequence[str]) -> list[int] | None:
    """Unix ms of a column of ISO 8601 texts in UTC (``Z`` or no offset), or None if any value
    is something else (an offset, a number, empty, unreadable): those go row by row."""
    stripped = [v[:-1] if v.endswith("Z") else v for v in raw]
    if not all(len(v) >= 10 and v[4] == "-" and "+" not in v and v.rfind("-") <= 9 for v in stripped):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy's note that datetime64 has no time zones
            parsed = np.array(stripped, dtype="datetime64[ms]")
    except ValueError:
        return None
    if np.isnat(parsed).any():
        return None
    values: list[int] = parsed.astype(np.int64).tolist()
    return values


def _parse_jsonl(view: FeatureViewDefinition, key: str, text: str) -> ParsedObject:
    records: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict):
            raise SourceMismatch(
                f"source object {key}: line {number} is not a JSON object",
                details=[detail(["source", key, "line", number], "not a JSON object", "jsonl")],
            )
        records.append(record)
        lines.append(number)
    parsed = ParsedObject(key=key, rows_read=len(records))
    missing = [c for c in _required_columns(view) if records and not any(c in r for r in records)]
    if missing:
        raise SourceMismatch(
            f"source object {key} lacks the view's columns: {', '.join(missing)}",
            details=[detail(["source", key, c], "no line has it", "missing_column") for c in missing],
        )
    problems = []
    converted: dict[str, list[Any]] = {}
    for feature in view.features:
        check = _JSON_CHECKS[feature.type]
        column = [r.get(feature.name) for r in records]
        bad = next((i for i, v in enumerate(column) if v is not None and not check(v)), None)
        if bad is not None:
            problems.append(
                detail(
                    ["source", key, feature.name],
                    f"line {lines[bad]}: {json.dumps(column[bad])[:40]} is not {feature.type}",
                    "type_mismatch",
                )
            )
            continue
        converted[feature.name] = [
            float(v) if feature.type is FeatureType.float64 and v is not None else v for v in column
        ]
    if problems:
        names = ", ".join(str(p["loc"][2]) for p in problems)
        raise SourceMismatch(
            f"source object {key}: values do not match the view's types in {names}", details=problems
        )
    created = view.source.created_timestamp
    _keep_rows(
        view,
        parsed,
        entity_column=[r.get(view.entity.name) for r in records],
        event_column=[r.get(view.source.event_timestamp) for r in records],
        created_column=[r.get(created) for r in records] if created else None,
        converted=converted,
        line_numbers=lines,
    )
    return parsed


_JSON_CHECKS: dict[FeatureType, Callable[[Any], bool]] = {
    FeatureType.int64: lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63,
    FeatureType.float64: lambda v: (
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ),
    FeatureType.string: lambda v: isinstance(v, str),
    FeatureType.bool: lambda v: isinstance(v, bool),
}
_TRUE, _FALSE = frozenset({"true", "1", "t", "yes"}), frozenset({"false", "0", "f", "no"})


def _convert_column(  # noqa: PLR0911 (a fast path per type, then the slow one)
    raw: Sequence[str], kind: FeatureType
) -> tuple[list[Any], tuple[int, str] | None]:
    """CSV text -> values (None for empty), or the first line index and text that is not ``kind``."""
    if kind is FeatureType.string:
        return [v if v != "" else None for v in raw], None
    if kind is FeatureType.float64:
        try:
            array = np.asarray(raw, dtype=np.float64)
        except ValueError:
            pass  # empty fields or a bad value: value by value below
        else:
            if np.isinf(array).any():
                index = int(np.flatnonzero(np.isinf(array))[0])
                return [], (index, raw[index])
            if np.isnan(array).any():
                return [None if math.isnan(v) else v for v in array.tolist()], None
            return array.tolist(), None
    if kind is FeatureType.int64 and all(raw):
        try:
            return np.asarray(raw, dtype=np.int64).tolist(), None
        except (ValueError, OverflowError):
            pass
    values: list[Any] = []
    for index, text in enumerate(raw):
        value = _convert_value(text.strip(), kind)
        if value is _BAD:
            return [], (index, text)
        values.append(value)
    return values, None


_BAD = object()


def _convert_value(text: str, kind: FeatureType) -> Any:  # noqa: PLR0911 (a branch per type)
    if text == "":
        return None
    if kind is FeatureType.bool:
        lowered = text.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else _BAD
    if kind is FeatureType.int64:
        try:
            number = int(text)
        except ValueError:
            return _BAD
        return number if -(2**63) <= number < 2**63 else _BAD
    try:
        number_f = float(text)
    except ValueError:
        return _BAD
    if math.isnan(number_f):
        return None
    return number_f if math.isfinite(number_f) else _BAD


def _keep_rows(
    view: FeatureViewDefinition,
    parsed: ParsedObject,
    *,
    entity_column: Sequence[Any],
    event_column: Sequence[Any],
    created_column: Sequence[Any] | None,
    converted: dict[str, list[Any]],
    first_line: int = 1,
    line_numbers: Sequence[int] | None = None,
) -> None:
    """Rows with a usable entity id and timestamps go into ``parsed``; the others are rejected."""
    kept: list[int] = []
    key_type = view.entity.type
    for index, (raw_entity, raw_event) in enumerate(zip(entity_column, event_column, strict=True)):
        line = line_numbers[index] if line_numbers is not None else index + first_line
        entity = canonical_entity_id(raw_entity, key_type)
        if entity is None:
            parsed.reject(line, "malformed_entity_id")
            continue
        if raw_event is None or (isinstance(raw_event, str) and not raw_event.strip()):
            parsed.reject(line, "missing_event_timestamp")
            continue
        event = parse_timestamp_ms(raw_event)
        if event is None:
            parsed.reject(line, "malformed_event_timestamp")
            continue
        created: int | None = None
        if created_column is not None:
            raw_created = created_column[index]
            if raw_created is not None and not (isinstance(raw_created, str) and not raw_created.strip()):
                created = parse_timestamp_ms(raw_created)
                if created is None:
                    parsed.reject(line, "malformed_created_timestamp")
                    continue
        parsed.entity_ids.append(entity)
        parsed.event_ms.append(event)
        parsed.created_ms.append(created)
        parsed.lines.append(line)
        kept.append(index)
    if len(kept) == len(entity_column):
        parsed.values = converted
    else:
        parsed.values = {name: [column[i] for i in kept] for name, column in converted.items()}
