"""Dataset validation: the schema's rules and an expectations suite (table- and
column-level checks, named as in Great Expectations), every violation reported at once."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mlops_core.data.schema import DatasetSchema, DataValidationError, Table, parse_csv, schema_violations


class RowCountBetween(BaseModel):
    type: Literal["expect_table_row_count_to_be_between"]
    min: int | None = None
    max: int | None = None


class ValuesBetween(BaseModel):
    type: Literal["expect_column_values_to_be_between"]
    column: str
    min: float | None = None
    max: float | None = None


class ValuesNotNull(BaseModel):
    type: Literal["expect_column_values_to_not_be_null"]
    column: str


class ValuesInSet(BaseModel):
    type: Literal["expect_column_values_to_be_in_set"]
    column: str
    values: list[float]


class MeanBetween(BaseModel):
    type: Literal["expect_column_mean_to_be_between"]
    column: str
    min: float | None = None
    max: float | None = None


class DistinctCountAtLeast(BaseModel):
    type: Literal["expect_column_unique_value_count_to_be_at_least"]
    column: str
    min: int


Expectation = Annotated[
    RowCountBetween | ValuesBetween | ValuesNotNull | ValuesInSet | MeanBetween | DistinctCountAtLeast,
    Field(discriminator="type"),
]


class ExpectationSuite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    expectations: list[Expectation] = Field(default_factory=list)


def expectation_violations(table: Table, suite: ExpectationSuite) -> list[str]:
    violations = []
    for expectation in suite.expectations:
        if isinstance(expectation, RowCountBetween):
            if (expectation.min is not None and table.rows < expectation.min) or (
                expectation.max is not None and table.rows > expectation.max
            ):
                violations.append(
                    f"{expectation.type}: {table.rows} rows, expected [{expectation.min}, {expectation.max}]"
                )
            continue
        if expectation.column not in table.columns:
            violations.append(f"{expectation.type}: unknown column '{expectation.column}'")
            continue
        values = table.columns[expectation.column]
        present = values[~np.isnan(values)]
        message = _column_expectation(expectation, values, present)
        if message:
            violations.append(f"{expectation.type} on '{expectation.column}': {message}")
    return violations


def _column_expectation(expectation: Any, values: np.ndarray, present: np.ndarray) -> str | None:
    if isinstance(expectation, ValuesNotNull):
        nulls = int(np.isnan(values).sum())
        return f"{nulls} null value(s)" if nulls else None
    if isinstance(expectation, ValuesBetween):
        bad = int(
            ((present < expectation.min).sum() if expectation.min is not None else 0)
            + ((present > expectation.max).sum() if expectation.max is not None else 0)
        )
        return f"{bad} value(s) outside [{expectation.min}, {expectation.max}]" if bad else None
    if isinstance(expectation, ValuesInSet):
        bad = int((~np.isin(present, expectation.values)).sum())
        return f"{bad} value(s) not in {expectation.values}" if bad else None
    if isinstance(expectation, MeanBetween):
        mean = float(present.mean()) if present.size else math.nan
        low_ok = expectation.min is None or mean >= expectation.min
        high_ok = expectation.max is None or mean <= expectation.max
        return None if low_ok and high_ok else f"mean {mean:g} outside [{expectation.min}, {expectation.max}]"
    if isinstance(expectation, DistinctCountAtLeast):
        distinct = int(np.unique(present).size)
        return (
            f"{distinct} distinct value(s), expected at least {expectation.min}"
            if distinct < expectation.min
            else None
        )
    return None


def validate(data: bytes, schema: DatasetSchema, suite: ExpectationSuite | None = None) -> Table:
    """Load and check a dataset; raises ``DataValidationError`` listing every violation.

    Unparsable cells are reported by line; the schema's range, category and null checks
    then run on what did parse (a bad cell is not reported twice as a null).
    """
    table, violations, bad_cells = parse_csv(data, schema)
    violations += schema_violations(table, schema, bad_cells)
    if suite is not None:
        violations += expectation_violations(table, suite)
    if violations:
        raise DataValidationError(violations)
    return table
