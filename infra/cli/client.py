"""A client for the stack's HTTP API, local or deployed.

The local stack is found through ``.local-stack/endpoint.json`` (written by
``mlops up``); a deployed one through its CloudFormation outputs, with the caller's AWS
credentials. IAM-authenticated routes are signed with SigV4 (the local gateway accepts
the signature without checking it); predict and feedback calls carry the API key.
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
from botocore.exceptions import BotoCoreError, ClientError

from infra.local.stack import ENDPOINT_FILE, StackDescription, local_aws_environment

TIMEOUT_SECONDS = 60


class ApiError(Exception):
    """The API answered 4xx/5xx; ``body`` is its ``ErrorBody`` (or the raw text)."""

    def __init__(self, status: int, body: Any, *, retry_after: float | None = None) -> None:
        self.status = status
        self.body = body
        #: The answer's Retry-After (seconds), when it had one.
        self.retry_after = retry_after
        message = body.get("message") if isinstance(body, dict) else None
        text = message or (str(body).strip() if body else "") or "(no message)"
        super().__init__(f"HTTP {status}: {text}")

    @property
    def details(self) -> list[str]:
        """One readable line per item of the body's ``detail`` list (every failing rule)."""
        detail = self.body.get("detail") if isinstance(self.body, dict) else None
        return [describe_detail(item) for item in detail] if isinstance(detail, list) else []


def describe_detail(item: Any) -> str:
    """``{"loc": [...], "msg": ...}`` as ``body.instances.0: msg``; a policy rule such as
    ``{"rule": "thresholds.roc_auc.min", "value": 0.91, "limit": 0.95}`` as
    ``thresholds.roc_auc.min: value 0.91, limit 0.95``; anything else as JSON."""
    if not isinstance(item, dict):
        return json.dumps(item, default=str)
    where = item.get("rule") or ".".join(map(str, item.get("loc") or []))
    known = {"loc", "rule", "msg", "type", "input", "ctx", "url"}
    facts = ", ".join(
        f"{key} {json.dumps(value, default=str)}" for key, value in item.items() if key not in known
    )
    what = "; ".join(part for part in (str(item["msg"]) if item.get("msg") else "", facts) if part)
    if not where:
        return what or json.dumps(item, default=str)
    return f"{where}: {what}" if what else where


def _seconds(header: str | None) -> float | None:
    try:
        return float(header) if header else None
    except ValueError:  # an HTTP date: not sent by this API
        return None


class StackNotFound(Exception):
    """No local stack is running, or the named stack has no such outputs."""


@dataclass
class Target:
    api_url: str
    api_key: str | None
    region: str
    local: StackDescription | None = None
    artifacts_bucket: str | None = None

    @classmethod
    def local_stack(cls) -> Target:
        if not ENDPOINT_FILE.exists():
            raise StackNotFound("no local stack is running: start one with `mlops up` (or pass --stack NAME)")
        description = StackDescription.read()
        try:
            requests.get(f"{description.api_url}/health", timeout=2)
        except requests.ReadTimeout:
            pass  # it accepted the connection: running, only busy (the command's own call waits longer)
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
            artifacts_bucket=description.artifacts_bucket,
        )

    @classmethod
    def deployed(cls, stack_name: str) -> Target:
        try:
            cloudformation = boto3.client("cloudformation")
            stack = cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]
        except Exception as error:
            raise StackNotFound(f"stack {stack_name!r}: {error}") from None
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
        if "ApiUrl" not in outputs:
            raise StackNotFound(f"stack {stack_name!r} has no ApiUrl output: is it this project's stack?")
        key_id = outputs.get("PredictApiKeyId")
        try:
            api_key = (
                boto3.client("apigateway").get_api_key(apiKey=key_id, includeValue=True)["value"]
                if key_id
                else None
            )
        except (BotoCoreError, ClientError) as error:
            raise StackNotFound(f"stack {stack_name!r}: reading its predict API key: {error}") from None
        region = cloudformation.meta.region_name
        return cls(
            api_url=outputs["ApiUrl"].rstrip("/"),
            api_key=api_key,
            region=region,
            artifacts_bucket=outputs.get("ArtifactsBucketName"),
        )


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
            raise ApiError(
                response.status_code, payload, retry_after=_seconds(response.headers.get("Retry-After"))
            )
        return payload

    # -- the routes ----------------------------------------------------------------------
    def predict(
        self,
        model: str,
        instances: list[Any] | None,
        *,
        alias: str | None = None,
        version: int | None = None,
        entity_ids: list[dict[str, Any]] | None = None,
    ) -> Any:
        """Predict with the ``production`` alias, another ``alias``, or a pinned ``version``; rows
        given as ``instances``, as ``entity_ids`` (read from the online features), or both."""
        if alias is not None and version is not None:
            raise ValueError("pass alias or version, not both")
        query = (
            {"alias": alias}
            if alias is not None
            else {"version": str(version)}
            if version is not None
            else None
        )
        body: dict[str, Any] = {} if instances is None else {"instances": instances}
        if entity_ids is not None:
            body["entity_ids"] = entity_ids
        return self.call("POST", f"/models/{model}/predict", body, iam=False, query=query)

    def feedback(self, entry: dict[str, Any]) -> Any:
        """``POST /feedback`` with one feedback: its outcome (``ApiError`` when it is refused)."""
        return self.call("POST", "/feedback", entry, iam=False)

    def feedback_batch(self, entries: list[dict[str, Any]]) -> Any:
        """``POST /feedback`` with a batch: 200 and one outcome (with its own status) per item."""
        return self.call("POST", "/feedback", {"feedback": entries}, iam=False)

    def start_training(self, request: dict[str, Any]) -> Any:
        return self.call("POST", "/training", request)

    def run(self, run_id: str) -> Any:
        return self.call("GET", f"/runs/{run_id}")

    def runs(self, model: str, limit: int = 50) -> Any:
        return self.call("GET", f"/models/{model}/runs", query={"limit": str(limit)})["runs"]

    def models(self) -> Any:
        return self.call("GET", "/models")["models"]

    def model(self, name: str) -> Any:
        return self.call("GET", f"/models/{name}")

    def versions(self, name: str) -> Any:
        return self.call("GET", f"/models/{name}/versions")["versions"]

    def version(self, name: str, version: int) -> Any:
        return self.call("GET", f"/models/{name}/versions/{version}")

    def register_version(self, name: str, request: dict[str, Any]) -> Any:
        return self.call("POST", f"/models/{name}/versions", request)

    def feature_policy(self, name: str) -> Any:
        return self.call("GET", f"/models/{name}/feature-policy")

    def set_feature_policy(self, name: str, policy: dict[str, Any]) -> Any:
        return self.call("PUT", f"/models/{name}/feature-policy", policy)

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

    def routing(self, name: str) -> Any:
        return self.call("GET", f"/models/{name}/routing")

    def routing_history(self, name: str, *, since: str | None = None, limit: int | None = None) -> Any:
        query = {k: str(v) for k, v in (("since", since), ("limit", limit)) if v is not None}
        return self.call("GET", f"/models/{name}/routing/history", query=query)

    def set_routing(
        self, name: str, policy: dict[str, Any], *, reason: str = "", expected_revision: int | None = None
    ) -> Any:
        body: dict[str, Any] = {"policy": policy, "reason": reason}
        if expected_revision is not None:
            body["expected_revision"] = expected_revision
        return self.call("PUT", f"/models/{name}/routing", body)

    def model_card(self, name: str, version: int, fmt: str = "markdown") -> Any:
        return self.call("GET", f"/models/{name}/versions/{version}/card", query={"format": fmt})

    # -- drift monitoring ----------------------------------------------------------------
    def monitoring(self, name: str) -> Any:
        return self.call("GET", f"/models/{name}/monitoring")

    def configure_monitoring(
        self, name: str, config: dict[str, Any], *, expected_revision: int | None = None
    ) -> Any:
        query = {"expected_revision": str(expected_revision)} if expected_revision is not None else None
        return self.call("PUT", f"/models/{name}/monitoring", config, query=query)

    def start_drift_run(self, name: str) -> Any:
        return self.call("POST", f"/models/{name}/drift-runs")

    def drift_runs(self, name: str, limit: int = 50) -> Any:
        return self.call("GET", f"/models/{name}/drift-runs", query={"limit": str(limit)})["runs"]

    def drift_run(self, name: str, run_id: str) -> Any:
        return self.call("GET", f"/models/{name}/drift-runs/{run_id}")

    def drift(self, name: str, limit: int = 20) -> Any:
        return self.call("GET", f"/models/{name}/drift", query={"limit": str(limit)})

    def retraining_decisions(self, name: str, limit: int = 50) -> Any:
        return self.call("GET", f"/models/{name}/retraining", query={"limit": str(limit)})["decisions"]

    def retraining_decision(self, name: str, decision_id: str) -> Any:
        return self.call("GET", f"/models/{name}/retraining/{decision_id}")

    def drift_report(self, name: str, run_id: str) -> str:
        """The run's HTML report, as text."""
        report = self.call("GET", f"/models/{name}/drift-runs/{run_id}/report", query={"format": "html"})
        return str(report)
