"""`mlops up --demo`: train the sample model with the real workflow, promote it, predict.

Everything goes through the stack's own API, as a user's calls would: the dataset is
uploaded to the artifacts bucket, ``POST /training`` starts the state machine,
``GET /runs/{id}`` is polled, ``PUT /models/{name}/aliases/production`` promotes the
registered version and ``POST /models/{name}/predict`` checks that it answers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import boto3
from rich.console import Console

from infra.cli.client import ApiClient
from infra.cli.datasets import upload_files
from infra.cli.runs import wait_for_run
from infra.local.sample_data import (
    DATASET_PREFIX,
    FEATURE_SOURCE_KEY,
    LABELS_KEY,
    SAMPLE_MODEL,
    breast_cancer,
    breast_cancer_features,
    breast_cancer_labels,
)
from infra.local.stack import StackDescription

DEMO_CANDIDATES = [
    {"family": "logistic_regression", "params": {"C": 1.0}},
    {"family": "logistic_regression", "params": {"C": 0.1}},
    {"family": "random_forest", "params": {"n_estimators": 100, "max_depth": 8}},
    {"family": "hist_gradient_boosting", "params": {"max_iter": 100, "learning_rate": 0.1}},
]
EXAMPLE_ROW = [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871]


class DemoFailed(Exception):
    pass


@dataclass
class DemoResult:
    run_id: str
    version: int
    seconds: float
    prediction: dict[str, Any]


def upload_sample_dataset(bucket: str) -> str:
    upload_files(boto3.client("s3"), bucket, breast_cancer().files)
    return f"{DATASET_PREFIX}/data.csv"


def upload_sample_feature_source(bucket: str) -> str:
    """The source of features/breast_cancer.toml's view (rows dated the last ten hours), and
    labels of its patients for a point-in-time training set (``LABELS_KEY``)."""
    now_ms = int(time.time() * 1000)
    upload_files(
        boto3.client("s3"),
        bucket,
        {FEATURE_SOURCE_KEY: breast_cancer_features(now_ms), LABELS_KEY: breast_cancer_labels(now_ms)},
    )
    return FEATURE_SOURCE_KEY


def run_demo(description: StackDescription, client: ApiClient, console: Console) -> DemoResult:
    started = time.monotonic()
    dataset_key = upload_sample_dataset(description.artifacts_bucket)
    console.log(f"uploaded the sample dataset to s3://{description.artifacts_bucket}/{DATASET_PREFIX}/")
    upload_sample_feature_source(description.artifacts_bucket)
    console.log(
        f"uploaded the sample feature source to s3://{description.artifacts_bucket}/{FEATURE_SOURCE_KEY} "
        f"and its labels to {LABELS_KEY}"
    )
    response = client.start_training(
        {
            "model_name": SAMPLE_MODEL,
            "dataset_key": dataset_key,
            "expectations_key": f"{DATASET_PREFIX}/expectations.json",
            "target_metric": "roc_auc",
            "threshold": 0.9,
            "candidates": DEMO_CANDIDATES,
            "seed": 42,
        }
    )
    run_id = response["run_id"]
    console.log(f"started training run {run_id} ({len(DEMO_CANDIDATES)} candidates)")
    run = wait_for_run(client, run_id, console)
    if run["execution"]["status"] != "SUCCEEDED":
        reason = (
            (run.get("evaluation") or {}).get("reason") or run.get("failure") or run["execution"].get("error")
        )
        raise DemoFailed(f"training run {run_id} ended {run['execution']['status']}: {reason}")
    version = int(run["registered_version"])
    metrics = run["evaluation"]["holdout_metrics"]
    console.log(
        f"registered {SAMPLE_MODEL} v{version} (best: {run['best_candidate']}, "
        f"holdout roc_auc {metrics['roc_auc']:.4f}, accuracy {metrics['accuracy']:.4f})"
    )
    client.set_alias(SAMPLE_MODEL, "production", version)
    console.log(f"promoted v{version} to production")
    prediction = client.predict(SAMPLE_MODEL, [EXAMPLE_ROW])
    return DemoResult(
        run_id=run_id, version=version, seconds=time.monotonic() - started, prediction=prediction
    )


def curl_examples(description: StackDescription) -> list[str]:
    row = ", ".join(map(str, EXAMPLE_ROW))
    api = description.api_url
    return [
        f"curl -s -X POST {api}/models/{SAMPLE_MODEL}/predict -H 'Content-Type: application/json' "
        f"-H 'x-api-key: {description.api_key}' -d '{{\"instances\": [[{row}]]}}'",
        f"curl -s {api}/health",
        f"curl -s {api}/models/{SAMPLE_MODEL}",
        f"curl -s {api}/models/{SAMPLE_MODEL}/versions",
    ]
