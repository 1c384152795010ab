"""Input objects of a batch job -> the model's input matrix, with every bad row named by line.

Pure logic (numpy only). CSV is read in bulk. A clean object (only bytes numbers are made
of, every line with the header's field count: what ``np.loadtxt`` checks itself) is parsed
in one ``np.loadtxt`` call, numpy's C reader, after one ``bytes.translate`` over it. When
that finds anything to look at, the object takes the checked path: each line's field count
and characters are checked with vectorized byte operations, the good lines are parsed in one
``np.loadtxt`` call, and only the lines that fail a check are looked at one by one, to say
exactly what is wrong with them. Both paths give the same rows (a test compares them).
JSON Lines are read line by line.

Rules (the same as the real-time API's, so a row scores in batch exactly when the predict
route would take it):

- CSV: the first line is a header when any of its fields is not a number; it must then name
  every feature of the model's signature (in any order; other columns are ignored). Without
  one, a line's fields are the features in signature order.
- JSON Lines: each line is an object of features (other keys are ignored: ids may ride along)
  or an array in signature order.
- Every feature value is a finite number within the model's input type; integer features
  take whole numbers, boolean features 0 or 1 (``true``/``false`` in JSON). A feature the
  signature marks ``nullable`` may be missing: in CSV a cell training reads as missing (empty,
  ``NA``, ``nan``, ``null``, ``none``: ``MISSING_CELLS``), ``null`` in JSON; it is NaN in the
  matrix, as in real time.
- A ``category`` feature takes one of its signature's categories, exactly as written (in
  CSV, the cell stripped of surrounding blanks). A CSV for such a model is read with the
  ``csv`` module row by row (text is not what the bulk readers take): its first line is a
  header when it names any of the features, and must then name them all.
- Blank lines are skipped. Line numbers are the file's own (1-based; the header is line 1).
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mlops_core.data.types import MISSING_CELLS, shown_categories
from mlops_core.registry.signature import FeatureSpec, ModelSignature

InputFormat = Literal["csv", "jsonl", "parquet"]
_NEWLINE, _COMMA = 10, 44


@dataclass(frozen=True)
class BadRow:
    line: int
    reason: str


@dataclass
class ParsedRows:
    """The rows that can be scored (``matrix``, signature order) and their line numbers;
    every other row with the reason it cannot be."""

    matrix: np.ndarray
    lines: np.ndarray
    bad: list[BadRow] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.lines) + len(self.bad)


class UnreadableObject(Exception):
    """The object as a whole cannot be read as the format says (not UTF-8, a header that
    lacks features...). The job names it among its failed objects."""


def input_format(key: str) -> InputFormat:
    """The format an object's key says: ``.parquet`` (``.parq``, ``.pq``), ``.jsonl`` /
    ``.ndjson``, or CSV (anything else)."""
    lowered = key.lower()
    if lowered.endswith((".parquet", ".parq", ".pq")):
        return "parquet"
    return "jsonl" if lowered.endswith((".jsonl", ".ndjson", ".jsonl.gz")) else "csv"


def parse_rows(data: bytes, signature: ModelSignature, fmt: InputFormat) -> ParsedRows:
    if fmt == "parquet":
        from mlops_core.batch.parquet import parse_parquet  # its reader lives in the parquet layer

        return parse_parquet(data, signature)
    if fmt == "jsonl":
        return parse_jsonl(data, signature)
    return parse_csv(data, signature)


def _dtype(signature: ModelSignature) -> type[np.floating[Any]]:
    return np.float32 if signature.input_dtype == "float32" else np.float64


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_header(first: bytes, signature: ModelSignature) -> tuple[list[int] | None, int]:
    """(column index of each feature, or None when there is no header; the field count)."""
    try:
        fields = first.decode("utf-8").split(",")
    except UnicodeDecodeError:
        raise UnreadableObject("the first line is not UTF-8 text") from None
    if all(_is_number(f) for f in fields):
        return None, len(fields)
    names = [f.strip().strip('"') for f in fields]
    missing = [n for n in signature.feature_names if n not in names]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UnreadableObject(
            f"the header lacks {len(missing)} of the model's features ({shown}); a CSV's first "
            "line names the columns, or every line holds the features in signature order"
        )
    return [names.index(n) for n in signature.feature_names], len(names)


def _allowed(buffer: np.ndarray) -> np.ndarray:
    """Bytes a CSV number may contain (digits, sign, point, exponent, blanks) or separators."""
    allowed: np.ndarray = np.subtract(buffer, 48, dtype=np.uint8) < 10
    for byte in b"+-.eE \t,\n":
        allowed |= buffer == byte
    return allowed


def parse_csv(data: bytes, signature: ModelSignature) -> ParsedRows:
    if any(spec.type == "category" for spec in signature.features):
        return _parse_with_categories(data, signature)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if data and not data.endswith(b"\n"):
        data += b"\n"
    dtype = _dtype(signature)
    width = len(signature.features)
    if not data:
        return ParsedRows(np.empty((0, width), dtype=dtype), np.empty(0, dtype=np.int64))
    first_end = data.index(b"\n")
    columns, n_fields = _csv_header(data[:first_end], signature)
    if columns is None and n_fields != width:
        raise UnreadableObject(
            f"the first line has {n_fields} fields and no header; the model takes {width} features"
        )
    body_start = first_end + 1 if columns is not None else 0
    clean = _load_clean(data[body_start:], n_fields)
    used = columns if columns is not None else list(range(n_fields))
    bad: list[BadRow] = []
    if clean is not None:
        first_line = 2 if columns is not None else 1
        lines = np.arange(first_line, first_line + len(clean), dtype=np.int64)
        matrix = _cast(clean if used == list(range(n_fields)) else clean[:, used], dtype)
    else:
        # Used positions whose feature may be missing (an empty field there is not a fault).
        nullable = {used[i] for i, spec in enumerate(signature.features) if spec.nullable}
        matrix, lines, bad = _parse_checked(
            data, columns is not None, n_fields, used, dtype, nullable=nullable
        )
    return _checked(matrix, lines, bad, signature)


#: The bytes a line of CSV numbers may hold: digits, sign, point, exponent, blanks, separators.
_NUMBER_BYTES = b"0123456789+-.eE \t,\n"


def _load_clean(body: bytes, n_fields: int) -> np.ndarray | None:
    """Every line of ``body`` parsed in one ``np.loadtxt`` call (float64), or None when a line
    needs looking at: a byte no number has, or numpy refusing a field or a field count.

    The fast path of a clean object: one C pass over the bytes (``bytes.translate``) and the
    C reader. ``np.loadtxt`` refuses empty and blank-only fields, malformed numbers and a line
    whose field count differs from the first's; it skips blank lines, so a row count short of
    the line count sends the object to the line-by-line path too (line numbers would shift).
    """
    if not body or body.translate(None, _NUMBER_BYTES):
        return None
    values = _loadtxt(body)
    if values is None or values.shape != (body.count(b"\n"), n_fields):
        return None
    return values


def _loadtxt(body: bytes, usecols: list[int] | None = None) -> np.ndarray | None:
    try:
        # float64, correctly rounded (like Python's float); cast afterwards, the way the
        # real-time path turns a JSON number into the model's input type.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data"
            values: np.ndarray = np.loadtxt(
                io.BytesIO(body), delimiter=",", dtype=np.float64, ndmin=2, comments=None, usecols=usecols
            )
    except ValueError:
        return None
    return values


def _parse_checked(
    data: bytes, has_header: bool, n_fields: int, used: list[int], dtype: Any, *, nullable: set[int]
) -> tuple[np.ndarray, np.ndarray, list[BadRow]]:
    """The object's rows (the ``used`` columns, in that order) when some line is suspect: each
    line's field count, and any byte no number can contain or empty field in a used column,
    are checked by position (numpy), the good lines are parsed in one call, and only the
    suspect ones are looked at one by one to say what is wrong. Other columns (ids, the
    label) are only counted: a word there does not refuse the row."""
    buffer = np.frombuffer(data, dtype=np.uint8)
    separators = np.flatnonzero((buffer == _COMMA) | (buffer == _NEWLINE))
    is_newline = buffer[separators] == _NEWLINE
    newline_at = np.flatnonzero(is_newline)  # index in `separators` of each line's end
    ends = separators[newline_at]
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    commas = np.diff(np.concatenate(([-1], newline_at))) - 1
    # Where a used field may not be a number: a byte no number has, or an empty field (a
    # comma next to another separator, or first on its line). Both are rare: found by
    # position, each separator standing for the field it ends.
    line_of_separator = np.cumsum(is_newline) - is_newline
    first_separator = np.concatenate(([0], newline_at[:-1] + 1))
    is_used = np.zeros(n_fields + 1, dtype=bool)  # the last: past the field count (suspect anyway)
    is_used[used] = True

    def lines_of_used(ending: np.ndarray) -> np.ndarray:
        """The lines of the fields ended by these separators, where the field is a used one."""
        line = line_of_separator[ending]
        position = np.minimum(ending - first_separator[line], n_fields)
        kept: np.ndarray = line[is_used[position]]
        return kept

    adjacent = np.flatnonzero((np.diff(separators) == 1) & ~(is_newline[:-1] & is_newline[1:]))
    first_comma = np.flatnonzero((separators == starts[line_of_separator]) & ~is_newline)
    odd_bytes = np.flatnonzero(~_allowed(buffer))
    suspect_lines = [
        lines_of_used(adjacent + 1),
        lines_of_used(first_comma),
        lines_of_used(np.searchsorted(separators, odd_bytes)),
    ]
    suspect = commas != n_fields - 1
    suspect[np.concatenate(suspect_lines)] = True
    blank = ends == starts
    suspect &= ~blank

    first_row = 1 if has_header else 0
    numbers = np.arange(1, len(starts) + 1, dtype=np.int64)
    keep = ~suspect & ~blank
    keep[:first_row] = False
    suspect[:first_row] = False

    matrix = _load(data, starts[keep], ends[keep], used, dtype)
    lines = numbers[keep]
    bad: list[BadRow] = []
    if matrix is None:  # a line that looked numeric is not (1.2.3, 1e, --1): read one by one
        matrix, lines, bad = _one_by_one(
            data, starts[keep], ends[keep], numbers[keep], n_fields=n_fields, used=used, dtype=dtype
        )
    missing_rows: list[list[float]] = []
    missing_lines: list[int] = []
    for start, end, number in zip(starts[suspect], ends[suspect], numbers[suspect], strict=True):
        row = _with_missing(data[start:end], n_fields, used, nullable) if nullable else None
        if row is not None:  # suspect only for missing values where the model takes them
            missing_rows.append(row)
            missing_lines.append(int(number))
        else:
            bad.append(BadRow(int(number), _diagnose(data[start:end], n_fields, used, nullable)))
    if missing_rows:
        matrix = np.concatenate([matrix, _cast(np.asarray(missing_rows, dtype=np.float64), dtype)])
        lines = np.concatenate([lines, np.asarray(missing_lines, dtype=np.int64)])
        order = np.argsort(lines, kind="stable")
        matrix, lines = matrix[order], lines[order]
    return matrix, lines, bad


def _with_missing(line: bytes, n_fields: int, used: list[int], nullable: set[int]) -> list[float] | None:
    """A line's used values with NaN for missing ones in nullable fields, or None when the
    line has another fault (``_diagnose`` says which)."""
    fields = line.split(b",")
    if len(fields) != n_fields:
        return None
    row = []
    for i in used:
        text = fields[i].strip()
        if i in nullable and text.decode("ascii", "replace").lower() in MISSING_CELLS:
            row.append(math.nan)
            continue
        try:
            value = float(text)
        except ValueError:
            return None
        if not math.isfinite(value) and not (math.isnan(value) and i in nullable):
            return None
        row.append(value)
    return row


def _load(
    data: bytes, starts: np.ndarray, ends: np.ndarray, used: list[int], dtype: Any
) -> np.ndarray | None:
    """The lines' used columns parsed in one call, or None when one of them is not a number
    after all (the lines' field counts are already checked: ``usecols`` does not)."""
    if len(starts) == 0:
        return np.empty((0, len(used)), dtype=dtype)
    contiguous = len(starts) == 1 or bool(np.all(starts[1:] == ends[:-1] + 1))
    body = (
        data[starts[0] : ends[-1]]
        if contiguous
        else b"\n".join(data[s:e] for s, e in zip(starts, ends, strict=True))
    )
    values = _loadtxt(body, usecols=used)
    if values is None:
        return None
    if values.shape != (len(starts), len(used)):
        return None
    return _cast(values, dtype)


def _cast(values: np.ndarray, dtype: Any) -> np.ndarray:
    with np.errstate(over="ignore"):  # out-of-range values become inf, refused in _checked
        return values.astype(dtype)


def _one_by_one(
    data: bytes,
    starts: np.ndarray,
    ends: np.ndarray,
    numbers: np.ndarray,
    *,
    n_fields: int,
    used: list[int],
    dtype: Any,
) -> tuple[np.ndarray, np.ndarray, list[BadRow]]:
    rows: list[list[float]] = []
    kept: list[int] = []
    bad: list[BadRow] = []
    for start, end, number in zip(starts, ends, numbers, strict=True):
        fields = data[start:end].split(b",")
        try:
            rows.append([float(fields[i]) for i in used])
            kept.append(int(number))
        except ValueError:
            bad.append(BadRow(int(number), _diagnose(data[start:end], n_fields, used, set())))
    matrix = _cast(np.asarray(rows, dtype=np.float64).reshape(len(rows), len(used)), dtype)
    return matrix, np.asarray(kept, dtype=np.int64), bad


def _diagnose(line: bytes, n_fields: int, used: list[int], nullable: set[int]) -> str:
    """What is wrong with one CSV line, precisely (its used fields: the features; a missing
    value in a ``nullable`` one is not wrong)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "the line is not UTF-8 text"
    fields = text.split(",")
    if len(fields) != n_fields:
        return f"expected {n_fields} fields, got {len(fields)}"
    for position, value in ((i + 1, fields[i]) for i in sorted(used)):
        if position - 1 in nullable and value.strip().lower() in MISSING_CELLS:
            continue
        if not value.strip():
            return f"field {position} is empty"
        if not _is_number(value):
            return f"field {position} is not a number: {value[:40]!r}"
        if not math.isfinite(float(value)) and not (math.isnan(float(value)) and position - 1 in nullable):
            return f"field {position} is not a finite number: {value[:40]!r}"
    return "not a line of numbers"


def _not_a_category(spec: FeatureSpec, value: Any) -> str:
    if isinstance(value, str):
        return (
            f"'{spec.name}' must be one of the model's categories ({shown_categories(spec.categories)}), "
            f"got {value[:40]!r}"
        )
    kind = "null" if value is None else "bool" if isinstance(value, bool) else type(value).__name__
    return f"'{spec.name}' must be a string (a category), got {kind}"


def _parse_with_categories(data: bytes, signature: ModelSignature) -> ParsedRows:
    """A CSV for a model with category features, row by row with the ``csv`` module (quoted
    fields included): every used cell a category's code, a number, or a missing value where the
    feature takes one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnreadableObject("the object is not UTF-8 text") from None
    features = signature.features
    width = len(features)
    reader = csv.reader(io.StringIO(text))
    rows: list[list[float]] = []
    kept: list[int] = []
    bad: list[BadRow] = []
    used: list[int] = list(range(width))
    n_fields = width
    try:
        for row in reader:
            number = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if number == 1 and len(rows) == 0 and not bad:
                names = [field.strip() for field in row]
                if any(spec.name in names for spec in features):
                    missing = [spec.name for spec in features if spec.name not in names]
                    if missing:
                        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
                        raise UnreadableObject(
                            f"the header lacks {len(missing)} of the model's features ({shown}); a CSV's "
                            "first line names the columns, or every line holds the features in "
                            "signature order"
                        )
                    used, n_fields = [names.index(spec.name) for spec in features], len(names)
                    continue
                if len(row) != width:
                    raise UnreadableObject(
                        f"the first line has {len(row)} fields and no header; the model takes "
                        f"{width} features"
                    )
            if len(row) != n_fields:
                bad.append(BadRow(number, f"expected {n_fields} fields, got {len(row)}"))
                continue
            values, reason = _category_row(row, used, features)
            if reason is not None:
                bad.append(BadRow(number, reason))
            else:
                rows.append(values)
                kept.append(number)
    except csv.Error as error:
        raise UnreadableObject(f"not a CSV file: {error}") from None
    matrix = _cast(np.asarray(rows, dtype=np.float64).reshape(len(rows), width), _dtype(signature))
    return _checked(matrix, np.asarray(kept, dtype=np.int64), bad, signature)


def _category_row(
    row: list[str], used: list[int], features: Sequence[FeatureSpec]
) -> tuple[list[float], str | None]:
    values: list[float] = []
    for position, spec in zip(used, features, strict=True):
        cell = row[position].strip()
        if spec.nullable and cell.lower() in MISSING_CELLS:
            values.append(math.nan)
        elif spec.type == "category":
            code = spec.code_of(cell)
            if code is None:
                return [], f"field {position + 1}: {_not_a_category(spec, cell)}"
            values.append(float(code))
        else:
            try:
                value = float(cell)
            except ValueError:
                return [], f"field {position + 1} is not a number: {cell[:40]!r}"
            if not math.isfinite(value):
                return [], f"field {position + 1} is not a finite number: {cell[:40]!r}"
            values.append(value)
    return values, None


def _checked(
    matrix: np.ndarray, lines: np.ndarray, bad: list[BadRow], signature: ModelSignature
) -> ParsedRows:
    """Refuse rows the real-time path refuses too: non-finite values (out of the input type's
    range once cast), non-integers for integer features, booleans other than 0 and 1."""
    problems = np.zeros(len(matrix), dtype=bool)
    reasons: dict[int, str] = {}

    def refuse(mask: np.ndarray, reason: str) -> None:
        for i in np.flatnonzero(mask & ~problems):
            reasons[int(i)] = reason
        problems[mask] = True

    missing = np.isnan(matrix) & np.array([spec.nullable for spec in signature.features], dtype=bool)
    refuse(~(np.isfinite(matrix) | missing).all(axis=1), "a value is out of range for the model's input type")
    for column, spec in enumerate(signature.features):
        values = matrix[:, column]
        present = ~missing[:, column]
        if spec.type == "integer":
            refuse(present & (values != np.round(values)), f"'{spec.name}' must be an integer")
        elif spec.type == "boolean":
            refuse(present & (values != 0) & (values != 1), f"'{spec.name}' must be 0 or 1")
    if reasons:
        bad = bad + [BadRow(int(lines[i]), reason) for i, reason in reasons.items()]
        matrix, lines = matrix[~problems], lines[~problems]
    bad.sort(key=lambda row: row.line)
    return ParsedRows(matrix=matrix, lines=lines, bad=bad)


def parse_jsonl(data: bytes, signature: ModelSignature) -> ParsedRows:
    names = signature.feature_names
    width = len(names)
    rows: list[Sequence[Any]] = []
    kept: list[int] = []
    bad: list[BadRow] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            bad.append(BadRow(number, f"not JSON: {str(error)[:80]}"))
            continue
        reason, row = _json_row(value, names, signature)
        if reason is not None:
            bad.append(BadRow(number, reason))
            continue
        rows.append(row)
        kept.append(number)
    dtype = _dtype(signature)
    matrix = _cast(np.asarray(rows, dtype=np.float64).reshape(len(rows), width), dtype)
    return _checked(matrix, np.asarray(kept, dtype=np.int64), bad, signature)


def _json_row(value: Any, names: list[str], signature: ModelSignature) -> tuple[str | None, list[float]]:
    if isinstance(value, dict):
        missing = [n for n in names if n not in value]
        if missing:
            return f"missing feature '{missing[0]}'" + (
                f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            ), []
        values = [value[n] for n in names]
    elif isinstance(value, list):
        if len(value) != len(names):
            return f"expected {len(names)} features, got {len(value)}", []
        values = value
    else:
        return "a line is an object of features or an array of values", []
    row = []
    for spec, item in zip(signature.features, values, strict=True):
        number, reason = _json_value(spec, item)
        if reason is not None:
            return reason, []
        row.append(number)
    return None, row


def _json_value(spec: FeatureSpec, item: Any) -> tuple[float, str | None]:
    """One JSON value as the matrix holds it, or the reason it cannot be there."""
    if item is None and spec.nullable:  # missing, as the predict route takes it
        return math.nan, None
    if spec.type == "category":
        code = spec.code_of(item) if isinstance(item, str) else None
        return (math.nan, _not_a_category(spec, item)) if code is None else (float(code), None)
    if isinstance(item, bool):
        if spec.type != "boolean":
            return math.nan, f"'{spec.name}' must be a number, got bool"
        return float(item), None
    if isinstance(item, int | float) and math.isfinite(item):
        return float(item), None
    kind = "string" if isinstance(item, str) else type(item).__name__
    return math.nan, f"'{spec.name}' must be a finite number, got {kind}"
