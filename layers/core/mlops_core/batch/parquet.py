"""Parquet input objects of a batch job -> the model's input matrix, with every bad row named.

Read with arro3-io (arrow-rs's Parquet reader, ``read_parquet``: 33 MiB in the ``parquet``
layer, which only the batch scoring function carries; docs/batch.md says why not pyarrow).
The feature columns are taken by name (others, such as ids, are ignored); rows are numbered
from 1 (Parquet has no header line). The same rules as CSV and the real-time API:

- a feature column must hold numbers (floating point, integers or booleans): a column of
  text or of another type makes the object unreadable, named in the job's failed objects;
- a null in a feature the signature marks ``nullable`` is a missing value (NaN, as in real
  time); in another feature it refuses its row;
- values out of the input type's range, non-integers for integer features and booleans
  other than 0 and 1 refuse their rows (``rows._checked``, shared with CSV and JSON Lines).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mlops_core.batch.rows import BadRow, ParsedRows, UnreadableObject, _cast, _checked, _dtype
from mlops_core.registry.signature import ModelSignature

if TYPE_CHECKING:
    from arro3.core import Table

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


def parse_parquet(data: bytes, signature: ModelSignature) -> ParsedRows:
    from arro3.core import DataType

    table = _table(data)
    names = table.column_names
    missing = [n for n in signature.feature_names if n not in names]
    if missing:
        shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise UnreadableObject(f"the Parquet columns lack {len(missing)} of the model's features ({shown})")
    n = table.num_rows
    matrix = np.empty((n, len(signature.features)), dtype=np.float64)
    refused: dict[int, str] = {}
    for position, spec in enumerate(signature.features):
        column = table.column(spec.name)
        kind = column.type
        if not (DataType.is_floating(kind) or DataType.is_integer(kind) or DataType.is_boolean(kind)):
            raise UnreadableObject(
                f"column '{spec.name}' holds {str(kind).split('<')[-1].split('>')[0]}, not numbers"
            )
        if column.null_count:  # rare: the values one by one, None where null
            values = column.to_pylist()
            nulls = np.fromiter((v is None for v in values), bool, n)
            matrix[:, position] = [np.nan if v is None else float(v) for v in values]
            if not spec.nullable:
                for row in np.flatnonzero(nulls):
                    refused.setdefault(int(row), f"'{spec.name}' is null")
        else:
            matrix[:, position] = column.to_numpy()
    lines = np.arange(1, n + 1, dtype=np.int64)
    bad = [BadRow(int(row) + 1, reason) for row, reason in refused.items()]
    if refused:
        keep = np.ones(n, dtype=bool)
        keep[list(refused)] = False
        matrix, lines = matrix[keep], lines[keep]
    return _checked(_cast(matrix, _dtype(signature)), lines, bad, signature)
