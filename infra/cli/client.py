"""A client for the stack's HTTP API, local or deployed.

The local stack is found through ``.local-stack/endpoint.json`` (written by
``mlops up``); a deployed one through its CloudFormation outputs, with the caller's AWS
credentials. IAM-authenticated routes are signed with SigV4 (the local gateway accepts
the signature without checking it); predict calls carry the API key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from infra.local.stack import ENDPOINT_FILE, StackDescription, local_aws_environment

TIMEOUT_SECONDS = 60


class ApiError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"HTTP {status}: {message}")


class StackNotFound(Exception):
    """No local stack is running, or the named stack has no such outputs."""


@dataclass
class Target:
    api_url: str
    api_key: str | None
    region: str
    local: StackDescription | None = None

    @classmethod
    def local_stack(cls) -> Target:
        if not ENDPOINT_FILE.exists():
            raise StackNotFound("no local stack is running: start one with `mlops up` (or pass --stack NAME)")
        description = StackDescription.read()
        try:
            requests.get(f"{description.api_url}/health", timeout=2)
        except requests.RequestException:
            raise StackNotFound(
                f"the local stack recorded in {ENDPOINT_FILE} is not answering; start it with `mlops up`"
            ) from None
        os.environ.update(local_aws_environment(description.moto_url))
        return cls(
            api_url=description.api_url,
            api_key=description.api_key,
            region=description.region,
            local=description,
        )

    @classmethod
    def deployed(cls, stack_name: str) -> Target:
        cloudformation = boto3.client("cloudformation")
        try:
            stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        except Exception as error:
            raise StackNotFound(f"stack {stack_name!r}: {error}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if "ApiUrl" not in outputs:
            raise StackNotFound(f"stack {stack_name!r} has no ApiUrl output: is it this project's stack?")
        key_id = outputs.get("PredictApiKeyId")
        api_key = (
            boto3.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"]
            if key_id
            else None
        )
        region = cloudformation.meta.region_name
        return cls(api_url=outputs["ApiUrl"].rstrip("/"), api_key=api_key, region=region)


class ApiClient:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.session = requests.Session()

    def call(
        self, method: str, path: str, body: Any = None, *, iam: bool = True, query: dict | None = None
    ) -> Any:
        url = f"{self.target.api_url}{path}"
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        if not iam and self.target.api_key:
            headers["x-api-key"] = self.target.api_key
        prepared = requests.Request(method, url, data=data, headers=headers, params=query).prepare()
        if iam:
            credentials = boto3.session.Session().get_credentials()
            if credentials is None:
                raise StackNotFound("no AWS credentials to sign the request with")
            signed = AWSRequest(method=method, url=prepared.url, data=data, headers=dict(prepared.headers))
            SigV4Auth(credentials.get_frozen_credentials(), "execute-api", self.target.region).add_auth(
                signed
            )
            prepared.headers.update(dict(signed.headers))
        response = self.session.send(prepared, timeout=TIMEOUT_SECONDS)
        try:
            payload = response.json()
        except ValueError:
            payload = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, payload)
        return payload

    # -- the routes ----------------------------------------------------------------------
    def predict(self, model: str, instances: list[Any]) -> Any:
        return self.call("POST", f"/models/{model}/predict", {"instances": instances}, iam=False)

    def start_training(self, request: dict[str, Any]) -> Any:
        return self.call("POST", "/training", request)

    def run(self, run_id: str) -> Any:
        return self.call("GET", f"/runs/{run_id}")

    def runs(self, model: str) -> Any:
        return self.call("GET", f"/models/{model}/runs")["runs"]

    def models(self) -> Any:
        return self.call("GET", "/models")["models"]

    def model(self, name: str) -> Any:
        return self.call("GET", f"/models/{name}")

    def versions(self, name: str) -> Any:
        return self.call("GET", f"/models/{name}/versions")["versions"]

    def set_alias(self, name: str, alias: str, version: int, expected_revision: int | None = None) -> Any:
        body: dict[str, Any] = {"version": version}
        if expected_revision is not None:
            body["expected_revision"] = expected_revision
        return self.call("PUT", f"/models/{name}/aliases/{alias}", body)

    def promote(
        self,
        name: str,
        version: int,
        alias: str = "production",
        *,
        expected_revision: int | None = None,
        reason: str = "",
    ) -> Any:
        body: dict[str, Any] = {"alias": alias, "reason": reason}
        if expected_revision is not None:
            body["expected_revision"] = expected_revision
        return self.call("POST", f"/models/{name}/versions/{version}/promote", body)

    def rollback(self, name: str, alias: str = "production", *, reason: str = "") -> Any:
        return self.call("POST", f"/models/{name}/rollback", {"alias": alias, "reason": reason})

    def audit(self, name: str, limit: int = 50) -> Any:
        return self.call("GET", f"/models/{name}/audit", query={"limit": str(limit)})["audit"]

    def model_card(self, name: str, version: int, fmt: str = "markdown") -> Any:
        return self.call("GET", f"/models/{name}/versions/{version}/card", query={"format": fmt})
