"""The local API Gateway: the template's REST routes, served on localhost.

Routes are read from the synthesized template's ``AWS::ApiGateway::Resource`` and
``AWS::ApiGateway::Method`` resources, so the local stack answers exactly what the
deployed API answers. Each request becomes a REST API (v1) Lambda proxy event for the
integrated function, as API Gateway builds it, and the handler's response becomes the
HTTP response. Like API Gateway, the gateway adds no Content-Type, and decompresses a
body sent with ``Content-Encoding: gzip`` or ``deflate`` before the function sees it
(the header stays in the event); another coding, or a body that does not decompress, is
UNSUPPORTED_MEDIA_TYPE (415), and a body past the 10 MB payload limit, before or after
decompression, REQUEST_TOO_LARGE (413), both before routing.

API Gateway's own answers are rendered from the template's
``AWS::ApiGateway::GatewayResponse`` resources, with the status and message API Gateway
gives each situation: an unknown route or method is MISSING_AUTHENTICATION_TOKEN (403,
"Missing Authentication Token"), a missing or wrong API key on a key-protected method
INVALID_API_KEY (403, "Forbidden"), and a handler that raises or returns something that
is not a proxy result a 5xx (502, "Internal server error"); a type the template does not
configure falls back to DEFAULT_4XX/DEFAULT_5XX, then to API Gateway's ``{"message"}``.
Throttling and quotas are not modelled locally.

IAM-authenticated routes are not SigV4-verified locally: the caller is recorded as the
local user (``LOCAL_PRINCIPAL``).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

LOGGER = logging.getLogger("mlops.local.gateway")
LOCAL_PRINCIPAL = "arn:aws:sts::123456789012:assumed-role/LocalDeveloper/local"
Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # "/models/{name}/predict"
    function: str  # logical id of the integrated Lambda function
    authorization: str  # NONE | AWS_IAM | ...
    api_key_required: bool

    @property
    def pattern(self) -> re.Pattern[str]:
        regex = re.sub(r"\\\{([A-Za-z0-9_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.resource))
        return re.compile(f"^{regex}$")


def _function_of(integration: dict[str, Any]) -> str | None:
    """The logical id of the Lambda function an AWS_PROXY integration URI points at."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "Fn::GetAtt" in node
                and isinstance(node["Fn::GetAtt"], list)
                and node["Fn::GetAtt"][1] == "Arn"
            ):
                found.append(node["Fn::GetAtt"][0])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(integration.get("Uri"))
    return found[0] if found else None


def routes_from_template(template: dict[str, Any]) -> list[Route]:
    resources = template["Resources"]
    paths: dict[str, str] = {}

    def path_of(logical_id: str) -> str:
        if logical_id in paths:
            return paths[logical_id]
        properties = resources[logical_id]["Properties"]
        parent = properties["ParentId"]
        parent_path = path_of(parent["Ref"]) if "Ref" in parent else ""
        paths[logical_id] = f"{parent_path}/{properties['PathPart']}"
        return paths[logical_id]

    routes = []
    for resource in resources.values():
        if resource["Type"] != "AWS::ApiGateway::Method":
            continue
        properties = resource["Properties"]
        integration = properties.get("Integration", {})
        function = _function_of(integration)
        if integration.get("Type") != "AWS_PROXY" or function is None:
            continue
        target = properties["ResourceId"]
        path = path_of(target["Ref"]) if "Ref" in target else "/"
        routes.append(
            Route(
                method=properties["HttpMethod"],
                resource=path,
                function=function,
                authorization=properties.get("AuthorizationType", "NONE"),
                api_key_required=bool(properties.get("ApiKeyRequired", False)),
            )
        )
    return sorted(routes, key=lambda r: (r.resource, r.method))


def match(routes: Iterable[Route], method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """The route for a request, its path parameters, and whether the path exists at all."""
    path_exists = False
    for route in routes:
        found = route.pattern.match(path)
        if found:
            path_exists = True
            if route.method == method:
                return route, found.groupdict(), True
    return None, {}, path_exists


def proxy_event(
    route: Route,
    *,
    method: str,
    path: str,
    path_parameters: dict[str, str],
    query: dict[str, list[str]],
    headers: dict[str, str],
    body: bytes,
    source_ip: str,
    api_key: str | None,
    stage: str = "prod",
) -> dict[str, Any]:
    """A REST API (v1) Lambda proxy event, shaped as API Gateway sends it."""
    now = datetime.now(UTC)
    try:
        text: str | None = body.decode("utf-8") if body else None
        encoded = False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    iam = route.authorization == "AWS_IAM"
    identity = {
        "cognitoIdentityPoolId": None,
        "accountId": "123456789012" if iam else None,
        "cognitoIdentityId": None,
        "caller": "LOCALDEVELOPER:local" if iam else None,
        "sourceIp": source_ip,
        "principalOrgId": None,
        "accessKey": None,
        "cognitoAuthenticationType": None,
        "cognitoAuthenticationProvider": None,
        "userArn": LOCAL_PRINCIPAL if iam else None,
        "userAgent": headers.get("User-Agent", ""),
        "user": "LOCALDEVELOPER:local" if iam else None,
        "apiKey": api_key if route.api_key_required else None,
        "apiKeyId": "local" if route.api_key_required else None,
    }
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": route.resource,
            "httpMethod": method,
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "localhost",
            "requestTimeEpoch": int(time.time() * 1000),
            "requestId": str(uuid.uuid4()),
            "identity": identity,
            "domainName": "localhost",
            "apiId": "local",
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


@dataclass(frozen=True)
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


# Gateway response templates only substitute variables; these are the ones rendered here.
_VARIABLE = re.compile(r"\$(context(?:\.[A-Za-z]+)+)")
_RENDERED = {
    "context.error.messageString",
    "context.error.message",
    "context.error.responseType",
    "context.requestId",
}
_BUILT_IN = '{"message":$context.error.messageString}'  # API Gateway's answer when none is configured
_HEADER = "gatewayresponse.header."


@dataclass(frozen=True)
class ConfiguredResponse:
    """One ``AWS::ApiGateway::GatewayResponse``: its status, JSON template, static headers."""

    status: int | None
    template: str | None
    headers: tuple[tuple[str, str], ...] = ()


def gateway_responses_from_template(template: dict[str, Any]) -> dict[str, ConfiguredResponse]:
    """The template's gateway responses by type; one the local gateway could not render
    exactly (another variable, a header that is not a static value) is refused here."""
    configured = {}
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::ApiGateway::GatewayResponse":
            continue
        properties = resource["Properties"]
        body = (properties.get("ResponseTemplates") or {}).get("application/json")
        unknown = {v for v in _VARIABLE.findall(body or "") if v not in _RENDERED}
        if unknown or "$" in _VARIABLE.sub("", body or ""):
            raise ValueError(
                f"the local gateway cannot render {properties['ResponseType']}'s template {body!r}"
            )
        headers = []
        for name, value in (properties.get("ResponseParameters") or {}).items():
            if not (name.startswith(_HEADER) and len(value) >= 2 and value[0] == value[-1] == "'"):
                raise ValueError(f"the local gateway cannot set {name} = {value}")
            headers.append((name.removeprefix(_HEADER), value[1:-1]))
        status = properties.get("StatusCode")
        configured[properties["ResponseType"]] = ConfiguredResponse(
            int(status) if status else None, body, tuple(headers)
        )
    return configured


def gateway_answer(
    responses: dict[str, ConfiguredResponse],
    response_type: str,
    status: int,
    message: str,
    request_id: str | None = None,
) -> GatewayResponse:
    """API Gateway's own answer of ``response_type`` (its status for the situation and its
    message), as the configured gateway responses shape it."""
    fallback = responses.get("DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX")
    own = responses.get(response_type)
    chosen = own or fallback or ConfiguredResponse(None, _BUILT_IN)
    values = {
        "context.error.messageString": json.dumps(message),
        "context.error.message": message,
        "context.error.responseType": response_type,
        "context.requestId": request_id or str(uuid.uuid4()),
    }
    body = _VARIABLE.sub(lambda m: values[m.group(1)], chosen.template or _BUILT_IN)
    # A status set on the fallback applies to every type of its class without its own.
    final_status = next((r.status for r in (own, fallback) if r is not None and r.status), status)
    headers = [("Content-Type", "application/json"), *chosen.headers]
    return GatewayResponse(final_status, headers, body.encode())


MAX_PAYLOAD_BYTES = 10 * 1024 * 1024  # API Gateway's REST API payload limit


class Undecodable(ValueError):
    """A body API Gateway would refuse before routing: (response type, status, message)."""

    def __init__(self, response_type: str, status: int, message: str) -> None:
        super().__init__(message)
        self.response_type, self.status, self.message = response_type, status, message


def decode_body(body: bytes, content_encoding: str | None) -> bytes:
    """The body as API Gateway hands it to the integration: gzip and deflate decompressed
    (codings applied in the order listed are undone in reverse), identity left alone."""
    if len(body) > MAX_PAYLOAD_BYTES:
        raise Undecodable("REQUEST_TOO_LARGE", 413, "Request Too Long")
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    for coding in reversed(codings if body else []):
        if coding == "identity":
            continue
        if coding not in ("gzip", "deflate"):
            raise Undecodable("UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported Media Type")
        body = _decompress(body, coding)
    return body


def _decompress(data: bytes, coding: str) -> bytes:
    # deflate is zlib-wrapped by the RFC; raw deflate streams are common too.
    for wbits in [16 + zlib.MAX_WBITS] if coding == "gzip" else [zlib.MAX_WBITS, -zlib.MAX_WBITS]:
        decompressor = zlib.decompressobj(wbits)
        try:
            decoded = decompressor.decompress(data, MAX_PAYLOAD_BYTES + 1)
        except zlib.error:
            continue
        if len(decoded) > MAX_PAYLOAD_BYTES:
            raise Undecodable("REQUEST_TOO_LARGE", 413, "Request Too Long")
        if decompressor.eof and not decompressor.unused_data:
            return decoded
    raise Undecodable("UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported Media Type")


class MalformedResult(ValueError):
    """What a function returned is not a Lambda proxy result."""


def to_http(result: Any) -> GatewayResponse:
    """A Lambda proxy result as HTTP (``MalformedResult`` if it is not one)."""
    if not isinstance(result, dict) or "statusCode" not in result:
        raise MalformedResult(f"not a proxy result: {type(result).__name__}")
    headers: list[tuple[str, str]] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    seen = {name.lower() for name, _ in headers}
    headers.extend((k, str(v)) for k, v in (result.get("headers") or {}).items() if k.lower() not in seen)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return GatewayResponse(int(result["statusCode"]), headers, body)


class LocalGateway:
    """Routes requests to functions; ``invoke(function_logical_id, event)`` runs a handler.

    ``responses`` are the template's gateway responses (none: API Gateway's own answers).
    """

    def __init__(
        self,
        routes: list[Route],
        invoke: Invoke,
        api_keys: set[str],
        responses: dict[str, ConfiguredResponse] | None = None,
    ) -> None:
        self.routes = routes
        self.invoke = invoke
        self.api_keys = api_keys
        self.responses = responses or {}

    @classmethod
    def from_template(cls, template: dict[str, Any], invoke: Invoke, api_keys: set[str]) -> LocalGateway:
        return cls(
            routes_from_template(template), invoke, api_keys, gateway_responses_from_template(template)
        )

    def answer(self, response_type: str, status: int, message: str) -> GatewayResponse:
        return gateway_answer(self.responses, response_type, status, message)

    def handle(
        self,
        *,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
        source_ip: str,
    ) -> GatewayResponse:
        try:
            body = decode_body(
                body, next((v for k, v in headers.items() if k.lower() == "content-encoding"), None)
            )
        except Undecodable as refused:
            return self.answer(refused.response_type, refused.status, refused.message)
        route, parameters, path_exists = match(self.routes, method, path)
        if route is None:
            allowed = sorted(r.method for r in self.routes if r.pattern.match(path))
            hint = f" (it takes {', '.join(allowed)})" if path_exists else ""
            LOGGER.info("no route for %s %s%s", method, path, hint)
            return self.answer("MISSING_AUTHENTICATION_TOKEN", 403, "Missing Authentication Token")
        api_key = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
        if route.api_key_required and api_key not in self.api_keys:
            return self.answer("INVALID_API_KEY", 403, "Forbidden")
        event = proxy_event(
            route,
            method=method,
            path=path,
            path_parameters=parameters,
            query=query,
            headers=headers,
            body=body,
            source_ip=source_ip,
            api_key=api_key,
        )
        try:
            return to_http(self.invoke(route.function, event))
        except Exception:  # the handler crashed or answered nonsense: API Gateway answers 502
            LOGGER.exception("function %s failed on %s %s", route.function, method, path)
            return self.answer("DEFAULT_5XX", 502, "Internal server error")
