"""Training step SearchRound (Optuna's search): tell the last round's results, ask the next
round's trials, or hand the best trial to Evaluate once the budget is spent."""

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.config.settings import core_settings
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.search_steps import search_round
from mlops_core.training.tracking import RunTracker

logger = Logger()
settings = core_settings()
store = ArtifactStore(settings.artifacts_bucket)
tracker = RunTracker(MetadataTable(settings.metadata_table))


@logger.inject_lambda_context(clear_state=True)
def lambda_handler(event: dict[str, Any], _context: LambdaContext) -> dict[str, Any]:
    logger.append_keys(run_id=event.get("run_id"))
    state = search_round(event, store, tracker)
    if "best" in state:
        logger.info("search done", extra={"best": state["best"]["candidate_id"]})
    else:
        logger.info(
            "search round asked", extra={"round": state["search_round"], "trials": len(state["candidates"])}
        )
    return state
