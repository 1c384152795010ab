"""Console function: the model console's pages as HTML (inline SVG, no script).

Two callers, one renderer (``mlops_core.console.pages``):

- **CloudWatch custom widgets** (the event has ``widgetContext``): the widget's parameters
  (and a ``cwdb-action`` call's JSON) arrive at the top level of the event; the answer is
  the HTML string, and links call this function again (its own ARN) to replace the widget's
  content. ``{"describe": true}`` answers the widget's documentation (Markdown).
- **The local stack** (``/_local/console/``): ``{"local_console": {"base": ..., "params": {...}}}``;
  the answer is ``{"statusCode", "headers", "body"}`` with a whole HTML document and plain links.

Reads only: registry, training runs, routing, drift runs and drift reports, batch jobs.
"""

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from mlops_core.batch.repository import BatchJobRepository
from mlops_core.config.observability import make_tracer
from mlops_core.config.settings import core_settings
from mlops_core.console.batch_jobs import RecordedBatchJobs
from mlops_core.console.links import HrefLinks, Links, WidgetLinks
from mlops_core.console.pages import Console, page_html
from mlops_core.monitoring.service import MonitoringService
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.service import RoutingService
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.tracking import RunTracker

logger = Logger()
tracer = make_tracer()
metrics = Metrics(namespace="ServerlessMLOps")

settings = core_settings()
table = MetadataTable(settings.metadata_table)
store = ArtifactStore(settings.artifacts_bucket)  # read here: drift-reports/ only
runs = RunTracker(table)
registry = ModelRegistry(table, store, None, runs=runs.get_with_candidates)
console = Console(
    registry,
    runs,
    RoutingService(table, registry=registry),
    MonitoringService(table, registry=registry),
    store,
    batch=RecordedBatchJobs(BatchJobRepository(table)),
)

DESCRIBE = """## MLOps model console
Pages of the model console (HTML, no script). Parameters:
```
page: models | model | runs | run | routing | drift | batch
model: <model name>      (every page but models and run)
version: <n>             (model: the card shown)
run: <training run id>   (run)
drift_run: <drift run id> (drift: the report shown; default the latest)
sort: <column>, order: asc | desc  (runs, run)
```
Example: `{"page": "runs", "model": "breast-cancer"}`
"""

#: Keys of a widget event that are CloudWatch's own, not the page's parameters.
_WIDGET_KEYS = {"widgetContext", "describe"}


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    if event.get("describe"):
        return DESCRIBE
    local = event.get("local_console")
    if isinstance(local, dict):
        asked = local.get("params")
        params: dict[str, Any] = asked if isinstance(asked, dict) else {}
        links: Links = HrefLinks(str(local.get("base") or "/_local/console/"))
    else:
        params = {k: v for k, v in event.items() if k not in _WIDGET_KEYS}
        links = WidgetLinks(context.invoked_function_arn)
    page = console.render(params, links)
    logger.info("page rendered", extra={"page": params.get("page", "models"), "status": page.status})
    metrics.add_metric(name="ConsolePages", unit=MetricUnit.Count, value=1)
    if page.status >= 500:
        metrics.add_metric(name="ConsolePageFailures", unit=MetricUnit.Count, value=1)
    if isinstance(local, dict):
        return {
            "statusCode": page.status,
            "headers": {"Content-Type": "text/html; charset=utf-8"},
            "body": page_html(page, standalone=True),
        }
    return page_html(page, standalone=False)
