"""The rows of a batch job's predictions CSV, formatted with numpy and no Python loop per row.

A row is ``line,prediction,probability...,model_version``: byte for byte what Python's ``%``
formatting gives with ``%d`` for integers, ``%.9g`` for floats (probabilities, a regressor's
predictions) and a class's text quoted as CSV quotes it. ``%`` costs about 450 ns a row of two
probabilities. Here each field is made of *source bytes* per row (built four at a time as
little-endian uint32 words: its digits from a table of the 10,000 four-digit strings, its
constant bytes), a *layout* (the source byte behind each of its output columns) and a
*shape* per row (which of those columns the row uses: its length, sign, point, exponent).
The fields' words are laid side by side in one matrix, one fancy index turns it into the
rows' output columns, one gather from a table of the shapes present builds the mask of the
bytes each row uses, and one ``np.compress`` takes them, row after row, as the output.
That costs about 0.2 ms a call before its 170 ns a row, so a chunk of fewer than
``NUMPY_FROM_ROWS`` rows is formatted by ``%`` itself (``percent_rows``).

``%.9g`` of a float ``x`` is ``%.8e``'s 9 significant digits ``q`` (the integer nearest
``|x| * 10**(8 - d)``, ties to even on the exact binary value, ``d`` the decimal exponent
after that rounding), written as a fixed-point number when ``-4 <= d < 9`` and as
``d.dddddddde±XX`` otherwise, trailing zeros (and a bare point) dropped. ``q`` is found in
float64 arithmetic: ``|x|`` times ``10**(8 - d)`` (a correctly rounded power) is within
2.3e-7 of the exact product (two roundings of relative error 2**-53 each, of a number below
1e9), so its rounding to an integer is certain unless the product's fraction is within 1e-6
of one half. For those values (exact ties, such as 1.001953125, among them) and magnitudes
outside the power table (below 1e-299, above 1e299), ``q`` and ``d`` are read from Python's
``format(x, ".8e")`` one value at a time: rare, and exact by definition. A column holding an
infinity or NaN (the scoring step refuses such rows first) is formatted by Python outright.
``tests/unit/test_batch_csv_output_properties.py`` compares everything here with ``%``.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

_WORD = np.dtype("<u4")


def _words(data: bytes) -> np.ndarray:
    """Little-endian uint32 words of ``data`` (its length a multiple of 4)."""
    return np.frombuffer(data, dtype=_WORD)


def _word(data: bytes) -> int:
    return int(_words(data.ljust(4, b"\0"))[0])


#: The 4 ASCII digits of 0..9999 as one word each, and the trailing zeros of each.
_DIGITS4 = _words(b"".join(b"%04d" % i for i in range(10_000)))
_TRAILING_ZEROS4 = np.array([4 - len(f"{i:04d}".rstrip("0")) for i in range(10_000)], dtype=np.int64)


@dataclass
class Field:
    """One column of the output. ``words``: its source bytes, 4 per word (an array of one word
    per row, or one word for every row); ``layout``: the source byte of each output column;
    ``masks``: the output columns each shape uses; ``shape``: each row's (None: shape 0)."""

    words: list[np.ndarray | int]
    layout: np.ndarray
    masks: np.ndarray
    shape: np.ndarray | None = None


# ---------------------------------------------------------------- floats (%.9g)

#: ``10**s`` correctly rounded for ``s`` in ``[_POWER_MIN, _POWER_MAX]`` (Python's ``float``
#: of a decimal literal is the nearest double).
_POWER_MIN, _POWER_MAX = -300, 308
_POWERS = np.array([float(f"1e{s}") for s in range(_POWER_MIN, _POWER_MAX + 1)])
#: The magnitudes whose ``8 - d`` stays inside the power table.
_SMALLEST, _LARGEST = 1e-299, 1e299
#: How close to one half a product's fraction may come before the value is read from ``%``.
_TIE_MARGIN = 1e-6

# A float's source bytes (5 words): its first digit, ".0e", the next 4 digits, the last 4,
# "-+", the exponent's 3 digits.
_FIRST_WORD = _word(b"\0.0e")
_EXPONENT_WORDS = _words(b"".join(b"-+%03d\0\0\0" % e for e in range(1000))).reshape(1000, 2)
_EXPONENT_HIGH, _EXPONENT_LOW = _EXPONENT_WORDS[:, 0].copy(), _EXPONENT_WORDS[:, 1].copy()
_FIRST, _POINT, _ZERO, _E, _MINUS, _PLUS, _EXPONENT = 0, 1, 2, 3, 12, 13, 14
_DIGIT_SOURCE = [_FIRST, 4, 5, 6, 7, 8, 9, 10, 11]  # source byte of digit k
# Every shape of %.9g output is a subsequence of this layout: sign, "0.000" (numbers below 1),
# the 9 digits with a point after each of the first 8, "e", the exponent's sign (either one),
# its 3 digits.
_LAYOUT = np.array(
    [_MINUS, _ZERO, _POINT, _ZERO, _ZERO, _ZERO]
    + [source for k in range(8) for source in (_DIGIT_SOURCE[k], _POINT)]
    + [_DIGIT_SOURCE[8], _E, _MINUS, _PLUS, _EXPONENT, _EXPONENT + 1, _EXPONENT + 2]
)
_DIGIT_AT = [6 + 2 * k for k in range(9)]  # layout column of digit k
_POINT_AFTER = [7 + 2 * k for k in range(8)]  # layout column of the point after digit k


def _float_columns(kind: str, d: int, digits: int, negative: bool) -> list[int]:
    """The layout columns one shape of output uses: ``kind`` "fixed" (exponent ``d``),
    "scientific" (``d`` says the exponent's sign and whether it has 3 digits) or "zero";
    ``digits`` significant digits once trailing zeros are dropped."""
    sign = [0] if negative else []
    if kind == "zero":
        return [*sign, 1]
    if kind == "fixed" and d >= 0:
        whole = _DIGIT_AT[: d + 1]
        fraction = [_POINT_AFTER[d], *_DIGIT_AT[d + 1 : digits]] if digits > d + 1 else []
        return [*sign, *whole, *fraction]
    if kind == "fixed":
        return [*sign, 1, 2, *range(3, 3 + (-d - 1)), *_DIGIT_AT[:digits]]
    fraction = [_POINT_AFTER[0], *_DIGIT_AT[1:digits]] if digits > 1 else []
    exponent = [26, 27, 28] if abs(d) >= 100 else [27, 28]
    return [*sign, _DIGIT_AT[0], *fraction, 23, 24 if d < 0 else 25, *exponent]


def _float_masks() -> np.ndarray:
    """Each shape's layout columns, in ``_float_shape``'s order: fixed ``d`` -4..8, then
    scientific (exponent negative / positive, 2 / 3 digits), then zero; each by significant
    digits 1..9 and sign."""
    shapes: list[list[int]] = []
    for d in range(-4, 9):
        shapes.extend(_float_columns("fixed", d, n, neg) for n in range(1, 10) for neg in (False, True))
    for d in (-5, -100, 9, 100):
        shapes.extend(_float_columns("scientific", d, n, neg) for n in range(1, 10) for neg in (False, True))
    shapes.extend(_float_columns("zero", 0, 1, neg) for neg in (False, True))
    masks = np.zeros((len(shapes), len(_LAYOUT)), dtype=bool)
    for i, columns in enumerate(shapes):
        if columns != sorted(set(columns)):  # pragma: no cover - a wrong table fails at import
            raise AssertionError(f"not a subsequence of the layout: {columns}")
        masks[i, columns] = True
    return masks


_FLOAT_MASKS = _float_masks()
_SCIENTIFIC, _ZERO_SHAPE = 13 * 18, 13 * 18 + 4 * 18


def _float_shape(d: np.ndarray, digits: np.ndarray, negative: np.ndarray) -> np.ndarray:
    by_digits = (digits - 1) * 2 + negative
    fixed = (d >= -4) & (d < 9)
    exponent_kind = np.where(d < 0, 0, 2) + (np.abs(d) >= 100)
    shape: np.ndarray = np.where(fixed, (d + 4) * 18, _SCIENTIFIC + exponent_kind * 18) + by_digits
    return shape


def float_field(values: np.ndarray) -> Field:
    """``"%.9g" % v`` for each value (float64)."""
    x = np.asarray(values, dtype=np.float64)
    if not np.isfinite(x).all():
        return text_field(np.array([format(v, ".9g") for v in x.tolist()]), quote=False)
    magnitude = np.abs(x)
    negative = np.signbit(x).astype(np.int64)
    zero = magnitude == 0
    in_table = (magnitude >= _SMALLEST) & (magnitude <= _LARGEST)
    safe = np.where(in_table, magnitude, 1.0)  # the others are read from format() below
    d = np.floor(np.log10(safe)).astype(np.int64)
    product = safe * _POWERS[8 - d - _POWER_MIN]
    d += (product >= 1e9).astype(np.int64) - (product < 1e8)  # log10 is off by one near powers of 10
    product = safe * _POWERS[8 - d - _POWER_MIN]
    q = np.rint(product)
    certain = in_table & (np.abs(product - np.floor(product) - 0.5) >= _TIE_MARGIN) & (q >= 1e8) & (q <= 1e9)
    carry = q == 1e9  # 9.9999999996 -> 10.0000000: one more digit before the point
    q = np.where(carry, 1e8, np.where(certain, q, 1e8))  # whole numbers, below 2**30: exact
    d += carry
    for i in np.flatnonzero(~certain & ~zero):  # rare: near-ties and extremes, read from format()
        text = format(float(magnitude[i]), ".8e")
        q[i], d[i] = float(text[0] + text[2:10]), int(text[11:])
    # The digits in blocks: first (1), middle (4), low (4). Dividing whole numbers below 2**30
    # by 10**4 in float64 floors exactly (a remainder of 1 is 1e-4, far above the rounding).
    high = np.floor(q / 1e4)
    low = (q - high * 1e4).astype(np.intp)
    first = np.floor(high / 1e4)
    middle = (high - first * 1e4).astype(np.intp)
    trailing_zeros = _TRAILING_ZEROS4[low] + (low == 0) * _TRAILING_ZEROS4[middle]  # [0] is 4
    shape = _float_shape(d, 9 - trailing_zeros, negative)
    shape[zero] = _ZERO_SHAPE + negative[zero]
    exponent = np.abs(d)  # at most 324
    words: list[np.ndarray | int] = [
        (first + 48).astype(_WORD) | _FIRST_WORD,
        _DIGITS4[middle],
        _DIGITS4[low],
        _EXPONENT_HIGH[exponent],
        _EXPONENT_LOW[exponent],
    ]
    return Field(words, _LAYOUT, _FLOAT_MASKS, shape)


# ---------------------------------------------------------------- integers (%d), text, constants


def integer_field(values: np.ndarray) -> Field:
    """``"%d" % v`` for each value (signed or unsigned integers, booleans)."""
    v = np.asarray(values)
    n = len(v)
    if v.dtype.kind == "u":
        negative, magnitude = np.zeros(n, dtype=bool), v.astype(np.uint64)
    else:
        v = v.astype(np.int64)
        negative = v < 0
        # |v| without overflow at the type's minimum: -(v + 1) + 1.
        magnitude = np.where(negative, (-(v + 1)).astype(np.uint64) + np.uint64(1), v.astype(np.uint64))
    blocks = max(1, math.ceil(len(str(int(magnitude.max()))) / 4)) if n else 1
    width = 4 * blocks
    words: list[np.ndarray | int] = [ord("-")]
    rest = magnitude
    for _ in range(blocks):  # the last 4 digits first
        rest, block = np.divmod(rest, np.uint64(10_000))
        words.insert(1, _DIGITS4[block.astype(np.intp)])
    length = 1 + np.searchsorted(
        np.array([10**k for k in range(1, width)], dtype=np.uint64), magnitude, side="right"
    )
    # Shape: the length, plus width + 1 when negative; columns: the sign, then the digits.
    lengths = np.arange(width + 1)
    digits_used = np.arange(width) >= width - lengths[:, None]
    masks = np.concatenate(
        [
            np.concatenate([np.zeros((width + 1, 1), dtype=bool), digits_used], axis=1),
            np.concatenate([np.ones((width + 1, 1), dtype=bool), digits_used], axis=1),
        ]
    )
    layout = np.concatenate([[0], np.arange(4, 4 + width)])  # the sign's word, then the digits'
    return Field(words, layout, masks, length + (width + 1) * negative)


def text_field(values: np.ndarray, *, quote: bool = True) -> Field:
    """Each value's ``str`` in UTF-8 (quoted as CSV quotes it, with ``quote``): each distinct
    value encoded once (classes are few), then looked up."""
    values = np.asarray(values)
    if values.dtype.kind == "O":  # Python objects (onnxruntime's strings): numbered by a dict
        numbers: dict[object, int] = {}
        inverse = np.fromiter(
            (numbers.setdefault(v, len(numbers)) for v in values.tolist()), np.intp, len(values)
        )
        distinct = [str(v) for v in numbers]
    else:
        unique, inverse = np.unique(values.astype(str), return_inverse=True)
        distinct = unique.tolist()
    encoded = [(_csv_text(text) if quote else text).encode() for text in distinct]
    width = max(4, *(len(e) for e in encoded))
    width += -width % 4
    table = _words(b"".join(e.ljust(width, b"\0") for e in encoded)).reshape(len(encoded), width // 4)
    inverse = inverse.reshape(-1)
    masks = np.arange(width) < np.array([len(e) for e in encoded])[:, None]
    return Field([table[inverse, j] for j in range(width // 4)], np.arange(width), masks, inverse)


def constant_field(text: str) -> Field:
    data = text.encode()
    data += b"\0" * (-len(data) % 4)
    return Field(
        [int(w) for w in _words(data)],
        np.arange(len(text.encode())),
        np.ones((1, len(text.encode())), dtype=bool),
    )


def label_field(labels: np.ndarray) -> Field:
    """A prediction column as ``%`` wrote it: ``%d`` for integer (and boolean) labels,
    ``%.9g`` for a regressor's floats, the class's text for string classes."""
    kind = labels.dtype.kind
    if kind in "iub":
        return integer_field(labels)
    if kind == "f":
        return float_field(labels.astype(np.float64))
    return text_field(labels)


# ---------------------------------------------------------------- rows

#: The most combinations of shapes one mask table holds (fields beyond start another table).
_TABLE_ROWS = 4096


def join_rows(fields: list[Field], n: int) -> bytes:
    """The fields side by side, each row's used bytes taken row after row."""
    source = np.empty((n, sum(len(f.words) for f in fields)), dtype=_WORD)
    layouts: list[np.ndarray] = []
    groups: list[list[tuple[np.ndarray, np.ndarray | None]]] = []
    group: list[tuple[np.ndarray, np.ndarray | None]] = []
    start = 0
    for f in fields:
        for j, word in enumerate(f.words):
            source[:, start + j] = word
        # Only the columns some row uses (numbers below 1 use neither inner points nor an
        # exponent, say), and only the shapes present.
        code: np.ndarray | None = None
        if f.shape is None:
            present_masks = f.masks[:1]
        else:
            present = np.zeros(len(f.masks), dtype=bool)
            present[f.shape] = True
            present_masks, code = f.masks[present], (np.cumsum(present) - 1)[f.shape]
        columns = np.flatnonzero(present_masks.any(axis=0))
        layouts.append(f.layout[columns] + 4 * start)
        start += len(f.words)
        if group and math.prod([len(m) for m, _ in group]) * len(present_masks) > _TABLE_ROWS:
            groups.append(group)
            group = []
        group.append((present_masks[:, columns], code))
    groups.append(group)
    data = np.take(source.view(np.uint8), np.concatenate(layouts), axis=1)  # C order: compress reads it flat
    used = (
        np.concatenate([_group_mask(g, n) for g in groups], axis=1)
        if len(groups) > 1
        else _group_mask(groups[0], n)
    )
    return np.compress(used.reshape(-1), data.reshape(-1)).tobytes()


def _group_mask(group: list[tuple[np.ndarray, np.ndarray | None]], n: int) -> np.ndarray:
    """Each row's used columns of a group of fields: one table row per combination of the
    fields' present shapes, looked up by the row's combination (``code``: the row's shape
    among the field's present ones; None: the field has one shape)."""
    counts = [len(masks) for masks, _ in group]
    key: np.ndarray = np.zeros(n, dtype=np.intp)
    for (_, code), count in zip(group, counts, strict=True):
        if code is not None:
            key = key * count + code
    parts = []
    for i, (masks, _) in enumerate(group):
        shape = [1] * len(group) + [masks.shape[1]]
        shape[i] = counts[i]
        parts.append(np.broadcast_to(masks.reshape(shape), (*counts, masks.shape[1])))
    table = np.concatenate(parts, axis=-1).reshape(math.prod(counts), -1)
    used: np.ndarray = table[key]
    return used


#: Below this many rows, ``%`` formatting is the faster (the numpy path costs about 0.2 ms a
#: call, then about 170 ns a row against ``%``'s 400).
NUMPY_FROM_ROWS = 1024


def format_rows(lines: np.ndarray, labels: np.ndarray, scores: np.ndarray | None, version: int) -> bytes:
    """``line,prediction,score...,version`` lines, one per row (``labels``: one per row)."""
    if len(lines) < NUMPY_FROM_ROWS:
        return percent_rows(lines, labels, scores, version)
    return numpy_rows(lines, labels, scores, version)


def numpy_rows(lines: np.ndarray, labels: np.ndarray, scores: np.ndarray | None, version: int) -> bytes:
    """The rows, formatted with numpy (any number of them: ``format_rows`` picks)."""
    n = len(lines)
    if n == 0:
        return b""
    comma = constant_field(",")
    fields = [integer_field(np.asarray(lines)), comma, label_field(np.asarray(labels))]
    if scores is not None:
        for column in np.asarray(scores, dtype=np.float64).reshape(n, -1).T:
            fields.extend([comma, float_field(column)])
    fields.append(constant_field(f",{version}\n"))
    return join_rows(fields, n)


def percent_rows(lines: np.ndarray, labels: np.ndarray, scores: np.ndarray | None, version: int) -> bytes:
    """The rows, formatted by one ``%`` operation (``%d``, ``%.9g``, quoted text): what
    ``numpy_rows`` must equal, and the faster for a few rows."""
    kind = labels.dtype.kind
    if kind in "iub":
        label_format, label_values = "%d", labels.tolist()
    elif kind == "f":
        label_format, label_values = "%.9g", labels.astype(np.float64).tolist()
    else:
        label_format, label_values = "%s", [_csv_text(str(v)) for v in labels.tolist()]
    columns: list[list[object]] = [lines.tolist(), label_values]
    width = 0
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64).reshape(len(lines), -1)
        width = scores.shape[1]
        columns.extend(scores[:, j].tolist() for j in range(width))
    row_format = "%d," + label_format + ",%.9g" * width + f",{version}\n"
    flat = tuple(itertools.chain.from_iterable(zip(*columns, strict=True)))
    return ((row_format * len(lines)) % flat).encode()


def _csv_text(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text
