"""Batch step ScoreObject (the Distributed Map's item processor): one input object scored
with the job's pinned version through the real-time path's ``Predictor`` (ONNX session,
checksum verified on load, kept per container), its predictions and refused rows written."""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.batch.entities import ScoreItem
from mlops_core.batch.service import BatchJobs
from mlops_core.config.settings import BatchScoreSettings
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.serving.predictor import Predictor
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore

logger = Logger()
metrics = Metrics()
settings = BatchScoreSettings.from_environment()
table = MetadataTable(settings.metadata_table)
store = ArtifactStore(settings.artifacts_bucket)
jobs = BatchJobs(table, store)
# Versions are pinned: no alias is ever resolved here, so the alias TTL does not matter.
predictor = Predictor(
    RegistryLookup(table), store, alias_ttl=0, cache_size=settings.model_cache_size, max_batch_size=1
)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    item = ScoreItem.model_validate(event)
    logger.append_keys(job_id=item.job_id, model=item.model_name, version=item.version)
    summary = jobs.score(item, predictor)
    metrics.add_metric(name="BatchRowsScored", unit=MetricUnit.Count, value=summary.scored)
    metrics.add_metric(name="BatchRowsRefused", unit=MetricUnit.Count, value=summary.failed)
    logger.info("object scored", extra={"key": summary.key, "rows": summary.rows, "refused": summary.failed})
    return summary.model_dump(mode="json")
