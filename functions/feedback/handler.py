"""Feedback function: ``POST /feedback`` (API key), a reward or a label on predictions.

Thin entry point over ``mlops_core.feedback.service``. One feedback is answered with its
outcome, or with the error that refused it (404, 409 with Retry-After, 422, 503); a batch
(``{"feedback": [...]}``) with 200 and one outcome per item, each with its own ``status``.
A retried feedback is answered 200 with the outcome recorded the first time
(``duplicate: true``), and changes nothing.
"""

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from mlops_core.config.observability import count_errors, make_tracer
from mlops_core.config.settings import FeedbackSettings
from mlops_core.errors import MlopsError
from mlops_core.feedback.prediction_log import PredictionLog
from mlops_core.feedback.requests import MAX_FEEDBACK_PER_CALL, FeedbackRequest
from mlops_core.feedback.service import FeedbackOutcome, FeedbackService
from mlops_core.http import item_error, resolve, responses, rest_app
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.storage.dynamo import MetadataTable

logger = Logger()
tracer = make_tracer()
metrics = Metrics(namespace="ServerlessMLOps")
app = rest_app(logger)

settings = FeedbackSettings.from_environment()
service = FeedbackService(
    PredictionLog(MetadataTable(settings.predictions_table, what="prediction log")),
    RegistryLookup(MetadataTable(settings.metadata_table)),
    capture_delay_seconds=settings.capture_delay_seconds,
    clock_skew_seconds=settings.clock_skew_seconds,
)


class FeedbackResult(BaseModel):
    """The outcome of one feedback: what is recorded (status 200), or why nothing was."""

    prediction_id: str
    status: int = Field(
        description="200 recorded (now, or before: see duplicate); 404 unknown or expired prediction; "
        "409 not captured yet (retry after retry_after_seconds); 422 a label that is not one of the "
        "model's classes (or not a number, for a regression model); 503 a dependency failed (retry)"
    )
    duplicate: bool | None = Field(
        default=None,
        description="200: true if feedback had been recorded for this prediction before; the fields "
        "below are then the original's, and nothing changed",
    )
    matches_original: bool | None = Field(
        default=None, description="200: whether this request's reward or label is the one recorded"
    )
    model_name: str | None = None
    model_version: int | None = Field(
        default=None, description="The version that served the prediction: the one the reward is credited to"
    )
    reward: int | None = Field(
        default=None, description="0 or 1, as given or derived from the label; null for a regression label"
    )
    label: Any = Field(default=None, description="The label recorded (as the model's classes spell it)")
    prediction: Any = Field(default=None, description="What the model predicted")
    recorded_at_ms: int | None = Field(default=None, description="When the feedback was recorded (Unix ms)")
    message: str | None = Field(default=None, description="Not 200: what went wrong")
    code: str | None = Field(default=None, description="Not 200: as ErrorBody's code")
    detail: list[dict[str, Any]] | None = Field(default=None, description="Not 200: as ErrorBody's detail")
    retry_after_seconds: int | None = Field(default=None, description="409 and 503: when to retry")

    @classmethod
    def of(cls, outcome: FeedbackOutcome) -> "FeedbackResult":
        record = outcome.record
        return cls(
            prediction_id=record.prediction_id,
            status=HTTPStatus.OK.value,
            duplicate=outcome.duplicate,
            matches_original=outcome.matches_original,
            model_name=record.model_name,
            model_version=record.model_version,
            reward=None if record.reward is None else int(record.reward),
            label=outcome.shown_label,
            prediction=outcome.shown_prediction,
            recorded_at_ms=record.at_ms,
        )


class FeedbackBatchResponse(BaseModel):
    """A batch's outcomes: always 200, each item with its own status."""

    results: list[FeedbackResult] = Field(description="One per item, in the order sent")
    recorded: int = Field(description="Items recorded by this call")
    duplicates: int = Field(description="Items recorded before (answered with the original)")
    failed: int = Field(description="Items not recorded (status other than 200): retry or fix those only")


_RESPONSES = responses((400, 403, 404, 409, 415, 422, 429, 503))
_RESPONSES[200]["description"] = (
    f"One feedback: its outcome. A batch (up to {MAX_FEEDBACK_PER_CALL}): always 200, with a status per item"
)
_RESPONSES[409]["description"] = "The prediction was made moments ago and is not in the log yet: retry"
_RESPONSES[409]["headers"] = {
    "Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}
}


@app.post("/feedback", responses=_RESPONSES)
@tracer.capture_method
def feedback(request: FeedbackRequest) -> FeedbackResult | FeedbackBatchResponse:
    if not request.is_batch:
        try:
            outcome = service.record(request.entries()[0])
        except MlopsError as error:
            _count([error])
            raise  # answered as itself (mlops_core.http)
        _count([outcome])
        return FeedbackResult.of(outcome)
    entries = request.entries()
    results = service.record_each(entries)
    _count(results)
    answered = [
        FeedbackResult(prediction_id=entry.prediction_id, **item_error(result))
        if isinstance(result, MlopsError)
        else FeedbackResult.of(result)
        for entry, result in zip(entries, results, strict=True)
    ]
    return FeedbackBatchResponse(
        results=answered,
        recorded=sum(1 for r in results if isinstance(r, FeedbackOutcome) and not r.duplicate),
        duplicates=sum(1 for r in results if isinstance(r, FeedbackOutcome) and r.duplicate),
        failed=sum(1 for r in results if isinstance(r, MlopsError)),
    )


def _count(results: list[FeedbackOutcome | MlopsError]) -> None:
    outcomes = [r for r in results if isinstance(r, FeedbackOutcome)]
    recorded = sum(1 for o in outcomes if not o.duplicate)
    duplicates = len(outcomes) - recorded
    if recorded:
        metrics.add_metric(name="FeedbackRecorded", unit=MetricUnit.Count, value=recorded)
    if duplicates:
        metrics.add_metric(name="FeedbackDuplicates", unit=MetricUnit.Count, value=duplicates)
    failed = len(results) - len(outcomes)
    if failed:  # unknown, not captured yet, a label outside the classes, a dependency down
        metrics.add_metric(name="FeedbackFailed", unit=MetricUnit.Count, value=failed)
    logger.info("feedback", extra={"recorded": recorded, "duplicates": duplicates, "failed": failed})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    response = resolve(app, event, context)
    count_errors(metrics, response)
    return response
