"""Helpers shared by the tests: sample events, a Lambda context, resources, models."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import boto3
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
BUCKET = "mlops-artifacts-test"
TABLE = "mlops-metadata-test"
PREDICTIONS_TABLE = "mlops-predictions-test"
FEATURES_TABLE = "mlops-features-test"
REGION = "us-east-1"
STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:training"
ROLLOUT_STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:rollout"
BATCH_STATE_MACHINE_ARN = "arn:aws:states:us-east-1:123456789012:stateMachine:batch"
# The sample dataset's features (scikit-learn's breast-cancer "mean" columns), as in events/.
FEATURES = [
    "mean_radius",
    "mean_texture",
    "mean_perimeter",
    "mean_area",
    "mean_smoothness",
    "mean_compactness",
    "mean_concavity",
    "mean_concave_points",
    "mean_symmetry",
    "mean_fractal_dimension",
]


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    """A sample event from ``events/``; ``body=`` (a dict or a raw string) and
    ``path_params=`` replace those parts."""
    event = json.loads((EVENTS / name).read_text())
    if "body" in changes:
        body = changes.pop("body")
        event["body"] = body if isinstance(body, str) or body is None else json.dumps(body)
    if "path_params" in changes:
        params = changes.pop("path_params")
        event["pathParameters"].update(params)
        path = event["resource"]
        for key, value in event["pathParameters"].items():
            path = path.replace("{" + key + "}", str(value))
        event["path"] = path
    if "query" in changes:
        query = changes.pop("query")
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in query.items()} if query else None
    assert not changes, f"unknown changes {changes}"
    return event


@dataclass
class FakeLambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    memory_limit_in_mb: int = 1024
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2026/11/27/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000  # the registry function's timeout, API Gateway's limit


def create_resources() -> None:
    """The artifacts bucket, the metadata table, the prediction log and the features table, shaped
    as infra/ declares them."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.create_table(
        TableName=TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "gsi1pk", "gsi1sk")
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "gsi1",
                "KeySchema": [
                    {"AttributeName": "gsi1pk", "KeyType": "HASH"},
                    {"AttributeName": "gsi1sk", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    dynamodb.create_table(
        TableName=PREDICTIONS_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    # The online feature store: keyed `{view}#{entity}` alone (infra/cdk/constructs/features.py).
    dynamodb.create_table(
        TableName=FEATURES_TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )


FIRST_LOG_EVENT_ID = 37_000_000_000_000_000_000_000_000_000_000_000_000_000_000_000


_DELIVERIES = itertools.count()


def subscription_event(messages: list[str], *, log_group: str = "/aws/lambda/inference") -> dict[str, Any]:
    """A CloudWatch Logs subscription delivery of ``messages``, exactly as Lambda receives it.

    Each call is a new delivery: its log event ids are new (as CloudWatch's are unique); a
    redelivery is the same event passed again."""
    import base64
    import gzip

    delivery = next(_DELIVERIES)
    payload = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": "2026/12/01/[$LATEST]0123456789abcdef",
        "subscriptionFilters": ["prediction-capture"],
        "logEvents": [
            {
                "id": f"{37000000000000000000000000000000000000000000000000000000 + delivery * 10_000 + i}",
                "timestamp": 1796115000000 + i,
                "message": m,
            }
            for i, m in enumerate(messages)
        ],
    }
    data = base64.b64encode(gzip.compress(json.dumps(payload).encode())).decode()
    return {"awslogs": {"data": data}}


@cache
def breast_cancer_xy() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return data.data[:, :10], data.target


@cache
def trained_model(family: str = "logistic_regression") -> tuple[Any, bytes, Any]:
    """A fitted estimator on the ten breast-cancer features, its ONNX bytes and signature."""
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from mlops_core.training.export import export_sklearn

    estimators = {
        "logistic_regression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "random_forest": lambda: RandomForestClassifier(n_estimators=100, random_state=0),
        "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(random_state=0),
    }
    x, y = breast_cancer_xy()
    estimator = estimators[family]().fit(x, y)
    data, signature = export_sklearn(estimator, FEATURES, target="benign")
    return estimator, data, signature


def local_stack_client(service: str, description: dict[str, Any]) -> Any:
    """A boto3 client for a running local stack (its endpoint.json), leaving os.environ alone."""
    from infra.local.stack import local_aws_environment

    env = local_aws_environment(description["moto_url"])
    return boto3.client(
        service,
        endpoint_url=env["AWS_ENDPOINT_URL"],
        region_name=env["AWS_REGION"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=env["AWS_SESSION_TOKEN"],
    )


def upload(key: str, data: bytes) -> None:
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key=key, Body=data)


def body(response: dict[str, Any]) -> Any:
    return json.loads(response["body"])


def header(response: dict[str, Any], name: str) -> str | None:
    """A response header, wherever the resolver put it (REST responses use multiValueHeaders)."""
    for key, values in (response.get("multiValueHeaders") or {}).items():
        if key.lower() == name.lower():
            return values[0]
    for key, value in (response.get("headers") or {}).items():
        if key.lower() == name.lower():
            return value
    return None


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def corrupt_recorded_checksum(model: str, version: int) -> None:
    """Make the registry's sha256 for a version disagree with the stored bytes."""
    boto3.client("dynamodb", region_name=REGION).update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"MODEL#{model}"}, "sk": {"S": f"VERSION#{version:06d}"}},
        UpdateExpression="SET artifact.sha256 = :bad",
        ExpressionAttributeValues={":bad": {"S": "0" * 64}},
    )


@contextmanager
def aws_fault(service: str, operation: str, code: str, status: int = 400) -> Iterator[None]:
    """Make every ``operation`` call of the project's ``service`` client fail with ``code``.

    boto3 clients: injected through botocore's event hooks. The signed readers
    (``GetItem``, ``GetObject``): their transport answers with the error response AWS
    sends (JSON for DynamoDB, XML for S3). Either way the real client, its error parsing
    and retries, and the adapters' translation all run.
    """
    from mlops_core.storage.aws_http import HttpRequest, HttpResponse
    from mlops_core.storage.clients import reader

    signed_reader = {("dynamodb", "GetItem"), ("s3", "GetObject")}
    if (service, operation) in signed_reader and hasattr(reader(service), "transport"):  # type: ignore[arg-type]
        client = reader(service)  # type: ignore[arg-type]
        transport = client.transport
        if service == "dynamodb":
            error_type = f"com.amazonaws.dynamodb.v20120810#{code}"
            payload = json.dumps({"__type": error_type, "message": "injected"})
        else:
            payload = f"<Error><Code>{code}</Code><Message>injected</Message></Error>"

        def answer_with_error(request: HttpRequest) -> HttpResponse:
            return HttpResponse(status, {}, payload.encode())

        client.transport = answer_with_error
        try:
            yield
        finally:
            client.transport = transport
        return

    from botocore.exceptions import ClientError

    from mlops_core.storage.clients import client as boto3_client

    def fail(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": code, "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": status}},
            operation,
        )

    events = boto3_client(service).meta.events
    events.register(f"before-call.{service}.{operation}", fail, unique_id="fault")
    try:
        yield
    finally:
        events.unregister(f"before-call.{service}.{operation}", unique_id="fault")


# The first row of the sample dataset (a malignant tumour), as in events/inference/predict.json.
ROW0 = [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871]

# Column names as CSV files have them (13, as many as the wine dataset's features):
# slashes, spaces, parentheses, dots, quotes, non-ASCII letters, the longest allowed.
CSV_COLUMN_NAMES = [
    "od280/od315_of_diluted_wines",  # scikit-learn's wine
    "sepal length (cm)",  # iris
    "mean radius",  # breast cancer, as scikit-learn names it
    "1st reading",
    "température.moyenne",
    "größe [m]",
    "体重 kg",
    "a,b;c",
    'quoted "name"',
    "pipe|name",
    "-leading-dash",
    "%_of_total",
    "x" * 128,
]

#: A random-forest search on the breast-cancer sample that its median pruner prunes (trials of
#: rounds 2 and 3 with shallow trees or large leaves): the workflow and local-stack tests run it.
PRUNED_FOREST_SEARCH: dict[str, Any] = {
    "family": "random_forest",
    "space": {
        "max_depth": {"type": "int", "low": 1, "high": 8},
        "min_samples_leaf": {"type": "int", "low": 1, "high": 80},
    },
    "params": {"n_estimators": 40},
    "rounds": 3,
    "parallelism": 3,
    "pruner": {"type": "median", "n_startup_trials": 3, "interval": 10},
}
