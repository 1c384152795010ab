"""Batch CSV rows against a line-by-line reference: the bulk fast path (one ``bytes.translate``
and one ``np.loadtxt`` over a clean object) and the checked path (per-line checks by position)
must refuse exactly the lines the reference refuses, and keep the others with the values
Python's ``float`` gives them, whatever the object mixes: quotes, blank lines, a final newline
or none, CRLF, a header or none, exponents, NaN and infinities, wrong field counts, words."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_core.batch import rows
from mlops_core.batch.rows import BadRow, parse_csv
from mlops_core.registry.signature import FeatureSpec, ModelSignature

NAMES = ["a", "b", "c"]
SIGNATURE = ModelSignature(features=[FeatureSpec(name=n) for n in NAMES], classes=[0, 1])
#: What the reference takes as a number: a decimal with an optional exponent, blanks around.
NUMBER = re.compile(r"[ \t]*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[ \t]*")

digits = st.text("0123456789", min_size=1, max_size=6)
numbers = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.builds(lambda i, f: f"{i}.{f}", digits, digits),
    st.builds(lambda f: f".{f}", digits),
    st.builds(lambda i: f"{i}.", digits),
    st.builds(
        lambda m, e_char, sign, e: f"{m}{e_char}{sign}{e}",
        digits,
        st.sampled_from("eE"),
        st.sampled_from(["", "+", "-"]),
        st.integers(0, 45),
    ),
    st.builds(lambda s, n: f"{s}{n}", st.sampled_from("+-"), digits),
)
not_numbers = st.sampled_from(
    ["", " ", "\t", "abc", "nan", "NaN", "inf", "-inf", "Infinity", '"1"', '"1.5"', "1.2.3", "1e",
     "--1", "+-1", "1-2", "e5", ".", "-", "1 2", "0x10", "1_000", "1,5", "\xe9"]
)  # fmt: skip
fields = st.one_of(
    numbers,
    numbers.map(lambda n: f" {n}"),
    numbers.map(lambda n: f"{n}\t"),
    not_numbers,
)
ids = st.one_of(numbers, st.sampled_from(["x17", "id-3", "", " ", '"a,b"', "nan"]))


def any_line(n_fields: int) -> st.SearchStrategy[str]:
    """A line of an object whose lines have ``n_fields`` fields (the features, maybe an id)."""
    clean = st.lists(numbers, min_size=n_fields, max_size=n_fields).map(",".join)
    return st.one_of(
        clean,
        clean,
        st.lists(fields, min_size=n_fields, max_size=n_fields).map(",".join),
        st.lists(fields, min_size=0, max_size=5).map(",".join),
        st.just(""),
    )


def reference(text: str, has_header: bool) -> tuple[dict[int, list[float]], set[int]]:
    """Line number -> values of every kept line, and the refused line numbers, one line at a
    time. Only the features must be numbers; another column (an id) is only counted."""
    lines = text.replace("\r\n", "\n").split("\n")
    if text.endswith("\n"):
        lines.pop()
    n_fields = len(lines[0].split(",")) if has_header else len(NAMES)
    order = [lines[0].split(",").index(n) for n in NAMES] if has_header else list(range(len(NAMES)))
    kept: dict[int, list[float]] = {}
    refused: set[int] = set()
    for number, line in enumerate(lines, start=1):
        if (has_header and number == 1) or line == "":
            continue
        values = line.split(",")
        if len(values) != n_fields or not all(NUMBER.fullmatch(values[i]) for i in order):
            refused.add(number)
            continue
        with np.errstate(over="ignore"):
            row = np.asarray([float(values[i]) for i in order], dtype=np.float64).astype(np.float32)
        if np.isfinite(row).all():
            kept[number] = row.tolist()
        else:
            refused.add(number)
    return kept, refused


@st.composite
def csv_objects(draw: st.DrawFn) -> tuple[bytes, bool]:
    header: list[str] | None = draw(
        st.one_of(st.none(), st.permutations(NAMES), st.permutations([*NAMES, "id"]))
    )
    n_fields = len(header) if header is not None else len(NAMES)
    line = any_line(n_fields)
    if header is not None and "id" in header:  # the id column: a number or a word
        position = header.index("id")
        with_id = st.tuples(st.lists(numbers, min_size=3, max_size=3), ids).map(
            lambda parts: ",".join([*parts[0][:position], parts[1], *parts[0][position:]])
        )
        line = st.one_of(line, with_id, with_id)
    body = draw(st.lists(line, min_size=0, max_size=30))
    first = draw(st.lists(numbers, min_size=3, max_size=3).map(",".join))
    text_lines = ([",".join(header)] if header is not None else [first]) + body
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(text_lines) + draw(st.sampled_from(["", newline]))
    return text.encode(), header is not None


def _checked_path(data: bytes, monkeypatch: pytest.MonkeyPatch) -> rows.ParsedRows:
    with monkeypatch.context() as patch:
        patch.setattr(rows, "_load_clean", lambda body, n_fields: None)
        return parse_csv(data, SIGNATURE)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=csv_objects())
def test_rows_kept_and_refused_are_the_line_by_line_reference(
    case: tuple[bytes, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, has_header = case
    kept, refused = reference(data.decode(), has_header)
    for parsed in (parse_csv(data, SIGNATURE), _checked_path(data, monkeypatch)):
        assert dict(zip(parsed.lines.tolist(), parsed.matrix.tolist(), strict=True)) == kept
        assert {row.line for row in parsed.bad} == refused
        assert [row.line for row in parsed.bad] == sorted(refused)
        assert parsed.total == len(kept) + len(refused)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=csv_objects())
def test_the_fast_path_and_the_checked_path_give_the_same_rows_and_reasons(
    case: tuple[bytes, bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, _ = case
    fast, checked = parse_csv(data, SIGNATURE), _checked_path(data, monkeypatch)
    assert fast.lines.tolist() == checked.lines.tolist()
    assert fast.matrix.tobytes() == checked.matrix.tobytes()
    assert fast.bad == checked.bad


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1,2", "expected 3 fields, got 2"),
        ("1,2,3,4", "expected 3 fields, got 4"),
        ("1,2,", "field 3 is empty"),
        ("1, ,3", "field 2 is empty"),
        ('"1",2,3', "field 1 is not a number: '\"1\"'"),
        ("1,abc,3", "field 2 is not a number: 'abc'"),
        ("1,2e,3", "field 2 is not a number: '2e'"),
        ("1,nan,3", "field 2 is not a finite number: 'nan'"),
        ("1,2,-inf", "field 3 is not a finite number: '-inf'"),
        ("1,2,1e39", "a value is out of range for the model's input type"),
        ("  ", "expected 3 fields, got 1"),
    ],
)
@pytest.mark.parametrize("header", [True, False])
def test_one_bad_line_among_clean_ones_is_refused_alone_with_its_reason(
    line: str, reason: str, header: bool
) -> None:
    clean = ["1.5,2e-3,-3E2"] * 4
    text = "\n".join(([",".join(NAMES)] if header else []) + clean[:2] + [line] + clean[2:]) + "\n"
    parsed = parse_csv(text.encode(), SIGNATURE)
    bad_line = 4 if header else 3
    assert parsed.bad == [BadRow(bad_line, reason)]
    assert len(parsed.lines) == 4 and bad_line not in parsed.lines.tolist()


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])
def test_a_clean_object_keeps_every_line_whatever_its_line_endings(ending: bytes, newline: bytes) -> None:
    data = newline.join([b"c,b,a", b"3,2,1", b"6e0,+5,4.", b"9,.8E1,-7"]) + ending
    parsed = parse_csv(data, SIGNATURE)
    assert parsed.bad == [] and parsed.lines.tolist() == [2, 3, 4]
    assert parsed.matrix.tolist() == [[1, 2, 3], [4, 5, 6], [-7, 8, 9]]


def test_blank_lines_are_no_rows_and_keep_the_line_numbers() -> None:
    parsed = parse_csv(b"a,b,c\n\n1,2,3\n\n\n4,5,6\n\n", SIGNATURE)
    assert parsed.lines.tolist() == [3, 6] and parsed.bad == [] and parsed.total == 2


@pytest.mark.parametrize("data", [b"", b"a,b,c", b"a,b,c\n", b"a,b,c\n\n\n"])
def test_an_object_with_no_rows_gives_none(data: bytes) -> None:
    parsed = parse_csv(data, SIGNATURE)
    assert parsed.matrix.shape == (0, 3) and parsed.total == 0
