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
import itertools
import json
from dataclasses import dataclass, field

import numpy as np

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
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(output_header(model))
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
        out.write(_format(lines, _shown_labels(labels, model), scores, version))
        scored += len(lines)
    bad.sort(key=lambda row: row.line)
    errors = "".join(json.dumps({"line": row.line, "reason": row.reason}) + "\n" for row in bad)
    return ScoredObject(
        predictions=out.getvalue().encode(),
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


def _format(lines: np.ndarray, labels: np.ndarray, scores: np.ndarray | None, version: int) -> str:
    """Rows of the output CSV, formatted in one ``%`` operation per chunk (C speed)."""
    n = len(lines)
    if n == 0:
        return ""
    label_column = labels[:, 0]  # one label per row (the signature's label output)
    if label_column.dtype.kind in "iub":
        label_format, label_values = "%d", label_column.tolist()
    elif label_column.dtype.kind == "f":
        label_format, label_values = "%.9g", label_column.astype(np.float64).tolist()
    else:
        label_format, label_values = "%s", [_csv_text(str(v)) for v in label_column.tolist()]
    columns: list[list[object]] = [lines.tolist(), label_values]
    width = 0
    if scores is not None:
        scores = scores.reshape(n, -1)
        width = scores.shape[1]
        columns.extend(scores[:, j].tolist() for j in range(width))
    row_format = "%d," + label_format + ",%.9g" * width + f",{version}\n"
    flat = tuple(itertools.chain.from_iterable(zip(*columns, strict=True)))
    return (row_format * n) % flat


def _csv_text(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
