"""Turning the instances of a prediction request into the model's input matrix.

Pure logic (numpy only): checks every value against the signature and reports each
problem with its location, the way pydantic reports validation errors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mlops_core.data.types import shown_categories
from mlops_core.errors import Invalid, detail
from mlops_core.registry.signature import FeatureSpec, ModelSignature

MAX_REPORTED_PROBLEMS = 20


def _check_value(
    value: Any, spec: FeatureSpec, loc: list[str | int], problems: list[dict[str, Any]], limit: float
) -> None:
    kind = type(value)
    if value is None:
        if not spec.nullable:  # a nullable feature's null is NaN in the matrix: the model imputes it
            problems.append(detail(loc, f"'{spec.name}' is null; a {spec.type} is required", "missing_value"))
    elif spec.type == "boolean":
        if kind is not bool:
            problems.append(detail(loc, f"'{spec.name}' must be a boolean, got {kind.__name__}", "bool_type"))
    elif kind is bool or kind not in (int, float):
        name = "string" if kind is str else kind.__name__
        problems.append(detail(loc, f"'{spec.name}' must be a number, got {name}", "number_type"))
    elif kind is float and not math.isfinite(value):
        problems.append(detail(loc, f"'{spec.name}' must be finite, got {value}", "finite_number"))
    elif abs(value) > limit:  # would become inf in the model's input type (or not convert at all)
        problems.append(
            detail(loc, f"'{spec.name}' is out of range: |value| must be at most {limit:.6g}", "number_range")
        )
    elif spec.type == "integer" and kind is float and not value.is_integer():
        problems.append(detail(loc, f"'{spec.name}' must be an integer, got {value}", "int_type"))


def _check_category(
    value: Any, spec: FeatureSpec, loc: list[str | int], problems: list[dict[str, Any]]
) -> Any:
    """A category feature's code for ``value`` (None for a null), after adding any problem
    with it to ``problems``. Apart from ``_check_value``, which every number goes through: the
    numbers' path stays as short as it was."""
    kind = type(value)
    if value is None:
        if not spec.nullable:
            problems.append(detail(loc, f"'{spec.name}' is null; a {spec.type} is required", "missing_value"))
        return None
    code = spec.code_of(value) if kind is str else None
    if code is not None:
        return code
    if kind is str:
        problems.append(
            detail(
                loc,
                f"'{spec.name}' must be one of the model's categories "
                f"({shown_categories(spec.categories)}), got {value[:40]!r}",
                "category",
            )
        )
    else:
        name = "boolean" if kind is bool else kind.__name__
        problems.append(
            detail(loc, f"'{spec.name}' must be a string (a category), got {name}", "string_type")
        )
    return None


def _check_mapping(
    row: Mapping[str, Any],
    signature: ModelSignature,
    loc: list[str | int],
    problems: list[dict[str, Any]],
    limit: float,
) -> list[Any]:
    names = set(signature.feature_names)
    problems.extend(
        detail([*loc, name], f"unknown feature '{name}'", "extra_forbidden")
        for name in row
        if name not in names
    )
    values = []
    for spec in signature.features:
        value = row.get(spec.name)
        if spec.name not in row:
            problems.append(detail([*loc, spec.name], f"missing feature '{spec.name}'", "missing"))
        elif spec.categories is not None:
            value = _check_category(value, spec, [*loc, spec.name], problems)
        else:
            _check_value(value, spec, [*loc, spec.name], problems, limit)
        values.append(value)
    return values


def _check_list(
    row: list[Any],
    signature: ModelSignature,
    loc: list[str | int],
    problems: list[dict[str, Any]],
    limit: float,
) -> list[Any]:
    if len(row) != len(signature.features):
        problems.append(
            detail(loc, f"expected {len(signature.features)} features, got {len(row)}", "feature_count")
        )
        return row
    coded = signature.category_positions
    if not coded:  # the usual case: the row goes into the matrix as it is
        for spec, value in zip(signature.features, row, strict=True):
            _check_value(value, spec, [*loc, spec.name], problems, limit)
        return row
    values = list(row)
    for position, (spec, value) in enumerate(zip(signature.features, row, strict=True)):
        if position in coded:
            values[position] = _check_category(value, spec, [*loc, spec.name], problems)
        else:
            _check_value(value, spec, [*loc, spec.name], problems, limit)
    return values


def instances_to_matrix(
    instances: Sequence[Any], signature: ModelSignature, *, max_batch_size: int
) -> np.ndarray:
    """Validate ``instances`` (lists in feature order, or feature-name objects) into a matrix.

    Raises ``Invalid`` listing up to ``MAX_REPORTED_PROBLEMS`` problems, each located as
    ``["body", "instances", row, feature]``.
    """
    if len(instances) == 0:
        raise Invalid(
            "instances is empty: send at least one instance",
            details=[detail(["body", "instances"], "at least one instance is required", "too_short")],
        )
    if len(instances) > max_batch_size:
        raise Invalid(
            f"batch of {len(instances)} instances is over the limit of {max_batch_size}",
            details=[
                detail(["body", "instances"], f"at most {max_batch_size} instances per call", "too_long")
            ],
        )
    dtype = np.float32 if signature.input_dtype == "float32" else np.float64
    limit = float(np.finfo(dtype).max)
    problems: list[dict[str, Any]] = []
    rows: list[list[Any]] = []
    for i, instance in enumerate(instances):
        loc: list[str | int] = ["body", "instances", i]
        if isinstance(instance, Mapping):
            rows.append(_check_mapping(instance, signature, loc, problems, limit))
        elif isinstance(instance, list):
            rows.append(_check_list(instance, signature, loc, problems, limit))
        else:
            problems.append(detail(loc, "an instance is a list of values or an object of features", "type"))
        if len(problems) > MAX_REPORTED_PROBLEMS:
            break
    if problems:
        shown = problems[:MAX_REPORTED_PROBLEMS]
        more = "" if len(problems) <= MAX_REPORTED_PROBLEMS else " (first ones shown)"
        raise Invalid(
            f"{len(shown)} invalid value(s) in instances for model signature "
            f"[{', '.join(signature.feature_names[:8])}{', …' if len(signature.features) > 8 else ''}]{more}",
            details=shown,
        )
    return np.asarray(rows, dtype=dtype)
