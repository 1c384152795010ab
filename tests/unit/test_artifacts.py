"""ONNX export and loading: what the registry stores predicts what scikit-learn predicts."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from mlops_core.errors import IntegrityError, Invalid
from mlops_core.registry.entities import ArtifactRef, ModelVersion
from mlops_core.registry.signature import ModelSignature, sha256_hex, verify_checksum
from mlops_core.serving.sessions import LoadedModel, load_session
from tests.support import FEATURES, breast_cancer_xy, trained_model

FAMILIES = ["logistic_regression", "random_forest", "hist_gradient_boosting"]


def _version(data: bytes, signature: ModelSignature) -> ModelVersion:
    return ModelVersion(
        model_name="m",
        version=1,
        artifact=ArtifactRef(
            key="models/m/1/model.onnx", s3_version_id=None, sha256=sha256_hex(data), size_bytes=len(data)
        ),
        signature=signature,
        created_at="2026-11-27T00:00:00.000Z",
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_onnx_probabilities_match_scikit_learn(family: str) -> None:
    estimator, data, signature = trained_model(family)
    x, _ = breast_cancer_xy()
    loaded = LoadedModel.from_bytes(_version(data, signature), data)

    labels, probabilities = loaded.run(x.astype(np.float32))

    assert probabilities is not None
    np.testing.assert_allclose(np.asarray(probabilities), estimator.predict_proba(x), atol=1e-5)
    agreement = np.mean(np.asarray(labels) == estimator.predict(x))
    assert agreement > 0.995  # labels can flip only where a probability sits at 0.5 ± float32 error


@pytest.mark.parametrize("family", FAMILIES)
def test_signature_describes_the_export(family: str) -> None:
    _, _, signature = trained_model(family)
    assert signature.feature_names == FEATURES
    assert signature.classes == [0, 1]
    assert signature.task == "classification"


def test_signature_round_trips_through_json() -> None:
    _, _, signature = trained_model("logistic_regression")
    assert ModelSignature.model_validate_json(signature.model_dump_json()) == signature


def test_tampered_artifact_is_refused_before_loading() -> None:
    _, data, signature = trained_model("logistic_regression")
    version = _version(data, signature)
    tampered = data[:-1] + bytes([data[-1] ^ 0xFF])

    with pytest.raises(IntegrityError, match="integrity check failed"):
        LoadedModel.from_bytes(version, tampered)


def test_verify_checksum_accepts_uppercase_hex() -> None:
    verify_checksum(b"abc", sha256_hex(b"abc").upper(), what="x")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features": [{"name": "a"}, {"name": "a"}]}, "unique"),
        ({"features": []}, "at least 1"),
        ({"classes": None}, "lists its classes"),
        ({"features": [{"name": "a\nb"}]}, "feature name 'a\\\\nb' contains the control character U\\+000A"),
        ({"features": [{"name": "a", "type": "complex"}]}, "Input should be"),
    ],
)
def test_invalid_signatures_are_rejected(change: dict, message: str) -> None:
    raw = {"features": [{"name": "a"}, {"name": "b"}], "classes": [0, 1]} | change
    with pytest.raises(ValidationError, match=message):
        ModelSignature.model_validate(raw)


def test_load_session_rejects_a_graph_that_does_not_match_the_signature() -> None:
    _, data, signature = trained_model("logistic_regression")
    wrong = signature.model_copy(update={"features": signature.features[:3]})

    with pytest.raises(Invalid) as raised:
        load_session(data, wrong)
    assert "takes 10 features, signature lists 3" in raised.value.details[0]["msg"]


def test_load_session_rejects_bytes_that_are_not_onnx() -> None:
    _, _, signature = trained_model("logistic_regression")
    with pytest.raises(Invalid, match="not a loadable ONNX model"):
        load_session(b"\x80\x04not onnx at all", signature)
