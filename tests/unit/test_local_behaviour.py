"""The local stack's deliberate deviations from AWS: each one documented, each one doing what
its documentation says."""

from __future__ import annotations

import pytest

from infra.local.dropped_properties import LOCAL_BEHAVIOUR
from infra.local.stack import LOCAL_FUNCTION_ENVIRONMENT, LOCAL_ROLLOUT_MAX_WAIT_SECONDS, ROLLOUT_MAX_WAIT_ENV
from mlops_core.config.settings import RolloutStepSettings


def test_every_local_only_setting_is_documented_and_every_documented_one_is_set() -> None:
    assert set(LOCAL_FUNCTION_ENVIRONMENT) == set(LOCAL_BEHAVIOUR)
    assert f"{LOCAL_ROLLOUT_MAX_WAIT_SECONDS} s" in LOCAL_BEHAVIOUR[ROLLOUT_MAX_WAIT_ENV]


def test_the_local_wait_cap_reaches_the_rollout_steps_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_BUCKET", "bucket")
    monkeypatch.setenv("METADATA_TABLE", "table")
    monkeypatch.delenv(ROLLOUT_MAX_WAIT_ENV, raising=False)
    assert RolloutStepSettings.from_environment().max_wait_seconds is None  # AWS: the bake as asked

    monkeypatch.setenv(ROLLOUT_MAX_WAIT_ENV, LOCAL_FUNCTION_ENVIRONMENT[ROLLOUT_MAX_WAIT_ENV])
    assert RolloutStepSettings.from_environment().max_wait_seconds == LOCAL_ROLLOUT_MAX_WAIT_SECONDS
