"""What the functions log and trace: nothing carried over from an earlier request, and
no payloads in traces."""

from __future__ import annotations

from types import ModuleType

from tests.integration.conftest import call
from tests.support import load_event


def test_log_keys_of_one_request_do_not_leak_into_the_next(
    inference: ModuleType, production_model: int
) -> None:
    assert call(inference, load_event("inference/predict.json"))["statusCode"] == 200
    assert "model" in inference.logger.get_current_keys()  # what predict appended for its own lines

    assert call(inference, load_event("inference/health.json"))["statusCode"] == 200

    keys = inference.logger.get_current_keys()
    assert "model" not in keys and "model_version" not in keys


def test_every_api_function_clears_its_log_state_per_request(
    inference: ModuleType, registry_api: ModuleType
) -> None:
    from functions.feedback import handler as feedback
    from functions.training import api as training_api

    for handler in (inference, registry_api, training_api, feedback):
        handler.logger.append_keys(leftover="from an earlier request")
    call(inference, load_event("inference/health.json"))
    call(registry_api, load_event("registry/list_models.json"))
    call(training_api, load_event("training/list_runs.json"))
    call(feedback, load_event("feedback/reward.json"))
    for handler in (inference, registry_api, training_api, feedback):
        assert "leftover" not in handler.logger.get_current_keys(), handler.__name__
