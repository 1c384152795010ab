"""A monitored model for the drift tests: breast-cancer v1 from a training run whose reference
profile is in the bucket, serving in production; and captured traffic, shifted or not."""

from __future__ import annotations

import time
from collections.abc import Sequence
from itertools import count

import numpy as np

from infra.local.sample_data import breast_cancer
from mlops_core.data.profiles import profile
from mlops_core.data.schema import DatasetSchema, load_csv
from mlops_core.feedback.capture_store import CaptureStore
from mlops_core.registry.entities import RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from mlops_core.serving.capture import CapturedPrediction, prediction_ids
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore
from tests.support import BUCKET, FEATURES, breast_cancer_xy, trained_model, upload

MODEL = "breast-cancer"
TRAINING_RUN = "breast-cancer-20261201-000000-drift1"
_BATCHES = count()


def reference_profile_json() -> bytes:
    import json

    sample = breast_cancer()
    schema = DatasetSchema.model_validate(sample.schema)
    return json.dumps(profile(load_csv(sample.csv, schema), schema)).encode()


def monitored_model(
    registry: ModelRegistry, *, with_profile: bool = True, run_id: str | None = TRAINING_RUN
) -> int:
    _, data, signature = trained_model("logistic_regression")
    upload("uploads/breast-cancer/model.onnx", data)
    version = registry.register_version(
        MODEL,
        RegisterVersionRequest(
            artifact_key="uploads/breast-cancer/model.onnx", signature=signature, run_id=run_id
        ),
    )
    registry.set_alias(MODEL, "production", version.version)
    if with_profile and run_id is not None:
        upload(keys.reference_profile(run_id), reference_profile_json())
    return version.version


def training_rows(n: int, *, seed: int = 0) -> np.ndarray:
    """``n`` rows drawn (with replacement) from the training data itself: no drift."""
    x, _ = breast_cancer_xy()
    return x[np.random.default_rng(seed).integers(0, len(x), size=n)]


def shifted(rows: np.ndarray, columns: Sequence[int], sd: float) -> np.ndarray:
    """The rows with ``columns`` moved by ``sd`` training standard deviations."""
    x, _ = breast_cancer_xy()
    moved = rows.copy()
    for column in columns:
        moved[:, column] += sd * x[:, column].std()
    return moved


def capture(
    rows: np.ndarray,
    *,
    version: int = 1,
    features: Sequence[str] = FEATURES,
    at_ms: int | None = None,
    predictions: Sequence[int] | None = None,
) -> None:
    """Write ``rows`` to the bulk capture as the capture function would (one delivery)."""
    at = at_ms if at_ms is not None else int(time.time() * 1000) - 60_000
    ids = prediction_ids(len(rows), now_ms=at)
    captured = [
        CapturedPrediction(
            prediction_id=ids[i],
            model_name=MODEL,
            model_version=version,
            alias="production",
            at_ms=at + i,
            features=list(features),
            inputs=[float(v) for v in row],
            prediction=int(predictions[i]) if predictions is not None else 1,
            probabilities=None,
        )
        for i, row in enumerate(rows)
    ]
    CaptureStore(ArtifactStore(BUCKET)).write(captured, batch_id=f"batch-{next(_BATCHES):06d}")
