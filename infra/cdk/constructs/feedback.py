"""Feedback: the function behind `POST /feedback` (API key), which records a reward or a
label on a captured prediction, once, in the prediction log.

The rewards updater (a consumer of the prediction log's stream) counts what it records;
this construct only writes the feedback.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Duration, aws_apigateway, aws_logs
from constructs import Construct

from infra.cdk.constructs.api import ApiConstruct
from infra.cdk.constructs.capture import CaptureConstruct
from infra.cdk.constructs.functions import ServiceFunction
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import StorageConstruct
from mlops_core.feedback.service import DEFAULT_CAPTURE_DELAY_SECONDS

FEEDBACK_ROUTE = ("/feedback", "POST")


class FeedbackConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        capture: CaptureConstruct,
        api: ApiConstruct,
        layers: LayersConstruct,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
    ) -> None:
        super().__init__(scope, construct_id)

        self.function = ServiceFunction(
            self,
            "Feedback",
            service_name="feedback",
            description="Records feedback (a reward or a label) on captured predictions, once each.",
            code_dir=functions_dir / "feedback",
            handler="handler.lambda_handler",
            layers=[layers.core],
            memory_size=512,
            timeout=Duration.seconds(29),  # a batch of 100; API Gateway stops waiting at 29 s anyway
            environment={
                "METADATA_TABLE": storage.metadata_table.table_name,
                "PREDICTIONS_TABLE": capture.predictions_table.table_name,
                "FEEDBACK_CAPTURE_DELAY_SECONDS": str(DEFAULT_CAPTURE_DELAY_SECONDS),
            },
            log_retention=log_retention,
        )
        capture.grant_feedback_write(self.function.role)
        # A label is checked against the classes of the version that served the prediction.
        storage.grant_metadata_read(self.function.role, query=False)

        path, http_method = FEEDBACK_ROUTE
        self.method: aws_apigateway.Method = api.add_api_key_route(
            self.function.function,
            path,
            http_method,
            reason="Feedback is sent by the application teams that call predict, with the same API "
            "key and usage plan (throttle and daily quota), the access model the design specifies.",
        )
