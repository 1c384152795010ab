"""Capturing every prediction, at no cost to the request that made it.

The inference function writes one JSON line per request (``{"mlops_capture": 1, ...}``)
to its log stream, which costs microseconds and no AWS call; a CloudWatch Logs
subscription filter delivers those lines to the capture function, which writes the
prediction log (DynamoDB, with a TTL) and the bulk capture (JSON Lines in S3, by model
and hour). Lambda's log pipeline is the queue: nothing is lost when the capture function
fails (CloudWatch Logs retries delivery), and a request never waits for it. A line
larger than a log event may be is split by rows (``MAX_LINE_BYTES``).

Prediction ids are time-ordered (the first 48 bits are the Unix time in milliseconds, as
in UUIDv7), so the feedback function can tell "not captured yet" from "unknown".
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

CAPTURE_MARKER = "mlops_capture"
#: CloudWatch Logs takes events of up to 256 KB; a request's line stays well below it.
MAX_LINE_BYTES = 200_000


def prediction_ids(count: int, *, now_ms: int | None = None) -> list[str]:
    """``count`` UUIDv7-shaped ids: 48 bits of milliseconds, version 7, then random bits."""
    stamp = (time.time_ns() // 1_000_000 if now_ms is None else now_ms) & ((1 << 48) - 1)
    head = (stamp << 80) | (0x7 << 76)
    randomness = os.urandom(10 * count)  # one system call for the whole batch
    ids = []
    for i in range(count):
        random_bits = int.from_bytes(randomness[10 * i : 10 * i + 10], "big") >> 4  # 76 bits
        value = head | random_bits
        value = (value & ~(0xC << 60)) | (0x8 << 60)  # RFC 4122 variant bits
        text = f"{value:032x}"
        ids.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
    return ids


def issued_at_ms(prediction_id: str) -> int | None:
    """When a prediction id was issued (None if it is not one of ours)."""
    try:
        value = uuid.UUID(prediction_id).int
    except ValueError:
        return None
    if (value >> 76) & 0xF != 0x7:
        return None
    return value >> 80


class CapturedPrediction(BaseModel):
    """One row of a captured request, as the prediction log and the bulk capture keep it."""

    model_config = ConfigDict(extra="forbid")

    prediction_id: str
    model_name: str
    model_version: int
    alias: str | None
    at_ms: int
    features: list[str]
    inputs: list[float | None]
    prediction: Any
    probabilities: list[float] | None
    request_id: str | None = None
    #: How the serving version was chosen (``serving.predictor.RoutedBy``) and under which
    #: revision of the routing policy; the request key a split was decided by.
    routed_by: str = "alias"
    policy_revision: int | None = None
    request_key: str | None = None
    #: The whole call's time in the predictor (every row of a call shares it), and the part
    #: of it spent loading the version (fetch, checksum, ONNX session) when this call did.
    latency_ms: float | None = None
    model_load_ms: float | None = None
    #: The shadow version and what it answered (filled in by the capture function, which
    #: scores the shadow off the request's path); ``shadow_error`` when it could not.
    shadow_version: int | None = None
    shadow_prediction: Any = None
    shadow_probabilities: list[float] | None = None
    shadow_error: str | None = None
    #: A prediction by entity id: view -> the entity id read, and view -> how its features
    #: were served (online, stale, defaulted); ``inputs`` holds the values assembled.
    entity_ids: dict[str, str] | None = None
    served: dict[str, str] | None = None


class PackedMatrix(BaseModel):
    """A 2-d float array as raw little-endian bytes in base64: writing 3,000 floats as JSON
    numbers took ~1 ms of a 100-row request, packing them takes microseconds."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["<f4", "<f8"]
    shape: tuple[int, int]
    b64: str

    @classmethod
    def pack(cls, array: np.ndarray) -> PackedMatrix:
        dtype = "<f4" if array.dtype == np.float32 else "<f8"
        values = np.ascontiguousarray(array, dtype=dtype)
        return cls(
            dtype=dtype,
            shape=(values.shape[0], values.shape[1]),
            b64=base64.b64encode(values.tobytes()).decode(),
        )

    def unpack(self) -> np.ndarray:
        values = np.frombuffer(base64.b64decode(self.b64), dtype=self.dtype)
        return values.reshape(self.shape).astype(np.float64)


class CaptureLine(BaseModel):
    """What the inference function writes for one request (or one slice of its rows)."""

    model_config = ConfigDict(extra="forbid")

    mlops_capture: int = 1
    model_name: str
    model_version: int
    alias: str | None
    at_ms: int
    request_id: str | None
    features: list[str]
    prediction_ids: list[str]
    inputs: PackedMatrix
    predictions: list[Any]
    probabilities: PackedMatrix | None
    routed_by: str = "alias"
    policy_revision: int | None = None
    request_key: str | None = None
    shadow_version: int | None = None
    latency_ms: float | None = None
    model_load_ms: float | None = None
    entity_ids: list[dict[str, str]] | None = None
    served: list[dict[str, str]] | None = None

    def rows(self) -> Iterator[CapturedPrediction]:
        inputs = self.inputs.unpack().tolist()
        probabilities = self.probabilities.unpack().tolist() if self.probabilities is not None else None
        for i, prediction_id in enumerate(self.prediction_ids):
            yield CapturedPrediction(
                prediction_id=prediction_id,
                model_name=self.model_name,
                model_version=self.model_version,
                alias=self.alias,
                at_ms=self.at_ms,
                features=self.features,
                inputs=inputs[i],
                prediction=self.predictions[i],
                probabilities=probabilities[i] if probabilities is not None else None,
                request_id=self.request_id,
                routed_by=self.routed_by,
                policy_revision=self.policy_revision,
                request_key=self.request_key,
                shadow_version=self.shadow_version,
                latency_ms=self.latency_ms,
                model_load_ms=self.model_load_ms,
                entity_ids=self.entity_ids[i] if self.entity_ids is not None else None,
                served=self.served[i] if self.served is not None else None,
            )


class ErrorLine(BaseModel):
    """What the inference function writes for a call that failed once a version was chosen
    (its rows could not be scored by it, say): counted against that version's error rate,
    which a rollout's guardrails compare with production's."""

    model_config = ConfigDict(extra="forbid")

    mlops_capture: int = 1
    kind: Literal["error"] = "error"
    model_name: str
    model_version: int
    routed_by: str
    policy_revision: int | None
    error: str = Field(description="The error's type (Invalid, IntegrityError, ...)")
    at_ms: int
    latency_ms: float
    request_id: str | None
    model_load_ms: float | None = None


def error_line(
    *,
    model_name: str,
    model_version: int,
    routed_by: str,
    policy_revision: int | None,
    error: str,
    at_ms: int,
    latency_ms: float,
    request_id: str | None,
    model_load_ms: float | None = None,
) -> str:
    return ErrorLine(
        model_name=model_name,
        model_version=model_version,
        routed_by=routed_by,
        policy_revision=policy_revision,
        error=error,
        at_ms=at_ms,
        latency_ms=latency_ms,
        request_id=request_id,
        model_load_ms=model_load_ms,
    ).model_dump_json()


def capture_lines(
    *,
    model_name: str,
    model_version: int,
    alias: str | None,
    features: Sequence[str],
    prediction_ids: Sequence[str],
    inputs: np.ndarray,
    predictions: Sequence[Any],
    probabilities: Sequence[Sequence[float]] | None,
    request_id: str | None,
    at_ms: int,
    routed_by: str = "alias",
    policy_revision: int | None = None,
    request_key: str | None = None,
    shadow_version: int | None = None,
    latency_ms: float | None = None,
    model_load_ms: float | None = None,
    entity_ids: Sequence[Mapping[str, str]] | None = None,
    served: Sequence[Mapping[str, str]] | None = None,
) -> list[str]:
    """The JSON lines of one request: one line, or several when its rows would not fit one."""
    head = {
        CAPTURE_MARKER: 1,
        "model_name": model_name,
        "model_version": model_version,
        "alias": alias,
        "at_ms": at_ms,
        "request_id": request_id,
        "features": list(features),
        "routed_by": routed_by,
        "policy_revision": policy_revision,
        "request_key": request_key,
        "shadow_version": shadow_version,
        "latency_ms": latency_ms,
        "model_load_ms": model_load_ms,
    }

    scores = np.asarray(probabilities, dtype=np.float64) if probabilities is not None else None

    def line(start: int, end: int) -> str:
        return json.dumps(
            head
            | {
                "prediction_ids": list(prediction_ids[start:end]),
                "inputs": PackedMatrix.pack(inputs[start:end]).model_dump(),
                "predictions": list(predictions[start:end]),
                "probabilities": PackedMatrix.pack(scores[start:end]).model_dump()
                if scores is not None
                else None,
            }
            | (
                {
                    "entity_ids": [dict(row) for row in entity_ids[start:end]],
                    "served": [dict(row) for row in (served or [])[start:end]]
                    if served is not None
                    else None,
                }
                if entity_ids is not None
                else {}
            ),
            separators=(",", ":"),
            allow_nan=False,
        )

    whole = line(0, len(prediction_ids))
    if len(whole) <= MAX_LINE_BYTES or len(prediction_ids) <= 1:
        return [whole]
    rows_per_line = max(1, len(prediction_ids) * MAX_LINE_BYTES // len(whole) // 2)
    return [line(i, i + rows_per_line) for i in range(0, len(prediction_ids), rows_per_line)]


def emit(lines: Sequence[str], write: Callable[[str], Any] | None = None) -> None:
    """Write the lines to the function's log stream (stdout: Lambda ships it)."""
    import sys

    out = write or sys.stdout.write
    for text in lines:
        out(text + "\n")
