"""Train / validation / holdout splits, the same in every step that cuts them."""

from __future__ import annotations

import numpy as np


def split_indices(
    y: np.ndarray, *, task: str, seed: int, holdout_fraction: float, validation_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic (train, validation, holdout) row indices; stratified for classification.

    Pure numpy, so TrainCandidate and Evaluate (which has no scikit-learn) cut exactly
    the same rows from the same seed.
    """
    rng = np.random.default_rng(seed)
    groups = (
        [np.flatnonzero(y == c) for c in np.unique(y)] if task == "classification" else [np.arange(len(y))]
    )
    train, validation, holdout = [], [], []
    for group in groups:
        shuffled = rng.permutation(group)
        n_holdout = round(len(shuffled) * holdout_fraction)
        n_validation = round(len(shuffled) * validation_fraction)
        holdout.append(shuffled[:n_holdout])
        validation.append(shuffled[n_holdout : n_holdout + n_validation])
        train.append(shuffled[n_holdout + n_validation :])
    return tuple(np.sort(np.concatenate(part)) for part in (train, validation, holdout))  # type: ignore[return-value]
