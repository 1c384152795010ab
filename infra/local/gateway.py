"""The local API Gateway: the template's REST routes, served on localhost.

Routes are read from the synthesized template's ``AWS::ApiGateway::Resource`` and
``AWS::ApiGateway::Method`` resources, so the local stack answers exactly what the
deployed API answers. Each request becomes a REST API (v1) Lambda proxy event for the
integrated function, as API Gateway builds it, and the handler's response becomes the
HTTP response. Like API Gateway: an unknown route is 404, a missing or wrong API key on
a key-protected method is 403, and a handler that raises is 502.

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


def _json_response(status: int, payload: dict[str, Any]) -> GatewayResponse:
    return GatewayResponse(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


def to_http(result: Any) -> GatewayResponse:
    """A Lambda proxy result as HTTP; a malformed one is a 502, as API Gateway answers."""
    if not isinstance(result, dict) or "statusCode" not in result:
        return _json_response(502, {"message": "Internal server error"})
    headers: list[tuple[str, str]] = []
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((name, str(v)) for v in values)
    seen = {name.lower() for name, _ in headers}
    headers.extend((k, str(v)) for k, v in (result.get("headers") or {}).items() if k.lower() not in seen)
    raw = result.get("body") or ""
    body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
    return GatewayResponse(int(result["statusCode"]), headers, body)


class LocalGateway:
    """Routes requests to functions; ``invoke(function_logical_id, event)`` runs a handler."""

    def __init__(self, routes: list[Route], invoke: Invoke, api_keys: set[str]) -> None:
        self.routes = routes
        self.invoke = invoke
        self.api_keys = api_keys

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
        route, parameters, path_exists = match(self.routes, method, path)
        if route is None:
            allowed = sorted(r.method for r in self.routes if r.pattern.match(path))
            hint = f" (this path takes {', '.join(allowed)})" if path_exists else ""
            return _json_response(404, {"message": f"No route for {method} {path}{hint}"})
        api_key = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
        if route.api_key_required and api_key not in self.api_keys:
            return _json_response(403, {"message": "Forbidden"})
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
            result = self.invoke(route.function, event)
        except Exception:  # the handler crashed: API Gateway's Lambda proxy answers 502
            LOGGER.exception("function %s failed on %s %s", route.function, method, path)
            return _json_response(502, {"message": "Internal server error"})
        return to_http(result)
