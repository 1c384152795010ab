"""scikit-learn to ONNX (skl2onnx), with the signature that describes the result.

Needs the science layer (scikit-learn, skl2onnx, onnx): imported by training and tools,
never by the inference function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from skl2onnx import to_onnx
from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
from sklearn.base import is_classifier

from mlops_core.data.types import FeatureType
from mlops_core.registry.signature import FeatureSpec, ModelSignature

# Opset pinned so that exports are reproducible across skl2onnx upgrades and load on
# the pinned onnxruntime; the ai.onnx.ml domain version follows skl2onnx's default.
TARGET_OPSET = 18


def _final_estimator(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def export_sklearn(
    estimator: Any,
    feature_names: Sequence[str],
    *,
    feature_types: Sequence[FeatureType] | None = None,
    nullable: Sequence[bool] | None = None,
    categories: Sequence[list[str] | None] | None = None,
    class_names: Sequence[str] | None = None,
    target: str | None = None,
    input_dtype: Literal["float32", "float64"] = "float32",
) -> tuple[bytes, ModelSignature]:
    """ONNX bytes and signature for a fitted scikit-learn estimator or pipeline.

    Classifiers export a ``label`` output and a ``probabilities`` matrix (no ZipMap, so
    the output is a plain tensor); regressors a ``variable`` output. ``nullable``: per
    feature, whether the model takes a missing value (NaN) there. ``categories``: per
    feature, a category feature's values (its codes' names), else None. ``class_names``: a
    text target's categories, by code (the signature then names each class).
    """
    n_features = len(feature_names)
    tensor = FloatTensorType if input_dtype == "float32" else DoubleTensorType
    classifier = is_classifier(estimator)
    options = {id(_final_estimator(estimator)): {"zipmap": False}} if classifier else None
    onnx_model = to_onnx(
        estimator,
        initial_types=[("input", tensor([None, n_features]))],
        options=options,
        target_opset={"": TARGET_OPSET, "ai.onnx.ml": 3},
    )
    types = list(feature_types) if feature_types is not None else ["double"] * n_features
    missing = list(nullable) if nullable is not None else [False] * n_features
    coded = list(categories) if categories is not None else [None] * n_features
    classes = [c.item() if isinstance(c, np.generic) else c for c in getattr(estimator, "classes_", [])]
    names = [class_names[int(c)] for c in classes] if class_names is not None and classes else None
    signature = ModelSignature(
        task="classification" if classifier else "regression",
        features=[
            FeatureSpec(name=n, type=t, nullable=m, categories=c)
            for n, t, m, c in zip(feature_names, types, missing, coded, strict=True)
        ],
        classes=classes or None,
        class_names=names,
        target=target,
        input_name="input",
        input_dtype=input_dtype,
        label_output="label" if classifier else "variable",
        probabilities_output="probabilities" if classifier else None,
    )
    return onnx_model.SerializeToString(), signature
