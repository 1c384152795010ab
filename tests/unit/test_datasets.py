"""Dataset schema, expectations and the reference profile."""

from __future__ import annotations

import pytest

from infra.local.sample_data import breast_cancer
from mlops_core.data.profiles import profile
from mlops_core.data.schema import DatasetSchema, DataValidationError
from mlops_core.data.validation import ExpectationSuite, validate

SCHEMA = DatasetSchema.model_validate(
    {
        "name": "toy",
        "target": "label",
        "columns": [
            {"name": "age", "type": "integer", "min": 0, "max": 120},
            {"name": "income", "type": "double", "nullable": True},
            {"name": "member", "type": "boolean"},
            {"name": "label", "type": "integer", "allowed": [0, 1]},
        ],
    }
)
GOOD = b"age,income,member,label\n30,1200.5,true,1\n41,,false,0\n"


def _violations(data: bytes, suite: ExpectationSuite | None = None) -> list[str]:
    with pytest.raises(DataValidationError) as raised:
        validate(data, SCHEMA, suite)
    return raised.value.violations


def test_a_valid_file_loads_with_nulls_as_nan() -> None:
    table = validate(GOOD, SCHEMA)
    assert table.rows == 2
    assert table.columns["member"].tolist() == [1.0, 0.0]
    assert str(table.columns["income"][1]) == "nan"


def test_missing_and_undeclared_columns_are_both_named() -> None:
    violations = _violations(b"age,income,colour,label\n30,1.0,red,1\n")
    assert violations == ["missing column 'member'", "undeclared column 'colour'"]


def test_every_bad_cell_is_reported_with_its_line_and_column() -> None:
    violations = _violations(b"age,income,member,label\nthirty,1.0,true,1\n40.5,x,maybe,0\n")
    assert violations == [
        "line 2, column 'age' (integer): could not convert string to float: 'thirty'",
        "line 3, column 'age' (integer): '40.5' is not an integer",
        "line 3, column 'income' (double): could not convert string to float: 'x'",
        "line 3, column 'member' (boolean): 'maybe' is not a boolean",
    ]


def test_ranges_categories_and_nulls_are_checked_per_column() -> None:
    violations = _violations(b"age,income,member,label\n130,1.0,true,2\n-1,2.0,,1\n")
    assert violations == [
        "column 'age': 1 value(s) below min 0.0 (lowest -1)",
        "column 'age': 1 value(s) above max 120.0 (highest 130)",
        "column 'member': 1 null value(s) (not nullable)",
        "column 'label': 1 value(s) not in the allowed set (e.g. 2)",
    ]


def test_expectations_add_table_and_statistical_checks() -> None:
    suite = ExpectationSuite.model_validate(
        {
            "expectations": [
                {"type": "expect_table_row_count_to_be_between", "min": 10},
                {"type": "expect_column_mean_to_be_between", "column": "age", "max": 20},
                {"type": "expect_column_values_to_not_be_null", "column": "income"},
                {"type": "expect_column_values_to_be_in_set", "column": "label", "values": [1]},
                {"type": "expect_column_unique_value_count_to_be_at_least", "column": "nope", "min": 1},
            ]
        }
    )
    assert _violations(GOOD, suite) == [
        "expect_table_row_count_to_be_between: 2 rows, expected [10, None]",
        "expect_column_mean_to_be_between on 'age': mean 35.5 outside [None, 20.0]",
        "expect_column_values_to_not_be_null on 'income': 1 null value(s)",
        "expect_column_values_to_be_in_set on 'label': 1 value(s) not in [1.0]",
        "expect_column_unique_value_count_to_be_at_least: unknown column 'nope'",
    ]


def test_empty_file_is_a_violation() -> None:
    assert _violations(b"") == ["the file is empty (no header row)"]


def test_schema_must_declare_its_target() -> None:
    with pytest.raises(ValueError, match="target 'y' is not a declared column"):
        DatasetSchema.model_validate({"name": "x", "target": "y", "columns": [{"name": "a"}, {"name": "b"}]})


def test_sample_dataset_passes_its_own_schema_and_expectations() -> None:
    sample = breast_cancer()
    table = validate(
        sample.csv,
        DatasetSchema.model_validate(sample.schema),
        ExpectationSuite.model_validate(sample.expectations),
    )
    assert table.rows == 569


def test_profile_has_equal_mass_bins_and_category_frequencies() -> None:
    sample = breast_cancer()
    schema = DatasetSchema.model_validate(sample.schema)
    result = profile(validate(sample.csv, schema), schema)

    radius = result["features"]["mean_radius"]
    assert radius["kind"] == "numeric"
    assert sum(radius["histogram"]["counts"]) == 569
    assert max(radius["histogram"]["counts"]) - min(radius["histogram"]["counts"]) <= 5
    assert "benign" not in result["features"]  # the target is not a feature
    toy = profile(validate(GOOD, SCHEMA), SCHEMA)["features"]
    assert toy["member"] == {
        "type": "boolean",
        "count": 2,
        "nulls": 0,
        "kind": "categorical",
        "frequencies": {"0": 1, "1": 1},
    }
    assert toy["income"]["nulls"] == 1
