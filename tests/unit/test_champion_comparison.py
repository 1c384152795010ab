"""Evaluate scores the champion on the candidate's holdout only when that means the same
thing; otherwise the run records why not (instead of failing inside a metric)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlops_core.data.schema import Table
from mlops_core.registry.signature import ModelSignature
from mlops_core.training.evaluation import why_not_comparable

TABLE = Table(columns={"a": np.zeros(3), "b": np.zeros(3), "y": np.zeros(3)}, rows=3)
CANDIDATE = ModelSignature.model_validate({"features": [{"name": "a"}, {"name": "b"}], "classes": [0, 1, 2]})


@pytest.mark.parametrize(
    ("champion", "metric", "reason"),
    [
        ({}, "roc_auc", None),
        ({"features": [{"name": "b"}]}, "roc_auc", None),
        ({"task": "regression", "classes": None}, "roc_auc", "the champion is a regression model"),
        ({"features": [{"name": "c"}]}, "f1", "the champion needs features the dataset lacks: ['c']"),
        ({"classes": [0, 1]}, "f1", "the champion's classes [0, 1] are not the candidate's [0, 1, 2]"),
        ({"classes": ["no", "maybe", "yes"]}, "f1", "the champion's classes ['no', 'maybe', 'yes'] are not"),
        (
            {"probabilities_output": None},
            "log_loss",
            "the champion outputs no probabilities, so it has no log_loss",
        ),
        ({"probabilities_output": None}, "accuracy", None),
    ],
)
def test_a_champion_is_compared_only_on_the_same_terms(
    champion: dict[str, Any], metric: str, reason: str | None
) -> None:
    signature = ModelSignature.model_validate(CANDIDATE.model_dump() | champion)
    found = why_not_comparable(signature, CANDIDATE, TABLE, metric)
    assert found == reason if reason is None else found is not None and found.startswith(reason)
