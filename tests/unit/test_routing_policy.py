"""Routing policies: what is accepted, and what is refused with which field and message."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mlops_core.errors import Invalid
from mlops_core.routing.policy import (
    DEFAULT_POLICY,
    ROUTING_POLICY,
    BanditPolicy,
    SinglePolicy,
    SplitPolicy,
    parse_policy,
)


def split(*pairs: tuple[int, float], **extra: Any) -> dict[str, Any]:
    return {"type": "split", "weights": [{"version": v, "weight": w} for v, w in pairs], **extra}


def problems(data: Any) -> list[tuple[list[str | int], str]]:
    with pytest.raises(Invalid) as caught:
        parse_policy(data)
    return [(d["loc"], d["msg"]) for d in caught.value.details]


@pytest.mark.parametrize(
    "data",
    [
        {"type": "single", "alias": "production"},
        {"type": "single", "version": 3, "shadow": 4},
        split((3, 0.9), (4, 0.1), shadow=5),
        split((3, 1.0)),
        split((1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)),  # sums to 1 only within rounding
        {"type": "bandit", "versions": [3, 4, 5]},
        {
            "type": "bandit",
            "versions": [3, 4],
            "alpha0": 0.5,
            "beta0": 20,
            "discount": 0.999,
            "min_exploration": 0.05,
            "shadow": 6,
        },
    ],
)
def test_valid_policies_round_trip_through_json(data: dict[str, Any]) -> None:
    policy = parse_policy(data)
    assert parse_policy(policy.model_dump(mode="json")) == policy
    assert ROUTING_POLICY.validate_json(ROUTING_POLICY.dump_json(policy)) == policy


def test_the_discriminator_picks_the_class_and_defaults_are_documented() -> None:
    assert isinstance(parse_policy({"type": "single", "alias": "staging"}), SinglePolicy)
    assert isinstance(parse_policy(split((1, 1.0))), SplitPolicy)
    bandit = parse_policy({"type": "bandit", "versions": [1, 2]})
    assert isinstance(bandit, BanditPolicy)
    assert (bandit.alpha0, bandit.beta0, bandit.discount, bandit.min_exploration) == (1.0, 1.0, None, 0.0)
    assert SinglePolicy(alias="production") == DEFAULT_POLICY
    schema = ROUTING_POLICY.json_schema()
    assert schema["discriminator"]["propertyName"] == "type"
    assert schema["$defs"]["SplitPolicy"]["properties"]["weights"]["minItems"] == 1
    assert schema["$defs"]["BanditPolicy"]["properties"]["versions"]["minItems"] == 2


def test_policies_are_frozen() -> None:
    policy = parse_policy(split((1, 0.5), (2, 0.5)))
    with pytest.raises(ValidationError):
        policy.shadow = 3  # type: ignore[misc]
    assert hash(policy) == hash(parse_policy(split((1, 0.5), (2, 0.5))))


def test_weights_must_sum_to_one() -> None:
    assert problems(split((3, 0.9), (4, 0.05))) == [
        (["weights"], "the weights sum to 0.95, not 1 (within 1e-09)")
    ]
    assert problems(split((3, 0.9), (4, 0.1 + 2e-9)))[0][0] == ["weights"]
    parse_policy(split((3, 0.9), (4, 0.1 + 5e-10)))  # within the tolerance


def test_a_version_listed_twice_is_named_with_both_places() -> None:
    assert problems(split((3, 0.5), (4, 0.25), (3, 0.25))) == [
        (
            ["weights"],
            "version 3 is listed twice (weights[0].version and weights[2].version); list each version once",
        )
    ]
    assert problems({"type": "bandit", "versions": [7, 8, 7]}) == [
        (["versions"], "version 7 is listed twice (versions[0] and versions[2]); list each version once")
    ]


def test_each_bad_field_is_reported_at_its_path() -> None:
    found = problems(split((0, 0.5), (4, 1.5)))
    assert [loc for loc, _ in found] == [["weights", 0, "version"], ["weights", 1, "weight"]]
    found = problems(split((1, float("nan"))))
    assert found == [(["weights", 0, "weight"], "Input should be a finite number")]
    found = problems(
        {
            "type": "bandit",
            "versions": [1, 2],
            "discount": 0,
            "min_exploration": 0.5,
            "alpha0": -1,
            "colour": "red",
        }
    )
    assert sorted(loc[0] for loc, _ in found) == ["alpha0", "colour", "discount", "min_exploration"]
    assert problems({"type": "bandit", "versions": [1, 2], "discount": 1.5})[0][0] == ["discount"]
    parse_policy({"type": "bandit", "versions": [1, 2], "discount": 1})  # 1: no forgetting


def test_empty_and_one_armed_lists_are_refused() -> None:
    assert problems(split()) == [(["weights"], "a split names at least one version")]
    assert problems({"type": "bandit", "versions": [1]}) == [
        (["versions"], "a bandit needs at least two versions (one version is a single policy)")
    ]
    assert problems(split(*((v, 0.05) for v in range(1, 21))))[0][0] == ["weights"]  # more than 10


def test_a_single_policy_names_exactly_one_target() -> None:
    assert problems({"type": "single"}) == [([], "a single policy names exactly one of alias or version")]
    assert problems({"type": "single", "alias": "production", "version": 2})[0][0] == []
    assert problems({"type": "single", "alias": "Production"})[0][0] == ["alias"]


@pytest.mark.parametrize(
    "data",
    [
        {"type": "single", "version": 3, "shadow": 3},
        split((3, 0.5), (4, 0.5), shadow=4),
        split((3, 1.0), (4, 0.0), shadow=4),  # listed with weight 0 is still listed
        {"type": "bandit", "versions": [3, 4], "shadow": 3},
    ],
)
def test_the_shadow_is_never_a_served_version(data: dict[str, Any]) -> None:
    (loc, message), *_ = problems(data)
    assert loc == ["shadow"]
    assert message.startswith(f"version {data['shadow']} is served by this policy")


def test_unknown_type_and_the_message_lists_every_problem() -> None:
    assert problems({"type": "canary"})[0][1].startswith("Input tag 'canary' found using 'type'")
    with pytest.raises(Invalid) as caught:
        parse_policy(split((3, 0.9), (4, 0.05), shadow=0))
    assert caught.value.message == (
        "invalid routing policy: weights: the weights sum to 0.95, not 1 (within 1e-09); "
        "shadow: Input should be greater than or equal to 1"
    )


def test_named_and_served_versions() -> None:
    assert parse_policy(split((3, 1.0), (4, 0.0), shadow=5)).named_versions == (3, 4, 5)
    assert parse_policy(split((3, 1.0), (4, 0.0), shadow=5)).served_versions == (3,)
    assert parse_policy({"type": "bandit", "versions": [2, 1], "shadow": 9}).named_versions == (2, 1, 9)
    assert SinglePolicy(alias="production", shadow=4).named_versions == (4,)
    assert SinglePolicy(version=2).served_versions == (2,)
