"""Partitioned materialization, step MaterializeObject (the Distributed Map's item processor):
one source object of a run materialized with conditional writes and its own watermark
(``mlops_core.features.partitions``). A source that does not match the view is answered as
the object's failure (the run lists it); throttling and timeouts raise (the step's retry)."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import MaterializeSettings
from mlops_core.features.online import OnlineStore
from mlops_core.features.partitions import PartitionedRuns, PartitionItem
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.features.service import FeatureStoreService
from mlops_core.storage.dynamo import KeyedTable, MetadataTable
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
settings = MaterializeSettings.from_environment()
service = FeatureStoreService(
    FeatureViewRepository(MetadataTable(settings.metadata_table)),
    OnlineStore(KeyedTable(settings.features_table, what="online feature store")),
    ArtifactStore(settings.artifacts_bucket),
    workers=settings.write_workers,
)
partitions = PartitionedRuns(None, single_run_max_bytes=settings.single_run_max_bytes)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    item = PartitionItem.model_validate(event)
    logger.append_keys(view=item.view, run_id=item.run_id)
    outcome = partitions.materialize_object(service, item)
    logger.info(
        "object materialized",
        extra={
            "object": outcome.object_key,
            "skipped": outcome.skipped,
            "rows_read": outcome.rows_read,
            "items_written": outcome.items_written,
            "error": outcome.error,
        },
    )
    return outcome.model_dump(mode="json")
