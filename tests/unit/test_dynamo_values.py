"""Our DynamoDB attribute values agree with boto3's TypeSerializer/TypeDeserializer (which
the registry used before; see mlops_core.storage.dynamo for why it no longer imports them)."""

from __future__ import annotations

import math
import random
from decimal import Decimal
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from mlops_core.errors import Invalid
from mlops_core.storage.dynamo import deserialize, serialize


def boto3_serialize(item: dict[str, Any]) -> dict[str, Any]:
    """The previous path: floats as Decimal(repr(x)), then boto3's serializer."""

    def prepare(value: Any) -> Any:
        if isinstance(value, float):
            return Decimal(repr(value))
        if isinstance(value, dict):
            return {k: prepare(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [prepare(v) for v in value]
        return value

    serializer = TypeSerializer()
    return {k: serializer.serialize(prepare(v)) for k, v in item.items()}


def boto3_deserialize(raw: dict[str, Any]) -> dict[str, Any]:
    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return (
                int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
            )
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [convert(v) for v in value]
        return value

    deserializer = TypeDeserializer()
    return {k: convert(deserializer.deserialize(v)) for k, v in raw.items()}


def random_value(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "int", "float", "bool", "none"] + (["dict", "list"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice("abc XYZ#/é€0") for _ in range(rng.randint(1, 8)))
    if kind == "int":
        return rng.choice([0, 1, -1, 10**17, rng.randint(-(10**9), 10**9)])
    if kind == "float":
        return rng.choice([0.1, -2.5, 1e-7, 1e100, 2.0, rng.random(), rng.uniform(-1e6, 1e6)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "none":
        return None
    if kind == "dict":
        return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}
    return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


@pytest.mark.parametrize("seed", range(40))
def test_serialize_and_deserialize_match_boto3(seed: int) -> None:
    rng = random.Random(seed)
    item = {"pk": "MODEL#m", "sk": f"VERSION#{seed:08d}"} | {f"a{i}": random_value(rng) for i in range(6)}
    raw = serialize(item)
    assert raw == boto3_serialize(item)
    assert deserialize(raw) == boto3_deserialize(raw)


def test_round_trip_keeps_ints_and_floats_apart() -> None:
    item = {"count": 3, "auc": 0.987654321, "whole_float": 2.5, "tiny": 1e-7, "flag": True, "none": None}
    assert deserialize(serialize(item)) == item


def test_sets_and_bytes_serialize_as_boto3_does() -> None:
    item = {"tags": {"b", "a"}, "counts": {1, 2}, "blob": b"\x00\x01"}
    ours = serialize(item)
    theirs = boto3_serialize(item)
    assert sorted(ours["tags"]["SS"]) == sorted(theirs["tags"]["SS"])
    assert sorted(ours["counts"]["NS"]) == sorted(theirs["counts"]["NS"])
    assert ours["blob"] == {"B": b"\x00\x01"}
    assert deserialize(ours)["tags"] == {"a", "b"}


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        Decimal("NaN"),
        object(),
        set(),
        10**38,  # 39 digits
        1e-200,
        5e-324,
        1e200,
        Decimal("1E+130"),
        Decimal("1." + "1" * 40),
        complex(1, 2),
        {"": 1},  # DynamoDB refuses empty map keys
    ],
)
def test_values_dynamodb_cannot_hold_are_refused_with_a_clear_error(value: Any) -> None:
    with pytest.raises(Invalid, match="cannot be stored"):
        serialize({"x": value})


def test_numpy_scalars_are_stored_as_numbers() -> None:
    import numpy as np

    raw = serialize({"f": np.float64(0.1), "f32": np.float32(0.5), "i": np.int64(7)})
    assert raw == {"f": {"N": "0.1"}, "f32": {"N": "0.5"}, "i": {"N": "7"}}


def test_the_largest_numbers_dynamodb_holds_are_kept_exactly() -> None:
    raw = serialize({"big": 10**37 + 1, "precise": Decimal("1." + "1" * 37), "small": Decimal("1E-130")})
    assert raw == {"big": {"N": str(10**37 + 1)}, "precise": {"N": "1." + "1" * 37}, "small": {"N": "1E-130"}}
