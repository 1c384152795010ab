"""Batch input rows: what a CSV or JSON Lines object becomes, and every refused row's line and reason."""

from __future__ import annotations

import numpy as np
import pytest

from mlops_core.batch.rows import BadRow, UnreadableObject, input_format, parse_csv, parse_jsonl
from mlops_core.registry.signature import FeatureSpec, ModelSignature

SIGNATURE = ModelSignature(
    features=[FeatureSpec(name="a"), FeatureSpec(name="b"), FeatureSpec(name="c")], classes=[0, 1]
)


def test_a_header_in_any_order_with_extra_columns_gives_signature_order() -> None:
    parsed = parse_csv(b"id,c,a,b\n7,3,1,2\n8,6,4,5\n", SIGNATURE)
    assert parsed.matrix.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert parsed.lines.tolist() == [2, 3] and parsed.bad == []
    assert parsed.matrix.dtype == np.float32


def test_without_a_header_every_line_is_a_row_in_signature_order() -> None:
    parsed = parse_csv(b"1,2,3\r\n4,5,6", SIGNATURE)  # CRLF, no final newline
    assert parsed.matrix.tolist() == [[1, 2, 3], [4, 5, 6]] and parsed.lines.tolist() == [1, 2]


def test_each_malformed_line_is_refused_with_its_number_and_reason() -> None:
    data = b"a,b,c\n1,2,3\n1,2\nx,2,3\n1,,3\n\n1.2.3,2,3\n1,2,1e999\n,2,3\n4,5,6\n"
    parsed = parse_csv(data, SIGNATURE)
    assert parsed.lines.tolist() == [2, 10]
    assert parsed.bad == [
        BadRow(3, "expected 3 fields, got 2"),
        BadRow(4, "field 1 is not a number: 'x'"),
        BadRow(5, "field 2 is empty"),
        BadRow(7, "field 1 is not a number: '1.2.3'"),
        BadRow(8, "a value is out of range for the model's input type"),
        BadRow(9, "field 1 is empty"),
    ]
    assert parsed.total == 8  # the blank line 6 is no row


def test_values_parse_as_the_real_time_path_parses_json_numbers() -> None:
    parsed = parse_csv(b"a,b,c\n0.1,1e-3,123456.789\n", SIGNATURE)
    assert parsed.matrix[0].tolist() == np.asarray([[0.1, 1e-3, 123456.789]], dtype=np.float32)[0].tolist()


def test_integer_and_boolean_features_take_whole_numbers_and_0_or_1() -> None:
    signature = ModelSignature(
        features=[FeatureSpec(name="n", type="integer"), FeatureSpec(name="f", type="boolean")],
        classes=[0, 1],
    )
    parsed = parse_csv(b"n,f\n3,1\n3.5,0\n2,2\n", signature)
    assert parsed.lines.tolist() == [2]
    assert parsed.bad == [BadRow(3, "'n' must be an integer"), BadRow(4, "'f' must be 0 or 1")]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,b\n1,2\n", "the header lacks 1 of the model's features (c)"),
        (b"1,2\n3,4\n", "the first line has 2 fields and no header; the model takes 3 features"),
        (b"\xff\xfe,b,c\n", "the first line is not UTF-8 text"),
    ],
)
def test_an_object_that_cannot_be_read_as_a_whole_says_why(data: bytes, message: str) -> None:
    with pytest.raises(UnreadableObject, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_csv(data, SIGNATURE)


def test_json_lines_take_objects_or_arrays_and_refuse_the_rest_by_line() -> None:
    data = (
        b'{"a": 1, "b": 2, "c": 3, "id": "x"}\n[4, 5, 6]\n{"a": 1}\n[1, "2", 3]\nnot json\n\n[true, 1, 2]\n'
    )
    parsed = parse_jsonl(data, SIGNATURE)
    assert parsed.matrix.tolist() == [[1, 2, 3], [4, 5, 6]] and parsed.lines.tolist() == [1, 2]
    assert [(b.line, b.reason.split(":")[0]) for b in parsed.bad] == [
        (3, "missing feature 'b' (and 1 more)"),
        (4, "'b' must be a finite number, got string"),
        (5, "not JSON"),
        (7, "'a' must be a number, got bool"),
    ]


def test_the_key_says_the_format() -> None:
    assert [input_format(k) for k in ("a/b.csv", "a/b.jsonl", "a/b.NDJSON", "a/b.txt")] == [
        "csv",
        "jsonl",
        "jsonl",
        "csv",
    ]


@pytest.mark.parametrize("key", ["a/b.parquet", "a/B.PARQUET", "a/b.pq", "a/b.parq"])
def test_a_parquet_key_says_parquet_not_csv(key: str) -> None:
    assert input_format(key) == "parquet"


def test_other_columns_are_only_counted_so_a_word_id_does_not_refuse_the_row() -> None:
    data = b'id,c,a,b,label\nx1,3,1,2,yes\n,6,4,5,\n"q",9,7,8,no\nx4,1,2\nx5,1,,3,no\nx6,1,y,3,no\n'
    parsed = parse_csv(data, SIGNATURE)
    assert parsed.lines.tolist() == [2, 3, 4]
    assert parsed.matrix.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert parsed.bad == [
        BadRow(5, "expected 5 fields, got 3"),
        BadRow(6, "field 3 is empty"),
        BadRow(7, "field 3 is not a number: 'y'"),
    ]


NULLABLE = ModelSignature(
    features=[
        FeatureSpec(name="a"),
        FeatureSpec(name="b", nullable=True),
        FeatureSpec(name="n", type="integer", nullable=True),
    ],
    classes=[0, 1],
)


def test_a_nullable_feature_may_be_missing_as_the_predict_route_takes_it() -> None:
    # Missing as training reads missing cells (empty, NA, nan, null, none); other faults refused.
    data = (
        b"id,a,b,n\nx,1,,3\ny,1,2,\nz,,2,3\nw,1,nan,NA\nv,1,2,3\nu,1,1e999,3\nt,1,2,2.5\n"
        b"s,1,Null,none\nr,NA,2,3\n"
    )
    parsed = parse_csv(data, NULLABLE)

    assert parsed.lines.tolist() == [2, 3, 5, 6, 9]
    assert np.array_equal(
        parsed.matrix,
        np.array([[1, np.nan, 3], [1, 2, np.nan], [1, np.nan, np.nan], [1, 2, 3], [1, np.nan, np.nan]]),
        equal_nan=True,
    )
    assert parsed.bad == [
        BadRow(4, "field 2 is empty"),
        BadRow(7, "a value is out of range for the model's input type"),
        BadRow(8, "'n' must be an integer"),
        BadRow(10, "field 2 is not a number: 'NA'"),
    ]


def test_json_lines_take_null_for_a_nullable_feature_only() -> None:
    data = b'{"a": 1, "b": null, "n": 2}\n[1, 2, null]\n{"a": null, "b": 1, "n": 2}\n[1, NaN, 2]\n'
    parsed = parse_jsonl(data, NULLABLE)

    assert parsed.lines.tolist() == [1, 2]
    assert np.array_equal(parsed.matrix, np.array([[1, np.nan, 2], [1, 2, np.nan]]), equal_nan=True)
    assert parsed.bad == [
        BadRow(3, "'a' must be a finite number, got NoneType"),
        BadRow(4, "'b' must be a finite number, got float"),
    ]


def test_without_nullable_features_an_empty_field_is_still_refused() -> None:
    assert parse_csv(b"a,b,c\n1,,3\n", SIGNATURE).bad == [BadRow(2, "field 2 is empty")]
