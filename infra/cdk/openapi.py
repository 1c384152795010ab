"""The whole API's OpenAPI document, built from the handlers' own route declarations.

Each function's Powertools resolver knows its routes, parameters and pydantic models;
this merges them into one document and marks each operation with the authorisation
the template gives it (API key or SigV4). ``make openapi`` writes ``docs/openapi.json``;
the local stack serves it, with Swagger UI, under ``/_local/``.

    python -m infra.cdk.openapi > docs/openapi.json
"""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from infra.local.gateway import Route

TITLE = "Serverless MLOps API"
VERSION = "0.1.0"
HANDLERS = (
    "functions.inference.handler",
    "functions.registry.handler",
    "functions.training.api",
    "functions.feedback.handler",
    "functions.rollout.api",
    "functions.drift.api",
    "functions.features.handler",
    "functions.materialize.handler",
    "functions.batch.api",
)

SECURITY_SCHEMES = {
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "x-api-key",
        "description": "Application clients: predict and feedback",
    },
    "sigv4": {
        "type": "apiKey",
        "in": "header",
        "name": "Authorization",
        "description": "AWS Signature Version 4 (IAM): ML engineers and pipelines",
        "x-amazon-apigateway-authtype": "awsSigv4",
    },
}

# Handlers read settings at import; documentation needs none of them.
_PLACEHOLDER_ENVIRONMENT = {
    "ARTIFACTS_BUCKET": "documentation-bucket",
    "METADATA_TABLE": "documentation-table",
    "PREDICTIONS_TABLE": "documentation-predictions",
    "FEATURES_TABLE": "documentation-features",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:documentation",
    "ROLLOUT_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:documentation",
    "DRIFT_FUNCTION_NAME": "documentation-drift",
    "BATCH_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:documentation",
    "AWS_DEFAULT_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@contextmanager
def _placeholders() -> Iterator[None]:
    added = [name for name in _PLACEHOLDER_ENVIRONMENT if name not in os.environ]
    os.environ.update({name: _PLACEHOLDER_ENVIRONMENT[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def build_openapi(routes: list[Route] | None = None, server_url: str | None = None) -> dict[str, Any]:
    """The merged document; with ``routes`` (from the template), each operation's security."""
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "Predictions and feedback (API key); the model registry, training runs, "
            "rollouts and drift monitoring (IAM, SigV4).",
        },
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": SECURITY_SCHEMES},
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    with _placeholders():
        for module_name in HANDLERS:
            module = importlib.import_module(module_name)
            schema = module.app.get_openapi_schema(title=TITLE, version=VERSION)
            part = json.loads(schema.model_dump_json(by_alias=True, exclude_none=True))
            for path, operations in part.get("paths", {}).items():
                document["paths"].setdefault(path, {}).update(operations)
            document["components"]["schemas"].update(part.get("components", {}).get("schemas", {}))
    for route in routes or []:
        operation = document["paths"].get(route.resource, {}).get(route.method.lower())
        if operation is None:
            continue
        if route.api_key_required:
            operation["security"] = [{"apiKey": []}]
        elif route.authorization == "AWS_IAM":
            operation["security"] = [{"sigv4": []}]
        else:
            operation["security"] = []
    return document


def main() -> None:
    from infra.local.gateway import routes_from_template
    from infra.local.stack import synthesize_template

    document = build_openapi(routes_from_template(synthesize_template()))
    json.dump(document, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
