"""Request instances become the model's matrix, or a precise list of what is wrong."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_core.errors import Invalid
from mlops_core.registry.signature import ModelSignature
from mlops_core.serving.instances import MAX_REPORTED_PROBLEMS, instances_to_matrix

SIGNATURE = ModelSignature.model_validate(
    {
        "features": [
            {"name": "age", "type": "integer"},
            {"name": "income"},
            {"name": "member", "type": "boolean"},
        ],
        "classes": [0, 1],
    }
)


def _problems(instances: list) -> list[dict]:
    with pytest.raises(Invalid) as raised:
        instances_to_matrix(instances, SIGNATURE, max_batch_size=10)
    return raised.value.details


def test_lists_and_feature_objects_give_the_same_matrix() -> None:
    as_lists = instances_to_matrix([[40, 1200.5, True]], SIGNATURE, max_batch_size=10)
    as_objects = instances_to_matrix(
        [{"member": True, "income": 1200.5, "age": 40}], SIGNATURE, max_batch_size=10
    )
    np.testing.assert_array_equal(as_lists, as_objects)
    assert as_lists.dtype == np.float32
    assert as_lists.tolist() == [[40.0, 1200.5, 1.0]]


def test_integral_floats_are_accepted_for_integer_features() -> None:
    assert instances_to_matrix([[40.0, 1, False]], SIGNATURE, max_batch_size=10).shape == (1, 3)


def test_wrong_feature_count_is_located() -> None:
    assert _problems([[1, 2.0, True], [1, 2.0]]) == [
        {"loc": ["body", "instances", 1], "msg": "expected 3 features, got 2", "type": "feature_count"}
    ]


def test_missing_and_unknown_feature_names_are_each_reported() -> None:
    problems = _problems([{"age": 3, "incme": 2.0, "member": True}])
    assert {(p["type"], p["loc"][-1]) for p in problems} == {
        ("extra_forbidden", "incme"),
        ("missing", "income"),
    }


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("12", "number_type"),
        (True, "number_type"),
        (None, "missing_value"),
        (math.nan, "finite_number"),
        (math.inf, "finite_number"),
        (2.5, "int_type"),
    ],
)
def test_bad_values_for_an_integer_feature(value: object, kind: str) -> None:
    (problem,) = _problems([[value, 1.0, True]])
    assert problem["type"] == kind
    assert problem["loc"] == ["body", "instances", 0, "age"]


def test_boolean_feature_rejects_numbers() -> None:
    (problem,) = _problems([[1, 1.0, 1]])
    assert problem == {
        "loc": ["body", "instances", 0, "member"],
        "msg": "'member' must be a boolean, got int",
        "type": "bool_type",
    }


def test_empty_batch_and_oversized_batch() -> None:
    assert _problems([])[0]["type"] == "too_short"
    assert _problems([[1, 1.0, True]] * 11)[0]["type"] == "too_long"


def test_problem_list_is_bounded() -> None:
    with pytest.raises(Invalid) as raised:
        instances_to_matrix([["x", "y", "z"]] * 100, SIGNATURE, max_batch_size=1000)
    assert len(raised.value.details) == MAX_REPORTED_PROBLEMS
    assert "first ones shown" in raised.value.message
