"""The numpy metrics agree with scikit-learn's on random data, to 1e-9: two to six
classes, integer and string labels as a signature's ``classes`` holds them, classes
absent from the rows (as in a small validation split), tied and saturated
probabilities. Seeded loops, so a failure names the case that broke."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from mlops_core.training import metrics

TOLERANCE = 1e-9
CASES = 300


@dataclass
class Case:
    seed: int
    classes: list[object]
    y: np.ndarray
    predicted: np.ndarray
    p: np.ndarray

    @property
    def present(self) -> list[int]:
        return [i for i, c in enumerate(self.classes) if np.any(self.y == c)]


def _labels(rng: np.random.Generator, k: int) -> list[object]:
    """Sorted (as an estimator's ``classes_`` are): small ints, arbitrary ints, or strings."""
    kind = rng.integers(3)
    if kind == 0:
        return list(range(k))
    if kind == 1:
        return sorted(int(v) for v in rng.choice(np.arange(-50, 50), size=k, replace=False))
    return sorted(
        str(v) for v in rng.choice(["ant", "bee", "cat", "dog", "eel", "fox", "gnu"], k, replace=False)
    )


def _probabilities(rng: np.random.Generator, n: int, k: int, y_index: np.ndarray) -> np.ndarray:
    style = rng.integers(4)
    if style == 0:  # smooth, informative
        p = rng.dirichlet(np.ones(k), n) + np.eye(k)[y_index] * rng.random()
    elif style == 1:  # a few distinct rows: many exact ties in every column
        p = rng.dirichlet(np.ones(k), 4)[rng.integers(4, size=n)]
    elif style == 2:  # saturated: exact zeros and ones
        p = np.eye(k)[rng.integers(k, size=n)]
    else:  # near-uniform
        p = np.full((n, k), 1.0) + rng.random((n, k)) * 1e-3
    return np.asarray(p / p.sum(axis=1, keepdims=True))


def _cases(min_classes: int = 2, max_classes: int = 6) -> Iterator[Case]:
    for seed in range(CASES):
        rng = np.random.default_rng(seed)
        k = int(rng.integers(min_classes, max_classes + 1))
        classes = _labels(rng, k)
        n = int(rng.integers(4, 300))
        # Some classes absent from the rows, as in a small validation split.
        in_rows = (
            np.arange(k) if rng.random() < 0.5 else rng.choice(k, int(rng.integers(1, k + 1)), replace=False)
        )
        y_index = rng.choice(in_rows, n)
        # Predictions: mostly right, sometimes any class (including absent ones).
        predicted_index = np.where(rng.random(n) < rng.random(), y_index, rng.integers(k, size=n))
        values = np.asarray(classes, dtype=object)
        y, predicted = np.asarray(values[y_index].tolist()), np.asarray(values[predicted_index].tolist())
        yield Case(seed, classes, y, predicted, _probabilities(rng, n, k, y_index))


def _report(name: str, differences: list[float]) -> None:
    print(f"\n{name}: {len(differences)} cases, max |numpy - scikit-learn| = {max(differences):.3g}")
    assert max(differences) <= TOLERANCE


def test_accuracy_matches_scikit_learn() -> None:
    differences = [
        abs(metrics.accuracy(c.y, c.predicted) - skm.accuracy_score(c.y, c.predicted)) for c in _cases()
    ]
    _report("accuracy", differences)


def test_multiclass_f1_is_scikit_learns_macro_f1() -> None:
    differences = []
    for case in _cases(min_classes=3):
        ours = metrics.score("classification", case.y, case.predicted, None, case.classes)["f1"]
        differences.append(abs(ours - skm.f1_score(case.y, case.predicted, average="macro")))
    _report("macro f1", differences)


def test_binary_f1_is_the_f1_of_the_second_class() -> None:
    differences = []
    for case in _cases(max_classes=2):
        ours = metrics.score("classification", case.y, case.predicted, None, case.classes)["f1"]
        expected = skm.f1_score(
            case.y, case.predicted, labels=case.classes, pos_label=case.classes[1], zero_division=0
        )
        differences.append(abs(ours - expected))
    _report("binary f1", differences)


def test_multiclass_roc_auc_is_scikit_learns_one_vs_rest_macro_auc() -> None:
    """Every class present: exactly ``roc_auc_score(multi_class="ovr", average="macro")``.
    Some absent: the same average over the classes present (scikit-learn answers NaN)."""
    all_present, some_absent = [], []
    for case in _cases(min_classes=3):
        if len(case.present) < 2:
            with pytest.raises(metrics.UndefinedMetric, match="at least two classes"):
                metrics.roc_auc_ovr(case.y, case.p, case.classes)
            continue
        ours = metrics.score("classification", case.y, case.predicted, case.p, case.classes)["roc_auc"]
        if len(case.present) == len(case.classes):
            expected = skm.roc_auc_score(
                case.y, case.p, multi_class="ovr", average="macro", labels=case.classes
            )
            all_present.append(abs(ours - expected))
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UndefinedMetricWarning)
                assert np.isnan(
                    skm.roc_auc_score(case.y, case.p, multi_class="ovr", average="macro", labels=case.classes)
                )
            expected = np.mean(
                [skm.roc_auc_score(case.y == case.classes[i], case.p[:, i]) for i in case.present]
            )
            some_absent.append(abs(ours - expected))
    _report("ovr macro roc_auc, every class present", all_present)
    _report("ovr macro roc_auc, some classes absent", some_absent)


def test_binary_roc_auc_is_the_auc_of_the_second_class() -> None:
    differences = []
    for case in _cases(max_classes=2):
        if len(case.present) < 2:
            continue
        ours = metrics.score("classification", case.y, case.predicted, case.p, case.classes)["roc_auc"]
        differences.append(abs(ours - skm.roc_auc_score(case.y == case.classes[1], case.p[:, 1])))
    _report("binary roc_auc", differences)


def test_log_loss_matches_scikit_learn_over_the_models_classes() -> None:
    differences = []
    for case in _cases():
        if len(case.present) < 2:
            continue
        ours = metrics.log_loss(case.y, case.p, case.classes)
        differences.append(abs(ours - skm.log_loss(case.y, case.p, labels=case.classes)))
    _report("log_loss", differences)


def test_regression_metrics_match_scikit_learn() -> None:
    rmse, r2 = [], []
    for seed in range(CASES):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 300))
        y = rng.normal(scale=rng.uniform(0.1, 100), size=n) + rng.normal(scale=50)
        predicted = y + rng.normal(scale=rng.uniform(0, 2) * y.std(), size=n)
        scores = metrics.score("regression", y, predicted)
        rmse.append(abs(scores["rmse"] - np.sqrt(skm.mean_squared_error(y, predicted))))
        r2.append(abs(scores["r2"] - skm.r2_score(y, predicted)))
    _report("rmse", rmse)
    _report("r2", r2)


def test_a_label_the_model_does_not_know_is_named() -> None:
    with pytest.raises(metrics.UndefinedMetric, match="lack: 'zebra'"):
        metrics.log_loss(np.array(["ant", "zebra"]), np.full((2, 2), 0.5), ["ant", "bee"])
