"""The REST API and the two functions behind it: `inference` and `registry`.

Routes are declared one by one (no greedy proxy), so the template is the complete
list of what the API answers; the local gateway serves exactly these routes.

  GET  /health                                   inference   public
  POST /models/{name}/predict                    inference   API key + usage plan
  GET  /models                                   registry    IAM (SigV4)
  POST /models                                   registry    IAM
  GET  /models/{name}                            registry    IAM
  GET  /models/{name}/versions                   registry    IAM
  POST /models/{name}/versions                   registry    IAM
  GET  /models/{name}/versions/{version}         registry    IAM
  GET  /models/{name}/aliases/{alias}            registry    IAM
  PUT  /models/{name}/aliases/{alias}            registry    IAM
  GET  /models/{name}/routing                    registry    IAM
  PUT  /models/{name}/routing                    registry    IAM
  GET  /models/{name}/routing/history            registry    IAM
  POST /feedback                                 feedback    API key + usage plan (constructs/feedback.py)

Request bodies are validated by the handlers (pydantic), which answer with precise
4xx messages; the API's request validator enforces the declared path parameters. The
same checks therefore apply whether a request comes through API Gateway or through
the local gateway, which invokes the handlers directly.

API Gateway's own answers (no route, missing API key, IAM refusals, throttling, its 5xx)
are shaped by gateway responses (``GATEWAY_ERRORS``) into the functions' ``ErrorBody``,
``{"message", "code"}``; the local gateway renders the same templates from the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Acknowledgment, Duration, Validations, aws_apigateway, aws_events, aws_lambda, aws_logs
from constructs import Construct

from infra.cdk.constructs.functions import ServiceFunction
from infra.cdk.constructs.layers import LayersConstruct
from infra.cdk.constructs.storage import MODELS_PREFIX, StorageConstruct
from mlops_core.storage import keys

STAGE_NAME = "prod"

_IAM = aws_apigateway.AuthorizationType.IAM
_NONE = aws_apigateway.AuthorizationType.NONE


@dataclass(frozen=True)
class SnapStartOption:
    """Lambda SnapStart for the inference function: off by default (see docs/infrastructure.md).

    On, the function snapshots each published version after its init (the handler's hooks
    preload the production version of each model in `models`, comma-separated), and API
    Gateway invokes the `live` alias of the current version: snapshots exist only for
    published versions, never for $LATEST.
    """

    enabled: bool = False
    models: str = ""


@dataclass(frozen=True)
class ApiLimits:
    """Request limits: for the whole stage, and for each predict API key."""

    stage_rate_limit: float = 100.0
    stage_burst_limit: int = 200
    predict_rate_limit: float = 50.0
    predict_burst_limit: int = 100
    predict_quota_per_day: int = 100_000


@dataclass(frozen=True)
class GatewayError:
    """One of API Gateway's own answers, in the functions' ``ErrorBody`` shape.

    ``message`` None keeps API Gateway's message (``$context.error.messageString``, a JSON
    string literal); ``status`` None keeps the status API Gateway gives the situation.
    Gateway response templates only substitute variables (no VTL), so a template is
    valid JSON whatever the message.
    """

    response_type: str  # as CloudFormation spells it: DEFAULT_4XX, INVALID_API_KEY...
    code: str
    message: str | None = None
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def template(self) -> str:
        message = "$context.error.messageString" if self.message is None else json.dumps(self.message)
        return f'{{"message":{message},"code":{json.dumps(self.code)}}}'


#: Every answer API Gateway gives of its own. The two defaults cover the types not listed
#: (authorizer failures, integration failures, configuration errors...). An unknown route
#: or method is MISSING_AUTHENTICATION_TOKEN, which API Gateway also answers to an
#: unsigned request on an IAM route; it is a 404 here, because a wrong path is by far the
#: likelier mistake, and its message names both causes.
GATEWAY_ERRORS: tuple[GatewayError, ...] = (
    GatewayError("DEFAULT_4XX", "client_error"),
    GatewayError("DEFAULT_5XX", "gateway_error"),
    GatewayError(
        "MISSING_AUTHENTICATION_TOKEN",
        "not_found",
        "no route for this method and path "
        "(IAM routes answer this too to a request that is not SigV4-signed)",
        status=404,
    ),
    GatewayError(
        "INVALID_API_KEY", "forbidden", "missing or invalid API key: send it in the x-api-key header"
    ),
    GatewayError("ACCESS_DENIED", "forbidden", "these credentials may not call this route"),
    GatewayError("INVALID_SIGNATURE", "forbidden"),
    GatewayError("EXPIRED_TOKEN", "forbidden"),
    GatewayError("UNAUTHORIZED", "unauthorized"),
    GatewayError("WAF_FILTERED", "forbidden"),
    GatewayError("THROTTLED", "throttled", headers=(("Retry-After", "1"),)),
    GatewayError("QUOTA_EXCEEDED", "quota_exceeded"),
    GatewayError("REQUEST_TOO_LARGE", "request_too_large", "the request is larger than API Gateway's 10 MB"),
    # API Gateway decompresses gzip and deflate bodies itself and answers this to the rest.
    GatewayError(
        "UNSUPPORTED_MEDIA_TYPE",
        "unsupported_media_type",
        "the body's Content-Encoding is not gzip, deflate or identity, or the body is not encoded as it says",
        headers=(("Accept-Encoding", "gzip, deflate, identity"),),
    ),
    GatewayError("BAD_REQUEST_PARAMETERS", "bad_request"),
    GatewayError("BAD_REQUEST_BODY", "bad_request"),
    GatewayError("RESOURCE_NOT_FOUND", "not_found"),
    GatewayError("INTEGRATION_TIMEOUT", "gateway_timeout"),
)


def _access_log_format() -> aws_apigateway.AccessLogFormat:
    """One JSON object per request: who called what, the outcome, and where time went."""
    field = aws_apigateway.AccessLogField
    return aws_apigateway.AccessLogFormat.custom(
        json.dumps(
            {
                "requestId": field.context_request_id(),
                "extendedRequestId": field.context_extended_request_id(),
                "xrayTraceId": field.context_xray_trace_id(),
                "requestTime": field.context_request_time(),
                "httpMethod": field.context_http_method(),
                "resourcePath": field.context_resource_path(),
                "path": field.context_path(),
                "protocol": field.context_protocol(),
                "status": field.context_status(),
                "responseLength": field.context_response_length(),
                "responseLatency": field.context_response_latency(),
                "integrationStatus": field.context_integration_status(),
                "integrationLatency": field.context_integration_latency(),
                "errorMessage": field.context_error_message(),
                "integrationErrorMessage": field.context_integration_error_message(),
                "sourceIp": field.context_identity_source_ip(),
                "userAgent": field.context_identity_user_agent(),
                "caller": field.context_identity_caller(),
                "userArn": field.context_identity_user_arn(),
                "apiKeyId": field.context_identity_api_key_id(),
            }
        )
    )


class ApiConstruct(Construct):
    """The `inference` and `registry` functions and the REST API that routes to them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        storage: StorageConstruct,
        event_bus: aws_events.IEventBus,
        layers: LayersConstruct,
        functions_dir: Path,
        log_retention: aws_logs.RetentionDays,
        limits: ApiLimits,
        snapstart: SnapStartOption | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        snapstart = snapstart or SnapStartOption()

        environment = {
            "ARTIFACTS_BUCKET": storage.artifacts_bucket.bucket_name,
            "METADATA_TABLE": storage.metadata_table.table_name,
        }
        self.inference = ServiceFunction(
            self,
            "Inference",
            service_name="inference",
            description="Serves predictions from registered ONNX models (and the health check).",
            code_dir=functions_dir / "inference",
            handler="handler.lambda_handler",
            layers=[layers.core, layers.serving],
            memory_size=1024,
            timeout=Duration.seconds(10),
            environment=environment | ({"SNAPSTART_MODELS": snapstart.models} if snapstart.enabled else {}),
            log_retention=log_retention,
            snap_start=aws_lambda.SnapStartConf.ON_PUBLISHED_VERSIONS if snapstart.enabled else None,
        )
        #: What API Gateway invokes: the function, or with SnapStart the `live` alias of its current version.
        self.inference_target: aws_lambda.IFunction = self.inference.function
        self.inference_alias: aws_lambda.Alias | None = None
        if snapstart.enabled:
            self.inference_alias = aws_lambda.Alias(
                self, "InferenceLive", alias_name="live", version=self.inference.function.current_version
            )
            self.inference_target = self.inference_alias
        storage.grant_metadata_read(self.inference.role)
        storage.grant_prefix_read(self.inference.role, MODELS_PREFIX)

        self.registry = ServiceFunction(
            self,
            "Registry",
            service_name="registry",
            description="Model registry: models, versions, artifacts and aliases.",
            code_dir=functions_dir / "registry",
            handler="handler.lambda_handler",
            layers=[layers.core, layers.serving],
            memory_size=1024,
            timeout=Duration.seconds(29),  # API Gateway answers 504 after 29 s anyway
            environment={**environment, "EVENT_BUS_NAME": event_bus.event_bus_name},
            log_retention=log_retention,
        )
        storage.grant_metadata_read_write(self.registry.role)
        event_bus.grant_put_events_to(self.registry.role)
        # It reads what users upload anywhere in the bucket, but writes models only.
        # It reads what it registers (uploads, training candidates, existing artifacts),
        # lists those prefixes (a missing key is a 404, not a 403) and writes models/ only.
        for prefix in keys.REGISTRABLE_PREFIXES:
            storage.grant_prefix_read(self.registry.role, prefix)
            storage.grant_prefix_list(self.registry.role, prefix)
        storage.grant_prefix_write(self.registry.role, MODELS_PREFIX)

        self.access_log_group = aws_logs.LogGroup(self, "AccessLogs", retention=log_retention)
        self.rest_api = aws_apigateway.RestApi(
            self,
            "RestApi",
            rest_api_name="serverless-mlops",
            description="Serverless MLOps: predictions (API key) and the model registry (IAM).",
            endpoint_types=[aws_apigateway.EndpointType.REGIONAL],
            # Execution logging (below) needs the account-level CloudWatch role.
            cloud_watch_role=True,
            deploy_options=aws_apigateway.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=limits.stage_rate_limit,
                throttling_burst_limit=limits.stage_burst_limit,
                access_log_destination=aws_apigateway.LogGroupLogDestination(self.access_log_group),
                access_log_format=_access_log_format(),
                tracing_enabled=True,
                metrics_enabled=True,
                logging_level=aws_apigateway.MethodLoggingLevel.ERROR,
                # Full request/response logging would copy model inputs into CloudWatch.
                data_trace_enabled=False,
            ),
        )
        # RestApi adds an `Endpoint` output of its own; the stack's `ApiUrl` is the documented one.
        self.rest_api.node.try_remove_child("Endpoint")
        self.request_validator = self.rest_api.add_request_validator(
            "RequestValidator",
            validate_request_parameters=True,
            validate_request_body=True,
        )

        inference = aws_apigateway.LambdaIntegration(self.inference_target, allow_test_invoke=False)
        registry = aws_apigateway.LambdaIntegration(self.registry.function, allow_test_invoke=False)

        root = self.rest_api.root
        health = root.add_resource("health")
        models = root.add_resource("models")
        model = models.add_resource("{name}")
        predict = model.add_resource("predict")
        versions = model.add_resource("versions")
        version = versions.add_resource("{version}")
        alias = model.add_resource("aliases").add_resource("{alias}")
        promote = version.add_resource("promote")
        card = version.add_resource("card")
        rollback = model.add_resource("rollback")
        audit = model.add_resource("audit")
        policy = model.add_resource("policy")
        routing = model.add_resource("routing")
        routing_history = routing.add_resource("history")
        feature_policy = model.add_resource("feature-policy")

        self.health_method = self._method(health, "GET", inference, _NONE)
        self.predict_method = self._method(predict, "POST", inference, _NONE, api_key_required=True)
        for resource, http_method in (
            (models, "GET"),
            (models, "POST"),
            (model, "GET"),
            (versions, "GET"),
            (versions, "POST"),
            (version, "GET"),
            (alias, "GET"),
            (alias, "PUT"),
            (model, "PATCH"),
            (version, "PATCH"),
            (promote, "POST"),
            (card, "GET"),
            (rollback, "POST"),
            (audit, "GET"),
            (policy, "PUT"),
            (routing, "GET"),
            (routing, "PUT"),
            (routing_history, "GET"),
            (feature_policy, "GET"),
            (feature_policy, "PUT"),
        ):
            self._method(resource, http_method, registry, _IAM)

        Validations.of(self.health_method).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG4",
                reason="GET /health is a public liveness probe for load balancers and uptime "
                "checks; it returns no data and is throttled by the stage limits.",
            )
        )
        Validations.of(self.predict_method).acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG4",
                reason="Predict is authorised by an API key bound to a usage plan (throttle and "
                "daily quota), the access model the design specifies for application teams.",
            )
        )

        self.predict_api_key = self.rest_api.add_api_key(
            "PredictApiKey", description="API key for POST /models/{name}/predict and POST /feedback"
        )
        self.predict_usage_plan = self.rest_api.add_usage_plan(
            "PredictUsagePlan",
            name="serverless-mlops-predict",
            description="Throttle and daily quota for prediction clients",
            throttle=aws_apigateway.ThrottleSettings(
                rate_limit=limits.predict_rate_limit, burst_limit=limits.predict_burst_limit
            ),
            quota=aws_apigateway.QuotaSettings(
                limit=limits.predict_quota_per_day, period=aws_apigateway.Period.DAY
            ),
        )
        self.predict_usage_plan.add_api_stage(stage=self.rest_api.deployment_stage)
        self.predict_usage_plan.add_api_key(self.predict_api_key)

        for error in GATEWAY_ERRORS:
            self.rest_api.add_gateway_response(
                error.response_type.title().replace("_", ""),
                type=aws_apigateway.ResponseType.of(error.response_type),
                status_code=str(error.status) if error.status else None,
                templates={"application/json": error.template},
                response_headers={name: f"'{value}'" for name, value in error.headers} or None,
            )

        self._acknowledge_api_wide_findings()

    def add_api_key_route(
        self, function: aws_lambda.IFunction, path: str, http_method: str, *, reason: str
    ) -> aws_apigateway.Method:
        """A route of another domain's function for application clients: the predict API key
        and its usage plan (the plan covers the whole stage). ``reason`` says why an API key,
        not IAM, authorises it (cdk-nag APIG4)."""
        integration = aws_apigateway.LambdaIntegration(function, allow_test_invoke=False)
        resource = self.rest_api.root.resource_for_path(path)
        method = self._method(resource, http_method, integration, _NONE, api_key_required=True)
        Validations.of(method).acknowledge(Acknowledgment(id="AwsSolutions-APIG4", reason=reason))
        return method

    def add_iam_routes(self, function: aws_lambda.IFunction, routes: list[tuple[str, str]]) -> None:
        """IAM-authenticated routes (path, method) of another domain's function."""
        integration = aws_apigateway.LambdaIntegration(function, allow_test_invoke=False)
        for path, http_method in routes:
            self._method(self.rest_api.root.resource_for_path(path), http_method, integration, _IAM)

    def _method(
        self,
        resource: aws_apigateway.IResource,
        http_method: str,
        integration: aws_apigateway.Integration,
        authorization_type: aws_apigateway.AuthorizationType,
        *,
        api_key_required: bool = False,
    ) -> aws_apigateway.Method:
        path_parameters = [
            part[1:-1] for part in resource.path.split("/") if part.startswith("{") and part.endswith("}")
        ]
        return resource.add_method(
            http_method,
            integration,
            authorization_type=authorization_type,
            api_key_required=api_key_required,
            request_validator=self.request_validator,
            request_parameters={f"method.request.path.{name}": True for name in path_parameters},
        )

    def _acknowledge_api_wide_findings(self) -> None:
        acknowledge = Validations.of(self.rest_api).acknowledge
        acknowledge(
            Acknowledgment(
                id="AwsSolutions-COG4",
                reason="No Cognito user pool by design: registry routes use IAM (SigV4) for ML "
                "engineers and pipelines, predict uses API keys with a usage plan.",
            )
        )
        acknowledge(
            Acknowledgment(
                id="AwsSolutions-APIG3",
                reason="No WAF web ACL by default (fixed monthly cost per ACL and rule); stage "
                "throttling, usage-plan quotas and IAM/API-key auth bound abuse. Attach a web ACL "
                "to the prod stage where the threat model needs one.",
            )
        )
        acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AmazonAPIGatewayPushToCloudWatchLogs]",
                reason="API Gateway's account-level CloudWatch role uses the AWS managed policy "
                "designed for it; execution logging cannot be enabled without such a role.",
            )
        )
