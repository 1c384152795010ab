"""Train / validation / holdout splits, the same in every step that cuts them, and what the
target must hold for every metric to have a value on them (checked in ValidateData)."""

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


def target_problems(
    y: np.ndarray,
    target: str,
    *,
    task: str,
    seed: int,
    holdout_fraction: float,
    validation_fraction: float,
    class_names: list[str] | None = None,
) -> list[str]:
    """Why some metric of ``task`` could not be computed on these target values once split
    (none: every metric has a value on the validation and the holdout rows).

    Every row needs a target; class labels are whole numbers, at least two of them; each
    class has training rows (the model would not know it otherwise), and the validation
    and holdout rows hold two classes or more (ROC AUC needs them), or, for regression,
    two rows or more (R²). ``class_names``: a text target's categories, by code (classes are
    named by them in the messages).
    """

    def shown(code: float) -> str:
        return class_names[int(code)] if class_names is not None else f"{code:g}"

    nulls = int(np.isnan(y).sum())
    if nulls:
        return [f"the target '{target}' has {nulls} null value(s): every row needs one to train on"]
    classification = task == "classification"
    if classification:
        if (fractional := y[y != np.round(y)]).size:
            return [
                f"the target '{target}' has non-integer values (e.g. {fractional[0]:g}): labels are integers"
            ]
        if (classes := np.unique(y)).size < 2:
            return [
                f"the target '{target}' has one class ({shown(classes[0])}); a classifier needs at least two"
            ]
    train, validation, holdout = split_indices(
        y, task=task, seed=seed, holdout_fraction=holdout_fraction, validation_fraction=validation_fraction
    )
    problems = []
    if classification and (untrained := np.setdiff1d(y, y[train])).size:
        listed = ", ".join(f"{shown(c)} ({int(np.sum(y == c))} row(s))" for c in untrained)
        problems.append(
            f"no training rows for class(es) of '{target}': {listed}; add rows or lower the fractions"
        )
    for part, rows, fraction in (
        ("validation", validation, "validation_fraction"),
        ("holdout", holdout, "holdout_fraction"),
    ):
        if classification and (present := np.unique(y[rows]).size) < 2:
            problems.append(
                f"the {part} rows ({rows.size}) hold {present} class(es) of '{target}'; roc_auc needs two: "
                f"add rows of each class or raise {fraction}"
            )
        elif not classification and rows.size < 2:
            problems.append(
                f"the {part} split has {rows.size} row(s); r2 needs two: add rows or raise {fraction}"
            )
    return problems
