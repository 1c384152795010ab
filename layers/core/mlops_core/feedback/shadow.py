"""Scoring a request's shadow version off the request's path.

The inference function names the shadow in its capture line and answers without it; the
capture function scores the captured rows with the shadow version here and records its
answers beside the served ones (the prediction log row and the bulk capture), so a shadow
test costs the caller nothing. Rows are matched to the shadow's signature by feature
name: a shadow that needs a feature the served version did not get cannot be scored, and
says so in ``shadow_error`` (so does one whose artifact fails its integrity check).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from mlops_core.errors import MlopsError
from mlops_core.serving.capture import CapturedPrediction
from mlops_core.serving.predictor import Predictor


class ShadowScorer:
    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor

    def score(self, rows: Sequence[CapturedPrediction]) -> list[CapturedPrediction]:
        """The rows, those with a shadow version carrying its answers (or the reason it has none)."""
        groups: dict[tuple[str, int, tuple[str, ...]], list[int]] = defaultdict(list)
        for index, row in enumerate(rows):
            if row.shadow_version is not None and row.shadow_prediction is None and row.shadow_error is None:
                groups[(row.model_name, row.shadow_version, tuple(row.features))].append(index)
        scored = list(rows)
        for (model, version, features), indices in groups.items():
            for index, update in zip(
                indices, self._score_group(model, version, features, rows, indices), strict=True
            ):
                scored[index] = rows[index].model_copy(update=update)
        return scored

    def _score_group(
        self,
        model: str,
        version: int,
        features: tuple[str, ...],
        rows: Sequence[CapturedPrediction],
        indices: list[int],
    ) -> list[dict[str, object]]:
        try:
            loaded = self.predictor.load(self.predictor.resolve_version(model, version))
        except MlopsError as error:
            return [{"shadow_error": error.message}] * len(indices)
        wanted = loaded.version.signature.feature_names
        missing = [name for name in wanted if name not in features]
        if missing:
            message = f"the shadow needs features the served version did not get: {', '.join(missing[:5])}"
            return [{"shadow_error": message}] * len(indices)
        columns = [features.index(name) for name in wanted]
        inputs = np.array([rows[i].inputs for i in indices], dtype=np.float64)
        if np.isnan(inputs).any():
            return [{"shadow_error": "a captured input is missing"}] * len(indices)
        dtype = np.float32 if loaded.version.signature.input_dtype == "float32" else np.float64
        predictions, probabilities = loaded.run(inputs[:, columns].astype(dtype))
        return [
            {
                "shadow_prediction": predictions[k],
                "shadow_probabilities": None if probabilities is None else probabilities[k],
            }
            for k in range(len(indices))
        ]
