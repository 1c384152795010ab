"""One routing decision per policy type: what answers, and the shadow beside it."""

from __future__ import annotations

import numpy as np

from mlops_core.routing import router
from mlops_core.routing.bandit import Arm
from mlops_core.routing.policy import SinglePolicy, parse_policy


def test_route_dispatches_on_the_policy() -> None:
    rng = np.random.default_rng(0)
    single = router.route(SinglePolicy(alias="production", shadow=4), model_name="m", rng=rng)
    assert single == router.Decision(version=None, alias="production", shadow=4)
    assert router.route(SinglePolicy(version=2), model_name="m", rng=rng) == router.Decision(2)
    decision = router.route(
        parse_policy(
            {
                "type": "split",
                "weights": [{"version": 3, "weight": 0.5}, {"version": 4, "weight": 0.5}],
                "shadow": 9,
            }
        ),
        model_name="m",
        rng=rng,
        key="user-1",
    )
    assert decision.version in (3, 4) and decision.shadow == 9 and decision.alias is None
    bandit = parse_policy({"type": "bandit", "versions": [3, 4]})
    # Counts for another version and a missing arm: realigned on the policy's versions.
    arms = [Arm(9, 1e6, 0.0), Arm(4, 1e4, 0.0)]
    assert {router.route(bandit, model_name="m", rng=rng, arms=arms).version for _ in range(50)} == {4}
