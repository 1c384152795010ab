"""Tabular datasets: the declared schema, and loading a CSV into typed columns.

A dataset is a CSV file in the artifacts bucket with a header row, described by a schema
(columns, types, target, allowed ranges and categories, not-null). A ``category`` column
holds text from its ``categories`` list; loaded, each cell is its position in that list (a
code, float64 like every column), so everything downstream of loading sees numbers. Checks against the
schema and an expectations suite are in ``validation``; the reference profile in
``profiles``. Pure numpy: runs in the core layer.
"""

from __future__ import annotations

import csv
import io
import math
from functools import cached_property
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops_core.data.types import (
    MISSING_CELLS,
    FeatureType,
    check_categories,
    check_column_name,
    shown_categories,
)

MAX_REPORTED_VIOLATIONS = 50


class ColumnSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="As in the CSV's header (rules: ``types.check_column_name``)")
    type: FeatureType = "double"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[float] | None = Field(default=None, description="Allowed values (numeric codes)")
    categories: list[str] | None = Field(
        default=None,
        description="A category column's values, in code order (the first is code 0)",
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_column_name(value)

    @model_validator(mode="after")
    def _range(self) -> ColumnSchema:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"column '{self.name}': min {self.min} is above max {self.max}")
        if (self.type == "category") != (self.categories is not None):
            raise ValueError(
                f"column '{self.name}': categories are given for a category column, and only then"
            )
        if self.categories is not None:
            check_categories(self.categories, f"column '{self.name}'")
            if self.min is not None or self.max is not None or self.allowed is not None:
                raise ValueError(f"column '{self.name}': a category column has no min, max or allowed")
        return self

    # Not a pydantic private attribute: those are read through __getattr__ (~1 us), once a cell.
    @cached_property
    def _codes(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.categories or [])}

    def code_of(self, text: str) -> int:
        """A category column's code for ``text`` (stripped); ValueError if it is not a category."""
        code = self._codes.get(text)
        if code is None:
            shown = shown_categories(self.categories)
            raise ValueError(f"'{text[:40]}' is not one of its categories ({shown})")
        return code

    def category_of(self, code: float) -> str:
        """The text of a category column's code."""
        return (self.categories or [])[int(code)]


class DatasetSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=128)
    task: Literal["classification", "regression"] = "classification"
    target: str
    columns: list[ColumnSchema] = Field(min_length=2)

    @model_validator(mode="after")
    def _target_declared(self) -> DatasetSchema:
        names = [c.name for c in self.columns]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"column name {twice[0]!r} is declared twice")
        if self.target not in names:
            raise ValueError(f"target '{self.target}' is not a declared column")
        target = self.columns[names.index(self.target)]
        if self.task == "regression" and target.type == "category":
            raise ValueError(f"target '{self.target}' is a category column: a regression target is a number")
        return self

    @property
    def features(self) -> list[ColumnSchema]:
        return [c for c in self.columns if c.name != self.target]


class Table(BaseModel):
    """A loaded dataset: one numpy column per declared column (float64; NaN for nulls)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    columns: dict[str, np.ndarray]
    rows: int

    def matrix(self, names: list[str]) -> np.ndarray:
        return np.column_stack([self.columns[n] for n in names]) if names else np.empty((self.rows, 0))


class DataValidationError(Exception):
    """The dataset breaks its schema or expectations; ``violations`` lists each problem."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = violations
        shown = violations[:MAX_REPORTED_VIOLATIONS]
        more = f" (+{len(violations) - len(shown)} more)" if len(violations) > len(shown) else ""
        super().__init__(f"{len(violations)} violation(s){more}: " + "; ".join(shown))


_TRUE = {"true", "1"}
_FALSE = {"false", "0"}


def parse_cell(raw: str, column: ColumnSchema) -> float:
    """A CSV cell as float64 (NaN for null); raises ValueError naming the problem."""
    text = raw.strip()
    if text.lower() in MISSING_CELLS:
        return math.nan
    if column.type == "category":
        return float(column.code_of(text))
    if column.type == "boolean":
        lowered = text.lower()
        if lowered in _TRUE:
            return 1.0
        if lowered in _FALSE:
            return 0.0
        raise ValueError(f"'{raw}' is not a boolean")
    value = float(text)  # ValueError for text
    if not math.isfinite(value):
        raise ValueError(f"'{raw}' is not finite")
    if column.type == "integer" and not value.is_integer():
        raise ValueError(f"'{raw}' is not an integer")
    return value


def load_csv(data: bytes, schema: DatasetSchema) -> Table:
    """Parse a CSV against its schema; raises ``DataValidationError`` listing every bad cell."""
    table, violations, _ = parse_csv(data, schema)
    if violations:
        raise DataValidationError(violations)
    return table


def parse_csv(data: bytes, schema: DatasetSchema) -> tuple[Table, list[str], dict[str, np.ndarray]]:
    """The table (bad cells as NaN), the parsing problems, and a mask of bad cells per column."""
    violations: list[str] = []
    reader = csv.reader(io.StringIO(data.decode("utf-8-sig")))
    try:
        header = next(reader)
    except StopIteration:
        raise DataValidationError(["the file is empty (no header row)"]) from None
    header = [h.strip() for h in header]
    declared = [c.name for c in schema.columns]
    missing = [n for n in declared if n not in header]
    violations.extend(f"missing column '{n}'" for n in missing)
    violations.extend(f"undeclared column '{n}'" for n in header if n not in declared)
    if missing:
        raise DataValidationError(violations)
    positions = {c.name: header.index(c.name) for c in schema.columns}
    values: dict[str, list[float]] = {c.name: [] for c in schema.columns}
    bad: dict[str, list[bool]] = {c.name: [] for c in schema.columns}
    for line_number, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            violations.append(f"line {line_number}: {len(row)} fields, header has {len(header)}")
            continue
        for column in schema.columns:
            raw = row[positions[column.name]]
            try:
                values[column.name].append(parse_cell(raw, column))
                bad[column.name].append(False)
            except ValueError as error:
                violations.append(f"line {line_number}, column '{column.name}' ({column.type}): {error}")
                values[column.name].append(math.nan)
                bad[column.name].append(True)
        if len(violations) > MAX_REPORTED_VIOLATIONS * 4:
            break
    table = Table(
        columns={n: np.asarray(v, dtype=np.float64) for n, v in values.items()},
        rows=len(values[schema.columns[0].name]),
    )
    return table, violations, {n: np.asarray(m, dtype=bool) for n, m in bad.items()}


def schema_violations(
    table: Table, schema: DatasetSchema, bad_cells: dict[str, np.ndarray] | None = None
) -> list[str]:
    """Nulls, ranges and categories, one message per column and rule with a count and examples.

    ``bad_cells`` marks cells that failed to parse (already reported): not counted as nulls.
    """
    violations = []
    for column in schema.columns:
        values = table.columns[column.name]
        nulls = np.isnan(values)
        if bad_cells is not None:
            nulls &= ~bad_cells[column.name]
        if not column.nullable and nulls.any():
            violations.append(f"column '{column.name}': {int(nulls.sum())} null value(s) (not nullable)")
        present = values[~np.isnan(values)]
        if column.min is not None and (low := present[present < column.min]).size:
            violations.append(
                f"column '{column.name}': {low.size} value(s) below min {column.min} (lowest {low.min():g})"
            )
        if column.max is not None and (high := present[present > column.max]).size:
            violations.append(
                f"column '{column.name}': {high.size} value(s) above max {column.max} "
                f"(highest {high.max():g})"
            )
        if column.allowed is not None:
            outside = present[~np.isin(present, column.allowed)]
            if outside.size:
                examples = ", ".join(f"{v:g}" for v in np.unique(outside)[:5])
                violations.append(
                    f"column '{column.name}': {outside.size} value(s) not in the allowed set "
                    f"(e.g. {examples})"
                )
    return violations
