"""A model world for the console tests: breast-cancer with versions from training runs, a
run with four candidates, a split routing policy with counted traffic and rewards, and a
drift run that found drift (its report in the bucket) — all written through the domains'
own services and the drift function, as the deployed system would write them."""

from __future__ import annotations

from typing import Any

from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from mlops_core.routing.bandit import Arm
from mlops_core.routing.repository import RoutingRepository
from mlops_core.routing.service import RoutingService
from mlops_core.routing.state import ArmsState
from mlops_core.storage.dynamo import MetadataTable
from mlops_core.training.tracking import RunTracker
from tests.integration.drift_support import (
    MODEL,
    TRAINING_RUN,
    capture,
    monitored_model,
    shifted,
    training_rows,
)
from tests.support import TABLE, FakeLambdaContext, trained_model, upload

DEMO_RUN = "breast-cancer-demo"
HOSTILE = "<script>alert('x')</script>"
CANDIDATES: list[dict[str, Any]] = [
    {
        "candidate_id": "c0",
        "family": "logistic_regression",
        "params": {"C": 1.0},
        "roc_auc": 0.991,
        "accuracy": 0.96,
    },
    {
        "candidate_id": "c1",
        "family": "logistic_regression",
        "params": {"C": 0.1},
        "roc_auc": 0.987,
        "accuracy": 0.95,
    },
    {
        "candidate_id": "c2",
        "family": "random_forest",
        "params": {"n_estimators": 100, "max_depth": 8},
        "roc_auc": 0.995,
        "accuracy": 0.97,
    },
    {
        "candidate_id": "c3",
        "family": "hist_gradient_boosting",
        "params": {"max_iter": 100, "learning_rate": HOSTILE},
        "roc_auc": 0.993,
        "accuracy": 0.965,
    },
]


def record_run(
    tracker: RunTracker, run_id: str, *, roc_auc: float = 0.995, version: int | None = None
) -> None:
    """A finished run as the workflow's steps record it (start, dataset, candidates, best,
    evaluation, registration)."""
    tracker.start(
        run_id,
        MODEL,
        {
            "model_name": MODEL,
            "dataset_key": "datasets/breast-cancer/data.csv",
            "seed": 42,
            "candidates": [{"family": c["family"], "params": c["params"]} for c in CANDIDATES],
        },
    )
    tracker.update(
        run_id,
        dataset={
            "key": "datasets/breast-cancer/data.csv",
            "version_id": None,
            "sha256": "ab" * 32,
            "rows": 569,
            "schema_key": "datasets/breast-cancer/schema.json",
        },
        target_metric="roc_auc",
    )
    for c in CANDIDATES:
        tracker.record_candidate(
            run_id,
            {
                "candidate_id": c["candidate_id"],
                "family": c["family"],
                "params": c["params"],
                "seed": 42,
                "artifact_key": f"runs/{run_id}/candidates/{c['candidate_id']}/model.onnx",
                "artifact_version_id": None,
                "sha256": "cd" * 32,
                "validation_metrics": {"roc_auc": c["roc_auc"], "accuracy": c["accuracy"]},
                "train_rows": 364,
                "validation_rows": 91,
                "duration_seconds": 1.5,
                "package_versions": {"scikit-learn": "1.5.2"},
            },
        )
    tracker.update(run_id, best_candidate="c2")
    passed = version is not None
    evaluation = {
        "passed": passed,
        "reason": "above the threshold" if passed else "below the threshold",
        "metric": "roc_auc",
        "holdout_metrics": {"roc_auc": roc_auc, "accuracy": 0.96},
        "holdout_rows": 114,
        "threshold": 0.9,
        "tolerance": 0.0,
        "champion": None,
    }
    if passed:
        tracker.update(run_id, evaluation=evaluation)
        tracker.finish(run_id, "SUCCEEDED", registered_version=version)
    else:
        tracker.finish(run_id, "REJECTED", evaluation=evaluation)


def build_world(registry: ModelRegistry, *, drift: Any | None) -> dict[str, Any]:
    """breast-cancer v1 (production, monitored) and v2 (from the demo run), routed 80/20 with
    counts; ``drift`` (the drift handler module), when given, runs once on shifted traffic."""
    table = MetadataTable(TABLE)
    tracker = RunTracker(table)
    v1 = monitored_model(registry)
    registry.update_model(MODEL, description=f"Breast cancer {HOSTILE}")
    _, data, signature = trained_model("random_forest")
    upload("uploads/rf.onnx", data)
    record_run(tracker, DEMO_RUN, version=v1 + 1)
    v2 = registry.register_version(
        MODEL,
        RegisterVersionRequest(
            artifact_key="uploads/rf.onnx", signature=signature, run_id=DEMO_RUN, metrics={"roc_auc": 0.995}
        ),
    ).version
    record_run(tracker, "breast-cancer-rejected", roc_auc=0.85)
    routing = RoutingService(table, registry=registry)
    routing.set_policy(
        MODEL,
        {"type": "split", "weights": [{"version": v1, "weight": 0.8}, {"version": v2, "weight": 0.2}]},
        actor="tester",
        reason=f"canary {HOSTILE}",
    )
    repository = RoutingRepository(table)
    table.transact(
        [
            repository.add_to_variant_op(
                MODEL, v1, {"calls": 80, "requests": 80, "feedback": 40, "rewarded": 40, "reward_sum": 30.0}
            ),
            repository.add_to_variant_op(
                MODEL, v2, {"calls": 20, "requests": 20, "feedback": 10, "rewarded": 10, "reward_sum": 9.0}
            ),
            repository.arms_op(
                ArmsState(model_name=MODEL, arms=(Arm(v1, 30.0, 10.0), Arm(v2, 9.0, 1.0)), revision=1),
                expected_revision=0,
            ),
        ]
    )
    drift_run = None
    if drift is not None:
        capture(shifted(training_rows(600, seed=7), [0, 1, 4], sd=2.0), version=v1)

        class Context(FakeLambdaContext):
            def get_remaining_time_in_millis(self) -> int:
                return 900_000

        drift_run = drift.lambda_handler({"model_name": MODEL}, Context())
    return {"v1": v1, "v2": v2, "training_run": TRAINING_RUN, "drift": drift_run}
