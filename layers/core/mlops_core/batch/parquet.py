"""Parquet input objects of a batch job -> the model's input matrix, with every bad row named.

Read with arro3-io (arrow-rs's Parquet reader, ``read_parquet``: 33 MiB in the ``parquet``
layer, which only the batch scoring function carries; docs/batch.md says why not pyarrow).
The feature columns are taken by name (others, such as ids, are ignored); rows are numbered
from 1 (Parquet has no header line). The same rules as CSV and the real-time API:

- a feature column must hold numbers (floating point, integers or booleans), and a
  ``category`` feature's column text (plain or dictionary-encoded strings), each value one of
  the signature's categories (its code goes to the graph, as in real time): a column of
  another type makes the object unreadable, named in the job's failed objects;
- a null in a feature the signature marks ``nullable`` is a missing value (NaN, as in real
  time); in another feature it refuses its row;
- values out of the input type's range, non-integers for integer features and booleans
  other than 0 and 1 refuse their rows (``rows._checked``, shared with CSV and JSON Lines).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlops_core.batch.rows import (
    BadRow,
    ParsedRows,
    UnreadableObject,
    _cast,
    _checked,
    _dtype,
    _not_a_category,
)
from mlops_core.registry.signature import FeatureSpec, ModelSignature

if TYPE_CHECKING:
    from arro3.core import ChunkedArray, Table

#: Rows per record batch read (arrow-rs reads 1,024 by default; fewer, larger batches).
_BATCH_ROWS = 65_536


def _table(data: bytes) -> Table:
    try:
        from arro3.io import read_parquet
    except ImportError:  # a function without the parquet layer
        raise UnreadableObject("Parquet is not read here: the parquet layer is missing") from None
    try:
        return read_parquet(data, batch_size=_BATCH_ROWS).read_all()
    except BaseException as error:
        # arrow-rs's errors reach Python as pyo3's PanicException, a BaseException: a corrupt
        # object must fail its item, not the function.
        if isinstance(error, KeyboardInterrupt | SystemExit):
            raise
        raise UnreadableObject(f"not a readable Parquet file ({str(error)[:160]})") from None


def _type_name(kind: object) -> str:
    return str(kind).split("<")[-1].split(">")[0]  # arro3.core.DataType<Utf8> -> Utf8


def parse_parquet(data: bytes, signature: ModelSignature) -> ParsedRows:
    table = _table(data)
    names = table.column_names
    missing = [n for n in signature.feature_names if n not in names]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UnreadableObject(f"the Parquet columns lack {len(missing)} of the model's features ({shown})")
    n = table.num_rows
    matrix = np.empty((n, len(signature.features)), dtype=np.float64)
    refused: dict[int, str] = {}  # row (0-based) -> the first reason it cannot be scored
    for position, spec in enumerate(signature.features):
        column = table.column(spec.name)
        read = _categories if spec.type == "category" else _numbers
        matrix[:, position] = read(spec, column, refused)
    lines = np.arange(1, n + 1, dtype=np.int64)
    bad = [BadRow(row + 1, reason) for row, reason in refused.items()]
    if refused:
        keep = np.ones(n, dtype=bool)
        keep[list(refused)] = False
        matrix, lines = matrix[keep], lines[keep]
    return _checked(_cast(matrix, _dtype(signature)), lines, bad, signature)


def _numbers(spec: FeatureSpec, column: ChunkedArray, refused: dict[int, str]) -> np.ndarray:
    """A numeric feature's column as float64, NaN where null (a null refuses its row unless
    the feature is nullable)."""
    from arro3.core import DataType

    kind = column.type
    if not (DataType.is_floating(kind) or DataType.is_integer(kind) or DataType.is_boolean(kind)):
        raise UnreadableObject(f"column '{spec.name}' holds {_type_name(kind)}, not numbers")
    if not column.null_count:
        values: np.ndarray = column.to_numpy()
        return values
    items = column.to_pylist()  # rare: the values one by one, None where null
    if not spec.nullable:
        for row, item in enumerate(items):
            if item is None:
                refused.setdefault(row, f"'{spec.name}' is null")
    return np.array([np.nan if item is None else float(item) for item in items], dtype=np.float64)


def _categories(spec: FeatureSpec, column: ChunkedArray, refused: dict[int, str]) -> np.ndarray:
    """A category feature's column of names as their codes (what the graph takes, as in real
    time); a name that is not a category refuses its row, and so does a null unless nullable."""
    from arro3.core import DataType

    kind = column.type
    text_types = (
        DataType.is_string,
        DataType.is_large_string,
        DataType.is_string_view,
        DataType.is_dictionary,
    )
    if not any(is_text(kind) for is_text in text_types):
        raise UnreadableObject(f"column '{spec.name}' holds {_type_name(kind)}, not text (categories)")
    codes = np.full(len(column), np.nan)
    for row, item in enumerate(column.to_pylist()):  # one by one: each name to its code
        code = spec.code_of(item) if isinstance(item, str) else None
        if code is not None:
            codes[row] = code
        elif item is not None or not spec.nullable:
            refused.setdefault(row, f"'{spec.name}' is null" if item is None else _not_a_category(spec, item))
    return codes
