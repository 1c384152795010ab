"""Optuna's search (the workflow's own ask-and-tell, ``mlops_core.training.search``) against
a 20-point grid over the same space, with no more trials, on the sample dataset.

Each configuration is scored as TrainCandidate scores it: the same deterministic split
(``split_indices``), the same estimator builder (``estimators.build``), the validation rows'
metric (``metrics.score``); then the winner of each side on the holdout, as Evaluate would.
No AWS: the study document lives in memory between rounds, as it would in S3.

    .venv/bin/python benchmarks/search_vs_grid.py [--seeds 5] [--metric roc_auc|log_loss]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import numpy as np

from infra.local.sample_data import breast_cancer
from mlops_core.data.schema import DatasetSchema, load_csv
from mlops_core.training import metrics
from mlops_core.training.estimators import CandidateSpec, build, check_candidate
from mlops_core.training.search import OptunaSearchSpec, StudyDocument, ask, budget_spent, tell
from mlops_core.training.splits import split_indices

FAMILY = "hist_gradient_boosting"
LEARNING_RATES = [0.01, 0.03, 0.1, 0.3, 0.9]
LEAVES = [4, 8, 16, 32]
TRIALS = len(LEARNING_RATES) * len(LEAVES)  # 20
FIXED = {"max_iter": 100, "early_stopping": False}
SPACE = {
    "learning_rate": {"type": "float", "low": 0.01, "high": 0.9, "log": True},
    "max_leaf_nodes": {"type": "int", "low": 4, "high": 32},
}


def _data() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    sample = breast_cancer()
    schema = DatasetSchema.model_validate(sample.schema)
    table = load_csv(sample.csv, schema)
    x = table.matrix([c.name for c in schema.features])
    y = table.columns[schema.target].astype(np.int64)
    train, validation, holdout = split_indices(
        y, task="classification", seed=42, holdout_fraction=0.2, validation_fraction=0.2
    )
    return x, y, {"train": train, "validation": validation, "holdout": holdout}


def _score(
    params: dict[str, Any], rows: str, data: tuple[Any, Any, dict[str, np.ndarray]]
) -> dict[str, float]:
    x, y, split = data
    full = check_candidate(CandidateSpec(family=FAMILY, params={**FIXED, **params}), "classification", 0)
    model = build(FAMILY, full, seed=42).fit(x[split["train"]], y[split["train"]])
    chosen = split[rows]
    return metrics.score(
        "classification", y[chosen], model.predict(x[chosen]), model.predict_proba(x[chosen]), [0, 1]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="Optuna runs, one per seed")
    parser.add_argument("--metric", default="roc_auc", choices=["roc_auc", "log_loss", "accuracy"])
    args = parser.parse_args()
    data = _data()
    higher = metrics.better(args.metric)

    def best_of(scored: list[tuple[dict[str, Any], float]]) -> tuple[dict[str, Any], float]:
        best = scored[0]
        for item in scored[1:]:
            if higher(item[1], best[1]):
                best = item
        return best

    started = time.perf_counter()
    grid = [
        (
            {"learning_rate": lr, "max_leaf_nodes": leaves},
            _score({"learning_rate": lr, "max_leaf_nodes": leaves}, "validation", data)[args.metric],
        )
        for lr, leaves in itertools.product(LEARNING_RATES, LEAVES)
    ]
    grid_best, grid_value = best_of(grid)
    grid_seconds = time.perf_counter() - started
    grid_holdout = _score(grid_best, "holdout", data)[args.metric]

    runs = []
    for seed in range(args.seeds):
        spec = OptunaSearchSpec(family=FAMILY, space=SPACE, params=FIXED, n_trials=TRIALS, parallelism=4)
        direction = "maximize" if metrics.HIGHER_IS_BETTER[args.metric] else "minimize"
        document = StudyDocument(family=FAMILY, metric=args.metric, direction=direction, started_at="-")
        started = time.perf_counter()
        while budget_spent(document, spec, 0) is None:
            asked = ask(document, spec, spec.parallelism, seed=seed)
            tell(
                document,
                [
                    {
                        "candidate_id": t.candidate_id,
                        "validation_metrics": _score(t.params, "validation", data),
                    }
                    for t in asked
                ],
            )
        best = document.best()
        assert best is not None
        runs.append(
            {
                "seed": seed,
                "trials": len(document.trials),
                "best_validation": best.value,
                "best_params": best.params,
                "holdout": _score(best.params, "holdout", data)[args.metric],
                "seconds": round(time.perf_counter() - started, 2),
                "at_least_as_good": not higher(grid_value, best.value or 0.0),
            }
        )
    summary = {
        "dataset": "breast-cancer sample (569 rows, 10 features), validation 20 %, holdout 20 %, seed 42",
        "family": FAMILY,
        "metric": args.metric,
        "grid": {
            "trials": TRIALS,
            "best_validation": grid_value,
            "best_params": grid_best,
            "holdout": grid_holdout,
            "seconds": round(grid_seconds, 2),
        },
        "optuna": runs,
        "optuna_at_least_as_good": f"{sum(r['at_least_as_good'] for r in runs)}/{len(runs)}",
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
