"""Scoring one input object: its rows through the same ONNX session real-time inference uses
(``serving.sessions.LoadedModel``, loaded and checksum-verified by ``serving.Predictor``), in
chunks, into one CSV of predictions and one JSON Lines file of refused rows.

The output CSV has a header and one line per scored row, in input order::

    line,prediction,probability_0,probability_1,model_version
    2,1,0.0123456791,0.987654328,3

``line`` is the row's line number in the input object. Probabilities are the model's float32
outputs written with 9 significant digits, which read back to exactly the same float32 (what
the real-time API returns as a float64). A refused row is a line of the errors file:
``{"line": 7, "reason": "expected 10 fields, got 9"}``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field

import numpy as np

from mlops_core.batch.csv_output import format_rows
from mlops_core.batch.rows import BadRow, InputFormat, ParsedRows, parse_rows
from mlops_core.serving.sessions import LoadedModel

#: Rows per ONNX run: large enough to amortise the call, small enough to bound memory.
CHUNK_ROWS = 8192
#: Refused rows kept in an object's summary (all of them are in its errors file).
SUMMARY_BAD_ROWS = 20


@dataclass
class ScoredObject:
    predictions: bytes
    errors: bytes
    rows: int
    scored: int
    bad: list[BadRow] = field(default_factory=list)


def output_header(model: LoadedModel) -> list[str]:
    signature = model.version.signature
    probabilities = (
        [f"probability_{c}" for c in signature.shown_classes or []]
        if signature.classes and signature.probabilities_output
        else []
    )
    return ["line", "prediction", *probabilities, "model_version"]


def score_rows(model: LoadedModel, parsed: ParsedRows) -> ScoredObject:
    """Score parsed rows; rows whose output is not finite are refused like malformed ones."""
    version = model.version.version
    header = io.StringIO()
    csv.writer(header, lineterminator="\n").writerow(output_header(model))
    out = [header.getvalue().encode()]
    bad = list(parsed.bad)
    scored = 0
    for start in range(0, len(parsed.matrix), CHUNK_ROWS):
        matrix = parsed.matrix[start : start + CHUNK_ROWS]
        lines = parsed.lines[start : start + CHUNK_ROWS]
        labels, scores, not_finite = model.outputs(matrix)
        if not_finite:
            keep = np.ones(len(matrix), dtype=bool)
            keep[not_finite] = False
            bad.extend(BadRow(int(lines[i]), "the model's output is not finite") for i in not_finite)
            labels, lines = labels[keep], lines[keep]
            scores = scores[keep] if scores is not None else None
        out.append(format_rows(lines, _shown_labels(labels, model)[:, 0], scores, version))
        scored += len(lines)
    bad.sort(key=lambda row: row.line)
    errors = "".join(json.dumps({"line": row.line, "reason": row.reason}) + "\n" for row in bad)
    return ScoredObject(
        predictions=b"".join(out),
        errors=errors.encode(),
        rows=parsed.total,
        scored=scored,
        bad=bad,
    )


def _shown_labels(labels: np.ndarray, model: LoadedModel) -> np.ndarray:
    """The graph's labels as callers see them: a text target's class names (``classes`` are the
    graph's codes, in ascending order, so each label's position is found by bisection)."""
    signature = model.version.signature
    if signature.class_names is None or signature.classes is None or not len(labels):
        return labels
    positions = np.searchsorted(np.asarray(signature.classes), labels[:, 0])
    return np.asarray(signature.class_names, dtype=object)[positions].reshape(-1, 1)


def score_object(model: LoadedModel, data: bytes, fmt: InputFormat) -> ScoredObject:
    return score_rows(model, parse_rows(data, model.version.signature, fmt))
