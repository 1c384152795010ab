"""The EMF metrics and the log line of one materialization run (the materialize function's
runs and the partitioned workflow's last step emit the same)."""

from __future__ import annotations

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from mlops_core.features.entities import MaterializationRecord
from mlops_core.features.service import record_summary

NAMESPACE = "ServerlessMLOps"


def view_metric(view: str, name: str, unit: MetricUnit, value: float) -> None:
    """One EMF metric with the view as its dimension (Powertools' single_metric holds one)."""
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        metric.add_dimension(name="view", value=view)


def emit_run(record: MaterializationRecord, logger: Logger) -> None:
    view_metric(record.view, "FeatureItemsWritten", MetricUnit.Count, record.items_written)
    view_metric(record.view, "FeatureRowsRead", MetricUnit.Count, record.rows_read)
    view_metric(record.view, "FeatureRowsRejected", MetricUnit.Count, record.rows_rejected)
    if record.status == "failed":
        view_metric(record.view, "MaterializationFailures", MetricUnit.Count, 1)
    logger.info("materialization", extra=record_summary(record))
