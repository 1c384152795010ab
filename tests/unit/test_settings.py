"""Settings come from the environment variables their aliases name, validated at cold start."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlops_core.config.settings import CoreSettings, InferenceSettings


def test_values_come_from_the_environment_and_are_coerced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTIFACTS_BUCKET", "artifacts-bucket")
    monkeypatch.setenv("METADATA_TABLE", "metadata-table")
    monkeypatch.setenv("ALIAS_CACHE_TTL_SECONDS", "2.5")
    monkeypatch.setenv("MAX_BATCH_SIZE", "50")
    settings = InferenceSettings.from_environment()
    assert (settings.artifacts_bucket, settings.metadata_table) == ("artifacts-bucket", "metadata-table")
    assert (settings.alias_cache_ttl_seconds, settings.max_batch_size, settings.model_cache_size) == (
        2.5,
        50,
        8,
    )


def test_a_missing_or_bad_variable_is_named_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METADATA_TABLE", raising=False)
    monkeypatch.setenv("ARTIFACTS_BUCKET", "artifacts-bucket")
    monkeypatch.setenv("MAX_BATCH_SIZE", "0")
    with pytest.raises(ValidationError) as raised:
        InferenceSettings.from_environment()
    problems = {(e["loc"][0], e["type"]) for e in raised.value.errors()}
    assert problems == {("METADATA_TABLE", "missing"), ("MAX_BATCH_SIZE", "greater_than_equal")}


def test_keyword_arguments_override_the_environment_and_settings_are_frozen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARTIFACTS_BUCKET", "from-environment")
    settings = CoreSettings.from_environment(ARTIFACTS_BUCKET="from-argument", METADATA_TABLE="table")
    assert settings.artifacts_bucket == "from-argument"
    with pytest.raises(ValidationError):
        settings.artifacts_bucket = "changed"  # type: ignore[misc]
