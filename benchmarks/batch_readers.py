"""Reading the batch benchmark's CSV objects: ``np.loadtxt`` (what ``mlops_core.batch.rows``
runs on a clean object) against the other ways of turning the same bytes into the same
float64 matrix, to see whether reading, now most of the linear model's batch time, has a
cheaper path.

Same objects as ``benchmarks/batch.py`` (20 x 10,000 rows of 10 features, 6 significant
digits), each variant's body after the header:

- ``np.loadtxt`` from a ``BytesIO`` (ours), from a ``StringIO`` of the decoded text, from a
  list of lines; with ``dtype=float32`` directly;
- ``np.fromstring(sep=",")`` after one ``bytes.translate`` of newlines into commas;
- Python's ``float`` over the split fields (``map``), into an array;
- pandas ``read_csv`` (C engine, ``float_precision="round_trip"``: correctly rounded, as ours);
- a vectorized numpy parser: every field's digits summed into an integer mantissa and
  divided by a power of ten (Clinger's exact fast path: mantissa below 2**53, power <= 22).

Every variant is checked to give ``np.loadtxt``'s values (float32: the cast of them). CPU
time (``time.process_time``), the fastest of ``--repeats`` passes over all objects, and the
ratio to ``np.loadtxt``'s in the same run. Nothing is written to the docs: docs/benchmarks.md
quotes a run with its command and load.

    .venv/bin/python benchmarks/batch_readers.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable

from _common import ensure_import_paths, text_table

ensure_import_paths()

import numpy as np  # noqa: E402
from batch import _data, _objects  # noqa: E402

_POWERS = np.array([10.0**k for k in range(23)])


def _loadtxt(source: object, dtype: type = np.float64) -> np.ndarray:
    values: np.ndarray = np.loadtxt(source, delimiter=",", dtype=dtype, ndmin=2, comments=None)
    return values


def vectorized(body: bytes, n_fields: int) -> np.ndarray | None:
    """The body's numbers (``-``, digits, at most one point; nothing else), or None when a
    field is not of that form or needs more than 15 digits."""
    buffer = np.frombuffer(body, dtype=np.uint8)
    separators = np.flatnonzero((buffer == 44) | (buffer == 10))
    count = len(separators)
    is_newline = buffer[separators] == 10
    if (
        count % n_fields
        or is_newline.reshape(-1, n_fields)[:, :-1].any()
        or not is_newline[n_fields - 1 :: n_fields].all()
    ):
        return None
    starts = np.concatenate(([0], separators[:-1] + 1))
    negative = buffer[starts] == 45
    digit = (buffer - np.uint8(48)) < 10
    digits_before = np.cumsum(digit, dtype=np.int32)
    at_end = digits_before[separators]
    digits = at_end - np.where(starts > 0, digits_before[starts - 1], 0)
    points = np.flatnonzero(buffer == 46)
    field_of_point = np.searchsorted(separators, points)
    has_point = np.zeros(count, dtype=bool)
    has_point[field_of_point] = True
    if len(points) != has_point.sum() or not np.array_equal(
        separators - starts, digits + negative + has_point
    ):
        return None
    if (digits < 1).any() or (digits > 15).any():
        return None
    decimals = np.zeros(count, dtype=np.int64)
    decimals[field_of_point] = separators[field_of_point] - points - 1
    positions = np.flatnonzero(digit)
    place = (np.repeat(at_end, digits) - digits_before[positions]).astype(np.int64)
    mantissa = np.add.reduceat(
        (buffer[positions] - 48) * _POWERS[place], np.concatenate(([0], np.cumsum(digits)[:-1]))
    )
    values = mantissa / _POWERS[decimals]
    values[negative] = -values[negative]
    return values.reshape(-1, n_fields)


def variants(n_fields: int) -> dict[str, Callable[[bytes], np.ndarray | None]]:
    import pandas as pd

    newline_to_comma = bytes.maketrans(b"\n", b",")
    return {
        "np.loadtxt (BytesIO: ours)": lambda body: _loadtxt(io.BytesIO(body)),
        "np.loadtxt (StringIO)": lambda body: _loadtxt(io.StringIO(body.decode("ascii"))),
        "np.loadtxt (list of lines)": lambda body: _loadtxt(body.decode("ascii").splitlines()),
        "np.loadtxt (dtype float32)": lambda body: _loadtxt(io.BytesIO(body), np.float32),
        "np.fromstring(sep=',')": lambda body: np.fromstring(
            body.translate(newline_to_comma), dtype=np.float64, sep=","
        ).reshape(-1, n_fields),
        "float() over split fields": lambda body: np.array(
            list(map(float, body.translate(newline_to_comma).split(b",")[:-1]))
        ).reshape(-1, n_fields),
        "pandas read_csv (round_trip)": lambda body: pd.read_csv(
            io.BytesIO(body), header=None, dtype=np.float64, float_precision="round_trip"
        ).to_numpy(),
        "vectorized numpy parser": lambda body: vectorized(body, n_fields),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20_261_201)
    args = parser.parse_args()
    x, _, names = _data()
    bodies = [data[data.index(b"\n") + 1 :] for data in _objects(x, names, 200_000, 20, args.seed)]
    expected = [_loadtxt(io.BytesIO(body)) for body in bodies]
    rows, base = [], None
    for name, read in variants(len(names)).items():
        for body, values in zip(bodies, expected, strict=True):
            got = read(body)
            want = values.astype(np.float32) if got is not None and got.dtype == np.float32 else values
            if got is None or not np.array_equal(got, want):
                print(f"{name} does not give np.loadtxt's values", file=sys.stderr)
                return 1
        times = []
        for _ in range(args.repeats):
            start = time.process_time()
            for body in bodies:
                read(body)
            times.append(time.process_time() - start)
        seconds = min(times)
        base = base or seconds
        rows.append([name, f"{seconds:.3f}", f"{seconds / base:.2f}x"])
    print(text_table(["reader (200,000 rows x 10)", "CPU s", "vs np.loadtxt"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
