"""The predictions CSV formatted with numpy (``mlops_core.batch.csv_output``) against Python's
``%`` formatting, the reference it replaces: byte for byte, whatever the rows hold —
probabilities of 0, 1, subnormal and tiny values, values on both sides of every power of ten
and of the fixed/scientific switch, exact ties at the 9th digit, negative zero, regression
floats of any sign and size, integer labels across int64 (and uint64, booleans), string
classes with commas, quotes and non-ASCII text, line numbers of any width."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_core.batch.csv_output import NUMPY_FROM_ROWS, float_field, format_rows, join_rows, numpy_rows
from mlops_core.batch.csv_output import percent_rows as reference


def formatted(values: list[float]) -> bytes:
    return join_rows([float_field(np.asarray(values, dtype=np.float64))], len(values))


def percent(values: list[float]) -> bytes:
    return "".join("%.9g" % v for v in values).encode()  # noqa: UP031 - the reference


# Values where %.9g changes shape or rounding is close: powers of ten and their neighbours,
# the fixed/scientific switch (1e-5, 1e9), 9-digit carries (9.99999999..), exact ties.
EDGES = [
    *(s * m * 10.0**e for e in range(-12, 20) for m in (1.0, 0.99999999995, 0.999999999, 1.0000000005)
      for s in (1, -1)),
    0.0, -0.0, 1.0, 0.5, 1.001953125, 1.0009765625, 2.5e-5, 9.9999999949e-5, 9.99999995e-5, 999999999.5,
    999999998.5, 123456789.0, 1234567890.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
    1e-299, 1e-300, 1e299, 1e300, float(np.float32(1e-45)), float(np.float32(3.4028235e38)),
]  # fmt: skip


def near_ties() -> list[float]:
    """Doubles next to a half-way point of the 9th digit (``k.5 * 10**e``), where float
    arithmetic may round the wrong way: the nearest double and 4 on each side of it."""
    rng = np.random.default_rng(3)
    values = []
    for k, e in zip(rng.integers(10**8, 10**9, 200), rng.integers(-30, 30, 200), strict=True):
        tie = float(Fraction(2 * int(k) + 1, 2) * Fraction(10) ** int(e - 8))
        values.append(tie)
        up = down = tie
        for _ in range(4):
            up, down = float(np.nextafter(up, np.inf)), float(np.nextafter(down, -np.inf))
            values.extend([up, down])
    return values


def test_edge_values_are_written_as_percent_writes_them() -> None:
    assert formatted(EDGES) == percent(EDGES)


def test_values_next_to_a_tie_are_rounded_as_percent_rounds_them() -> None:
    values = near_ties()
    assert formatted(values) == percent(values)


def test_infinities_and_nan_are_written_as_percent_writes_them() -> None:
    values = [1.5, float("inf"), -float("inf"), float("nan"), 1e-7]
    assert formatted(values) == percent(values)


float32s = st.floats(width=32, allow_nan=False, allow_infinity=False).map(float)
probabilities = st.one_of(
    st.floats(0, 1, width=32).map(float),
    st.floats(0, float(np.float32(1e-4)), width=32).map(float),  # the losing class of a confident model
    st.floats(float(np.float32(0.9999)), 1, width=32).map(float),
    st.sampled_from([0.0, 1.0, float(np.float32(1e-45)), float(np.float32(1.0 - 2**-24))]),
)
any_float = st.one_of(float32s, st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(EDGES))


@settings(max_examples=300, deadline=None)
@given(st.lists(any_float, min_size=1, max_size=64))
def test_floats_are_written_as_percent_writes_them(values: list[float]) -> None:
    assert formatted(values) == percent(values)


@st.composite
def chunks(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """A chunk of rows: increasing line numbers, labels of one of the signature's kinds, and
    probabilities (one column per class, none for a regressor)."""
    n = draw(st.integers(1, 40))
    first = draw(st.sampled_from([1, 2, 9_998, 99_999_999, 10**12]))
    lines = first + np.cumsum(draw(st.lists(st.integers(1, 3), min_size=n, max_size=n)))
    kind = draw(st.sampled_from(["int", "bool", "uint", "str", "regression"]))
    if kind == "regression":
        dtype = draw(st.sampled_from([np.float32, np.float64]))  # a regressor's output type
        values = float32s if dtype == np.float32 else any_float
        return lines, np.asarray(draw(st.lists(values, min_size=n, max_size=n)), dtype=dtype), None
    if kind == "str":
        classes = draw(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4, unique=True))
        classes = draw(st.sampled_from([classes, ["a,b", 'say "hi"', "é", "line\nbreak"]]))
    elif kind == "bool":
        classes = [False, True]
    else:
        low = 0 if kind == "uint" else -(2**63)
        classes = draw(st.lists(st.integers(low, 2**63 - 1), min_size=1, max_size=4, unique=True))
    picks = draw(st.lists(st.integers(0, len(classes) - 1), min_size=n, max_size=n))
    dtype = {"int": np.int64, "bool": bool, "uint": np.uint64, "str": object}[kind]
    labels = np.array([classes[i] for i in picks], dtype=dtype)
    scores = np.array(
        draw(
            st.lists(
                st.lists(probabilities, min_size=len(classes), max_size=len(classes)), min_size=n, max_size=n
            )
        )
    )
    return lines, labels, scores


@settings(max_examples=300, deadline=None)
@given(chunks(), st.integers(1, 10**6))
def test_rows_are_written_as_percent_wrote_them(
    chunk: tuple[np.ndarray, np.ndarray, np.ndarray | None], version: int
) -> None:
    lines, labels, scores = chunk
    assert numpy_rows(lines, labels, scores, version) == reference(lines, labels, scores, version)


def test_a_chunk_of_every_shape_at_once_is_written_as_percent_wrote_it() -> None:
    """Thousands of rows mixing every shape, more combinations than one mask table holds."""
    rng = np.random.default_rng(7)
    n = 20_000
    bits = rng.integers(0, 2**32, (n, 3), dtype=np.uint64).astype(np.uint32).view(np.float32)
    scores = np.where(np.isfinite(bits), bits, 0.5).astype(np.float64)
    scores[::7] = rng.random((len(scores[::7]), 3))
    lines = np.arange(2, n + 2) * 997
    labels = rng.integers(-(2**40), 2**40, n)
    assert format_rows(lines, labels, scores, 12) == reference(lines, labels, scores, 12)


def test_a_few_rows_take_percent_formatting_and_as_many_numpy_the_same_bytes() -> None:
    rng = np.random.default_rng(11)
    for n in (NUMPY_FROM_ROWS - 1, NUMPY_FROM_ROWS):
        lines, labels, scores = np.arange(2, n + 2), rng.integers(0, 3, n), rng.random((n, 3))
        assert format_rows(lines, labels, scores, 4) == numpy_rows(lines, labels, scores, 4)


def test_no_rows_write_nothing() -> None:
    empty = np.empty(0, dtype=np.int64)
    assert format_rows(empty, empty, None, 1) == numpy_rows(empty, empty, None, 1) == b""
