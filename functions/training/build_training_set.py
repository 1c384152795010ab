"""Training step BuildTrainingSet: a run on feature views gets its dataset here, joined
point-in-time from its labels and the views' offline sources (docs/features.md).

Fails with ``InvalidTrainingRequest`` (the Step Functions error name): an unknown view, labels
that cannot be read, a source that does not match its view, or more label rows lacking
features than the request's policy allows (the run record holds the report).
"""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import core_settings
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.tracking import RunTracker
from mlops_core.training.training_sets import build_training_set_step

logger = Logger()
settings = core_settings()
store = ArtifactStore(settings.artifacts_bucket)
table = MetadataTable(settings.metadata_table)
tracker = RunTracker(table)
views = FeatureViewRepository(table)


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"))
    request = build_training_set_step(event, store, views, tracker)
    logger.info(
        "training set built",
        extra={
            "views": [v["name"] for v in request["feature_view_versions"]],
            "dataset": request["dataset_key"],
        },
    )
    return request
