"""`mlops routing set` options into policies, and the inference function's routing cache."""

from __future__ import annotations

from typing import Any

import pytest

from infra.cli.routing import PolicyOptionError, describe_policy, policy_from_options
from mlops_core.errors import Unavailable
from mlops_core.routing.policy import parse_policy
from mlops_core.routing.state import ArmsState, StoredRouting
from mlops_core.serving.routing_cache import RoutingCache
from tests.support import FakeClock

NONE: dict[str, Any] = {
    "split": None,
    "bandit": None,
    "alias": None,
    "version": None,
    "shadow": None,
    "discount": None,
    "min_exploration": None,
}


def options(**given: Any) -> dict[str, Any]:
    return policy_from_options(**(NONE | given))


def test_each_option_builds_a_policy_the_server_accepts() -> None:
    built = [
        options(split="3=0.9, v4=0.1", shadow=5),
        options(bandit="3,4", discount=0.999, min_exploration=0.05),
        options(alias="production"),
        options(version=3),
    ]
    assert built[0] == {
        "type": "split",
        "weights": [{"version": 3, "weight": 0.9}, {"version": 4, "weight": 0.1}],
        "shadow": 5,
    }
    for policy in built:
        parse_policy(policy)  # raises if the server would refuse its shape
    assert describe_policy(built[0]) == "split v3 90%, v4 10%; shadow v5"
    assert describe_policy(built[1]) == "bandit over v3, v4, discount 0.999, exploration 5%"


@pytest.mark.parametrize(
    ("given", "option", "fragment"),
    [
        ({}, "--split", "exactly one"),
        ({"split": "3=1", "bandit": "3,4"}, "--bandit", "exactly one"),
        ({"split": "3"}, "--split", "VERSION=WEIGHT"),
        ({"split": "3=lots"}, "--split", "not a weight"),
        ({"bandit": "3,four"}, "--bandit", "not a version"),
        ({"split": "3=1", "discount": 0.9}, "--discount", "--bandit only"),
        ({"split": " , "}, "--split", "comma-separated"),
    ],
)
def test_options_that_make_no_policy_name_the_option_to_fix(
    given: dict[str, Any], option: str, fragment: str
) -> None:
    with pytest.raises(PolicyOptionError, match=fragment) as raised:
        options(**given)
    assert raised.value.option == option


class FlakyRepository:
    def __init__(self) -> None:
        self.reads = 0
        self.fail = False

    def routing(self, name: str) -> StoredRouting | None:
        self.reads += 1
        if self.fail:
            raise Unavailable("metadata table is unreachable")
        return StoredRouting(model_name=name, revision=self.reads)

    def arms(self, name: str) -> ArmsState:
        return ArmsState(model_name=name)


def test_the_cache_rereads_after_its_ttl_and_keeps_a_copy_when_a_read_fails() -> None:
    clock, repository = FakeClock(), FlakyRepository()
    cache = RoutingCache(repository, ttl=10.0, clock=clock)  # type: ignore[arg-type]
    assert cache.policy("m").revision == 1
    assert cache.policy("m").revision == 1 and repository.reads == 1
    clock.advance(10.0)
    assert cache.policy("m").revision == 2
    repository.fail = True
    clock.advance(10.0)
    assert cache.policy("m").revision == 2  # the cached copy keeps serving
    assert repository.reads == 3
    assert cache.policy("m").revision == 2 and repository.reads == 3  # not re-read until the next ttl
    with pytest.raises(Unavailable):
        cache.policy("never-read")  # nothing cached: the failure is the caller's 503


def test_the_summary_table_has_a_cell_per_column() -> None:
    from infra.cli.routing import summary_table

    totals = {"requests": 5, "shadow_requests": 2, "calls": 4, "feedback": 1, "rewarded": 1}
    variant = {
        "version": 3,
        "role": "served",
        "weight": 0.9,
        "totals": totals,
        "reward_rate": 1.0,
        "error_rate": 0.25,
        "p99_ms": 20.0,
        "posterior": {"mean": 0.6, "lower": 0.2, "upper": 0.9, "p_best": 0.7},
    }
    table = summary_table(
        {"variants": [variant, variant | {"weight": None, "error_rate": None, "p99_ms": None}]}
    )
    assert len(table.rows) == 2
    assert table.rows[0][3:6] == ("5 (+2 shadow)", "25.00% of 4", "<= 20")
