"""Training step SelectBest: the candidate with the best validation score."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import core_settings
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.training.steps import select_best
from mlops_core.training.tracking import RunTracker

logger = Logger()
tracker = RunTracker(MetadataTable(core_settings().metadata_table))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"))
    state = select_best(event, tracker)
    logger.info("best candidate", extra={"candidate": state["best"]["candidate_id"]})
    return state
