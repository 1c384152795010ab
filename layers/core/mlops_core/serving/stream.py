"""Streaming inference: a batch of Kinesis records scored with the real-time predictor.

Each input record is one JSON object, ``{"model": NAME, "features": [...] | {...}}`` with
optional ``record_id`` (echoed), ``alias`` or ``version`` (else the model's routing policy
decides, as for ``POST /models/{name}/predict``) and ``request_key`` (what a split policy
is sticky by; default: the record's partition key). What becomes of a record:

- scored: a result on the output stream, and a capture line exactly like the inference
  function's, so it reaches the prediction log (and feedback) under its prediction id;
- refused by the model (unknown model, alias or version; wrong, missing or non-numeric
  features): an ``error`` result on the output stream, in its place in the key's order,
  with the message and details a 404/422 would carry (and an error line counted against
  the version, as for a real-time call that fails);
- not a record at all (not JSON, no model, unknown fields): *poison* — the batch fails
  as a whole (a function error), so the event source mapping bisects it down to the
  poison record alone, retries it a bounded number of times and sends its description to
  the dead-letter queue; nothing of a failed invocation is written;
- a dependency failing (registry or artifact store unavailable, an artifact refused):
  the batch stops there; the records before it are written, that record and every later
  one are reported as batch item failures, and Lambda retries from it — so no record of
  a partition key is ever written after a later one.

Prediction ids are derived from the record (its arrival time and event id): a record
scored again after a retry gets the same id, so the prediction log is written once per
id and a consumer of the output dedupes by it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_core.errors import Invalid, MlopsError, NotFound, Unavailable
from mlops_core.registry.entities import ALIAS_PATTERN, MODEL_NAME_PATTERN
from mlops_core.serving.capture import capture_lines, error_line
from mlops_core.serving.predictor import Choice, Prediction, Predictor
from mlops_core.storage.kinesis import Entry

Value = float | int | bool | str | None


class StreamRecord(BaseModel):
    """The data of one input record."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(pattern=MODEL_NAME_PATTERN, max_length=128)
    features: list[Value] | dict[str, Value]
    record_id: str | None = Field(default=None, min_length=1, max_length=256)
    alias: str | None = Field(default=None, pattern=ALIAS_PATTERN, max_length=64)
    version: int | None = Field(default=None, ge=1)
    request_key: str | None = Field(default=None, min_length=1, max_length=256)


@dataclass(frozen=True)
class InputRecord:
    """A Kinesis record as the event source mapping delivers it (data decoded)."""

    sequence_number: str
    partition_key: str
    data: bytes
    arrived_ms: int
    event_id: str


class RecordError(BaseModel):
    type: str = Field(description="not_found or invalid")
    message: str
    details: list[dict[str, Any]] = Field(default_factory=list)


class StreamResult(BaseModel):
    """One record's answer on the output stream."""

    sequence_number: str
    record_id: str | None
    model_name: str
    model_version: int | None = None
    alias: str | None = None
    routed_by: str | None = None
    prediction_id: str | None = None
    prediction: Any = None
    probabilities: list[float] | None = None
    classes: list[Any] | None = None
    error: RecordError | None = None


@dataclass
class ScoredBatch:
    """What ``score_batch`` made of a batch: results and capture lines of the records before
    ``failed_from`` (None: all of them), or the first poison record (then nothing is written)."""

    results: list[tuple[InputRecord, StreamResult]] = field(default_factory=list)
    capture: list[str] = field(default_factory=list)
    failed_from: int | None = None
    failure: str | None = None
    poison: tuple[int, str] | None = None

    @property
    def scored(self) -> int:
        return sum(1 for _, result in self.results if result.error is None)

    @property
    def refused(self) -> int:
        return sum(1 for _, result in self.results if result.error is not None)

    def output_entries(self) -> list[Entry]:
        """One output record per partition key, holding that key's results in order."""
        by_key: dict[str, list[StreamResult]] = {}
        for record, result in self.results:
            by_key.setdefault(record.partition_key, []).append(result)
        entries = []
        for key, results in by_key.items():
            for chunk in _chunks(results):
                document = {"partition_key": key, "results": [r.model_dump(mode="json") for r in chunk]}
                entries.append(Entry(key, json.dumps(document, separators=(",", ":")).encode()))
        return entries


#: An output record stays below Kinesis's 1 MB; a key's results beyond that go in several,
#: in order (sent in successive rounds, ``storage.kinesis.rounds``).
_MAX_OUTPUT_BYTES = 900_000


def _chunks(results: list[StreamResult]) -> list[list[StreamResult]]:
    chunks: list[list[StreamResult]] = [[]]
    size = 0
    for result in results:
        length = len(result.model_dump_json()) + 1
        if chunks[-1] and size + length > _MAX_OUTPUT_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(result)
        size += length
    return chunks


def stable_prediction_id(at_ms: int, seed: str) -> str:
    """A UUIDv7-shaped id (48 bits of milliseconds, as ``capture.prediction_ids``) whose other
    bits come from ``seed``: the same record always gets the same id."""
    digest = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:10], "big") >> 4  # 76 bits
    value = ((at_ms & ((1 << 48) - 1)) << 80) | (0x7 << 76) | digest
    value = (value & ~(0xC << 60)) | (0x8 << 60)
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def parse_record(record: InputRecord) -> StreamRecord:
    """The record's data, or ``Invalid`` saying why it is poison."""
    try:
        document = json.loads(record.data)
    except (UnicodeDecodeError, ValueError):
        raise Invalid("the record's data is not JSON") from None
    if not isinstance(document, dict):
        raise Invalid("the record's data is not a JSON object")
    try:
        return StreamRecord.model_validate(document)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        raise Invalid(f"{where}: {first['msg']}") from None


def _refusal(error: MlopsError, *, strip: int = 3) -> RecordError:
    kind = "not_found" if isinstance(error, NotFound) else "invalid"
    details = [
        {**d, "loc": ["features", *d.get("loc", [])[strip:]]} if d.get("loc", [None])[0] == "body" else d
        for d in error.details
    ]
    return RecordError(type=kind, message=error.message, details=details)


@dataclass
class _Group:
    """Records that one chosen version scores in one call (same routing outcome and key)."""

    choice: Choice
    request_key: str
    indices: list[int] = field(default_factory=list)


def _group_key(name: str, choice: Choice, request_key: str) -> tuple[Any, ...]:
    return (
        name,
        choice.model.version.version,
        choice.alias,
        choice.routed_by,
        choice.policy_revision,
        choice.shadow_version,
        request_key,
    )


def score_batch(
    predictor: Predictor, records: Sequence[InputRecord], *, request_id: str | None, now_ms: int
) -> ScoredBatch:
    """Score a batch in order (see the module's docstring for what becomes of each record)."""
    return _BatchScorer(predictor, records, request_id, now_ms).run()


class _BatchScorer:
    def __init__(
        self, predictor: Predictor, records: Sequence[InputRecord], request_id: str | None, now_ms: int
    ) -> None:
        self.predictor, self.records = predictor, records
        self.request_id, self.now_ms = request_id, now_ms
        self.parsed: list[StreamRecord] = []
        self.answers: dict[int, StreamResult] = {}
        self.refused: list[tuple[int, str]] = []  # error lines, by the record they are about
        self.batch = ScoredBatch()
        self.stop = len(records)

    def run(self) -> ScoredBatch:
        batch = self.batch
        for index, record in enumerate(self.records):
            try:
                self.parsed.append(parse_record(record))
            except Invalid as error:
                batch.poison = (index, error.message)
                return batch
        groups = self._choose()
        scored = []
        for group in groups:
            rows = [i for i in group.indices if i < self.stop]
            if not rows:
                continue
            try:
                scored.extend(self._score(group, rows))
            except Exception as error:  # the version could not score at all: retried from there
                if rows[0] < self.stop:
                    self.stop, batch.failure = rows[0], f"{type(error).__name__}: {error}"[:500]
        batch.capture = self._capture(scored)
        if self.stop < len(self.records):
            batch.failed_from = self.stop
        batch.results = [(self.records[i], self.answers[i]) for i in range(self.stop)]
        return batch

    def _choose(self) -> list[_Group]:
        """The version for each record, in order, until a dependency fails."""
        groups: dict[tuple[Any, ...], _Group] = {}
        for index, (record, data) in enumerate(zip(self.records, self.parsed, strict=True)):
            try:
                if data.alias is not None and data.version is not None:
                    raise Invalid("give alias or version, not both")
                key = data.request_key or record.partition_key
                choice = self.predictor.choose(data.model, alias=data.alias, version=data.version, key=key)
            except Unavailable as error:  # IntegrityError too: Lambda retries from this record
                self.stop, self.batch.failure = index, error.message
                break
            except (NotFound, Invalid) as error:
                self.answers[index] = self._refusal(index, error)
                continue
            groups.setdefault(_group_key(data.model, choice, key), _Group(choice, key)).indices.append(index)
        return list(groups.values())

    def _refusal(self, index: int, error: MlopsError, choice: Choice | None = None) -> StreamResult:
        data = self.parsed[index]
        return StreamResult(
            sequence_number=self.records[index].sequence_number,
            record_id=data.record_id,
            model_name=data.model,
            model_version=None if choice is None else choice.model.version.version,
            alias=None if choice is None else choice.alias,
            routed_by=None if choice is None else choice.routed_by,
            error=_refusal(error),
        )

    def _score(self, group: _Group, rows: list[int]) -> list[tuple[_Group, list[int], Prediction]]:
        """The rows scored in one call (one by one when some are invalid, to say which)."""
        choice = group.choice
        try:
            scored = [(group, rows, self.predictor.score(choice, [self.parsed[i].features for i in rows]))]
        except Invalid:
            scored = []
            for i in rows:
                try:
                    scored.append((group, [i], self.predictor.score(choice, [self.parsed[i].features])))
                except Invalid as error:
                    self.answers[i] = self._refusal(i, error, choice)
                    self.refused.append((i, self._error_line(choice)))
        for _, scored_rows, result in scored:
            shown = result.shown_predictions
            for position, i in enumerate(scored_rows):
                record = self.records[i]
                self.answers[i] = StreamResult(
                    sequence_number=record.sequence_number,
                    record_id=self.parsed[i].record_id,
                    model_name=result.model_name,
                    model_version=result.model_version,
                    alias=result.alias,
                    routed_by=result.routed_by,
                    prediction_id=stable_prediction_id(record.arrived_ms, record.event_id),
                    prediction=shown[position],
                    probabilities=None if result.probabilities is None else result.probabilities[position],
                    classes=result.shown_classes,
                )
        return scored

    def _error_line(self, choice: Choice) -> str:
        """Counted against the version, as a real-time call it could not score is."""
        return error_line(
            model_name=choice.model.version.model_name,
            model_version=choice.model.version.version,
            routed_by=choice.routed_by,
            policy_revision=choice.policy_revision,
            error="Invalid",
            at_ms=self.now_ms,
            latency_ms=0.0,
            request_id=self.request_id,
        )

    def _capture(self, scored: list[tuple[_Group, list[int], Prediction]]) -> list[str]:
        """The capture lines of the records before ``stop``, in the order of their first record."""
        lines = [(i, line) for i, line in self.refused if i < self.stop]
        for group, rows, result in scored:
            keep = [position for position, i in enumerate(rows) if i < self.stop]
            if not keep:
                continue
            kept = [rows[p] for p in keep]
            probabilities = result.probabilities
            for line in capture_lines(
                model_name=result.model_name,
                model_version=result.model_version,
                alias=result.alias,
                features=result.features,
                prediction_ids=[self.answers[i].prediction_id or "" for i in kept],
                inputs=result.inputs[keep],
                predictions=[result.predictions[p] for p in keep],
                probabilities=None if probabilities is None else [probabilities[p] for p in keep],
                request_id=self.request_id,
                at_ms=self.now_ms,
                routed_by=result.routed_by,
                policy_revision=result.policy_revision,
                request_key=group.request_key,
                shadow_version=result.shadow_version,
            ):
                lines.append((kept[0], line))
        return [line for _, line in sorted(lines, key=lambda pair: pair[0])]
