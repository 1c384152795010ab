"""Column names as real CSVs have them are datasets' column names and models' feature
names alike; what cannot work is refused, naming the column."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops_core.data.schema import DatasetSchema
from mlops_core.data.types import check_column_name
from mlops_core.registry.signature import ModelSignature
from tests.support import CSV_COLUMN_NAMES


@pytest.mark.parametrize("name", CSV_COLUMN_NAMES)
def test_real_csv_column_names_are_dataset_columns_and_model_features(name: str) -> None:
    schema = DatasetSchema(name="d", target="y", columns=[{"name": name}, {"name": "y"}])  # type: ignore[list-item]
    signature = ModelSignature.model_validate({"features": [{"name": name}], "classes": [0, 1]})

    assert schema.features[0].name == name
    assert signature.feature_names == [name]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "column names cannot be empty"),
        ("x" * 129, f"column name '{'x' * 20}…' is 129 characters long; at most 128"),
        ("a\tb", "column name 'a\\tb' contains the control character U+0009"),
        ("a\x00", "column name 'a\\x00' contains the control character U+0000"),
        ("a\u2028b", "column name 'a\\u2028b' contains the control character U+2028"),
        ("a\ud800", "column name 'a\\ud800' contains the control character U+D800"),
        (" a", "column name ' a' starts or ends with whitespace"),
        ("a\u00a0", "column name 'a\\xa0' starts or ends with whitespace"),
    ],
)
def test_names_that_cannot_work_are_refused_naming_them(name: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_column_name(name)
    assert str(raised.value).startswith(message)


def test_a_column_declared_twice_is_named() -> None:
    with pytest.raises(ValidationError, match="column name 'b' is declared twice"):
        DatasetSchema(name="d", target="y", columns=[{"name": n} for n in ("b", "y", "b")])  # type: ignore[misc]
