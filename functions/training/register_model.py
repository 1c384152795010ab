"""Training step RegisterModel: register the winner with lineage to its run."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import EventSettings
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.features.usage import FeatureViewResolver
from mlops_core.registry.service import ModelRegistry
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.steps import register_model
from mlops_core.training.tracking import RunTracker

logger = Logger()
settings = EventSettings.from_environment()
table = MetadataTable(settings.metadata_table)
# The registry announces ModelVersionRegistered (and ModelPromoted for promote_to).
tracker = RunTracker(table)
registry = ModelRegistry(
    table,
    ArtifactStore(settings.artifacts_bucket),
    EventPublisher(settings.event_bus_name),
    runs=tracker.get_with_candidates,
    feature_views=FeatureViewResolver(FeatureViewRepository(table)),
)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"))
    result = register_model(event, registry, tracker)
    logger.info("model registered", extra={"version": result["version"]})
    return result
