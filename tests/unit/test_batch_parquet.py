"""Parquet batch inputs (``mlops_core.batch.parquet``, arro3-io from the ``parquet`` extra):
the feature columns by name, the same values and refusals as CSV, rows numbered from 1, and
an object that cannot be read named with its reason rather than crashing the function."""

from __future__ import annotations

import io

import numpy as np
import pytest

from mlops_core.batch.rows import BadRow, UnreadableObject, parse_csv, parse_rows
from mlops_core.registry.signature import FeatureSpec, ModelSignature

arro3_core = pytest.importorskip("arro3.core", reason="the parquet extra (arro3-io) is not installed")
arro3_io = pytest.importorskip("arro3.io")

SIGNATURE = ModelSignature(
    features=[FeatureSpec(name="a"), FeatureSpec(name="b"), FeatureSpec(name="c", nullable=True)],
    classes=[0, 1],
)


def parquet(columns: dict[str, list[object]], types: dict[str, object] | None = None) -> bytes:
    """A Parquet object of these columns (a column's type from ``types``, else float64)."""
    arrays = {
        name: arro3_core.Array(values, type=(types or {}).get(name, arro3_core.DataType.float64()))
        for name, values in columns.items()
    }
    out = io.BytesIO()
    arro3_io.write_parquet(arro3_core.Table.from_pydict(arrays), out)
    return out.getvalue()


def test_feature_columns_are_taken_by_name_with_the_values_csv_gives() -> None:
    data = parquet(
        {"id": ["x", "y"], "c": [3.0, 6.25], "b": [2, 5], "a": [0.1, 1e-3]},
        {"id": arro3_core.DataType.string(), "b": arro3_core.DataType.int32()},
    )
    parsed = parse_rows(data, SIGNATURE, "parquet")
    from_csv = parse_csv(b"a,b,c\n0.1,2,3\n0.001,5,6.25\n", SIGNATURE)
    assert parsed.matrix.dtype == np.float32
    assert parsed.matrix.tolist() == from_csv.matrix.tolist()
    assert parsed.lines.tolist() == [1, 2] and parsed.bad == []


def test_a_null_refuses_its_row_unless_the_feature_is_nullable() -> None:
    data = parquet({"a": [1.0, None, 3.0, 4.0], "b": [1.0, 2.0, 3.0, None], "c": [None, 1.0, 2.0, 3.0]})
    parsed = parse_rows(data, SIGNATURE, "parquet")
    assert parsed.lines.tolist() == [1, 3]
    assert np.isnan(parsed.matrix[0, 2]) and parsed.matrix[1].tolist() == [3.0, 3.0, 2.0]
    assert parsed.bad == [BadRow(2, "'a' is null"), BadRow(4, "'b' is null")]


def test_values_the_model_cannot_take_are_refused_as_in_csv() -> None:
    signature = ModelSignature(
        features=[FeatureSpec(name="n", type="integer"), FeatureSpec(name="f", type="boolean")],
        classes=[0, 1],
    )
    data = parquet(
        {"n": [3.0, 3.5, 2.0, 1e300], "f": [True, False, True, False]}, {"f": arro3_core.DataType.bool()}
    )
    parsed = parse_rows(data, signature, "parquet")
    assert parsed.lines.tolist() == [1, 3]
    assert parsed.bad == [
        BadRow(2, "'n' must be an integer"),
        BadRow(4, "a value is out of range for the model's input type"),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"a,b,c\n1,2,3\n", "not a readable Parquet file"),
        (b"PAR1" + b"\0" * 64 + b"PAR1", "not a readable Parquet file"),
        (parquet({"a": [1.0], "b": [2.0]}), r"the Parquet columns lack 1 of the model's features \(c\)"),
        (
            parquet({"a": ["1"], "b": [2.0], "c": [3.0]}, {"a": arro3_core.DataType.string()}),
            "column 'a' holds Utf8, not numbers",
        ),
    ],
    ids=["csv bytes", "a corrupt footer", "a feature missing", "a text column"],
)
def test_an_object_that_cannot_be_read_says_why(data: bytes, message: str) -> None:
    with pytest.raises(UnreadableObject, match=message):
        parse_rows(data, SIGNATURE, "parquet")


def test_a_category_feature_takes_text_names_as_their_codes_as_csv_does() -> None:
    signature = ModelSignature(
        features=[
            FeatureSpec(name="island", type="category", categories=["Biscoe", "Dream", "Torgersen"]),
            FeatureSpec(name="sex", type="category", categories=["female", "male"], nullable=True),
            FeatureSpec(name="bill", nullable=False),
        ],
        classes=[0, 1],
    )
    text = arro3_core.DataType.string()
    data = parquet(
        {
            "island": ["Dream", "Biscoe", "Mars", None, "Torgersen"],
            "sex": ["male", None, "male", "female", "other"],
            "bill": [48.5, 37.0, 40.0, 41.0, 39.0],
        },
        {"island": text, "sex": text},
    )
    parsed = parse_rows(data, signature, "parquet")
    from_csv = parse_csv(b"island,sex,bill\nDream,male,48.5\nBiscoe,NA,37.0\n", signature)
    np.testing.assert_array_equal(parsed.matrix, from_csv.matrix)
    assert parsed.lines.tolist() == [1, 2]
    assert [(row.line, row.reason) for row in parsed.bad] == [
        (3, "'island' must be one of the model's categories (Biscoe, Dream, Torgersen), got 'Mars'"),
        (4, "'island' is null"),
        (5, "'sex' must be one of the model's categories (female, male), got 'other'"),
    ]
    numbers = parquet({"island": [1.0], "sex": ["male"], "bill": [2.0]}, {"sex": text})
    with pytest.raises(UnreadableObject, match=r"column 'island' holds Float64, not text \(categories\)"):
        parse_rows(numbers, signature, "parquet")
