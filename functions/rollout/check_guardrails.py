"""Rollout step CheckGuardrails: judge the step's window against production; the verdict
(next, hold, promote, rollback) picks the workflow's next state."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import RolloutStepSettings
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.rollout.entities import WorkflowState
from mlops_core.routing.rollout.steps import RolloutSteps
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
settings = RolloutStepSettings.from_environment()
table = MetadataTable(settings.metadata_table)
# It only reads the registry and writes the rollout's record: nothing to publish.
steps = RolloutSteps(table, registry=ModelRegistry(table, ArtifactStore(settings.artifacts_bucket)))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    state = WorkflowState.model_validate(event)
    logger.append_keys(model=state.model_name, rollout_id=state.rollout_id)
    result = steps.check(state.model_name, state.rollout_id, state.step, state.holds)
    logger.info("rollout step checked", extra=result)
    return result
