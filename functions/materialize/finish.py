"""Partitioned materialization, step FinishMaterialization: the Map's result files -> the
run's one record (counts, per-object failures, duration), the view's STATE, the lease
released; also run when the Map failed as a whole (the record says why)."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import MaterializeSettings
from mlops_core.features.online import OnlineStore
from mlops_core.features.partitions import FinishRequest, PartitionedRuns
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.features.run_metrics import NAMESPACE, emit_run
from mlops_core.features.service import FeatureStoreService, record_summary
from mlops_core.storage.dynamo import KeyedTable, MetadataTable
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)
settings = MaterializeSettings.from_environment()
service = FeatureStoreService(
    FeatureViewRepository(MetadataTable(settings.metadata_table)),
    OnlineStore(KeyedTable(settings.features_table, what="online feature store")),
    ArtifactStore(settings.artifacts_bucket),
    publisher=EventPublisher(settings.event_bus_name),
)
partitions = PartitionedRuns(None, single_run_max_bytes=settings.single_run_max_bytes)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    request = FinishRequest.model_validate(event)
    logger.append_keys(view=request.run.view, run_id=request.run.run_id)
    record = partitions.finish(service, request)
    emit_run(record, logger)
    return record_summary(record)
