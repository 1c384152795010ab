"""What pruning saves: Optuna's search with each pruner against the same search without one
and the 20-point grid of ``search_vs_grid.py``, on the sample dataset, same seeds, same run.

Each trial trains as TrainCandidate trains a search trial under a pruner: the study rebuilt
from the document of the earlier rounds (``pruning.trial_in_study``), the estimator trained in
steps of ``--interval`` iterations with ``pruning.fit_in_steps`` (validation metric reported at each step),
the result told with ``search.tell`` (PRUNED with its curve, or COMPLETE). Measured: boosting
iterations trained over all trials (the work a pruner saves, independent of load), the CPU
seconds of the trials' training (``time.process_time``), and the best validation value against
the grid's (the search must stay at least as good), and its holdout value. One OpenMP thread.

    .venv/bin/python benchmarks/search_pruning.py [--seeds 5] [--metric log_loss|roc_auc] [--interval 10]
        [--trials 20]
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from benchmarks.search_vs_grid import FAMILY, FIXED, LEARNING_RATES, LEAVES, SPACE, TRIALS, _data, _score
from mlops_core.training import metrics
from mlops_core.training.estimators import CandidateSpec, build, check_candidate
from mlops_core.training.pruning import fit_in_steps, parse_pruner, trial_in_study
from mlops_core.training.search import OptunaSearchSpec, StudyDocument, ask, budget_spent, tell

PRUNERS: dict[str, dict[str, Any] | None] = {
    "none": None,
    "median": {"type": "median", "n_startup_trials": 4},
    "median_warmup_50": {"type": "median", "n_startup_trials": 4, "n_warmup_steps": 50},
    "successive_halving": {"type": "successive_halving", "min_resource": 10, "reduction_factor": 3},
    "hyperband": {"type": "hyperband", "min_resource": 10, "max_resource": 100, "reduction_factor": 3},
}


def _trial(
    document: StudyDocument,
    pruner: dict[str, Any],
    number: int,
    params: dict[str, Any],
    metric: str,
    data: tuple[Any, Any, dict[str, np.ndarray]],
) -> dict[str, Any]:
    """One trial as TrainCandidate's ``fit_trial`` trains it under a pruner: its Map result."""
    x, y, split = data
    spec = parse_pruner(pruner)
    full = check_candidate(CandidateSpec(family=FAMILY, params={**FIXED, **params}), "classification", 0)
    trial = trial_in_study(document, spec, "benchmark", number)
    xv, yv = x[split["validation"]], y[split["validation"]]

    def score(model: Any) -> float:
        scores = metrics.score("classification", yv, model.predict(xv), model.predict_proba(xv), [0, 1])
        return scores[metric]

    model, curve = fit_in_steps(
        build(FAMILY, full, seed=42),
        FAMILY,
        full,
        fit=lambda m: m.fit(x[split["train"]], y[split["train"]]),
        score=score,
        trial=trial,
        interval=spec.interval,
    )
    result: dict[str, Any] = {"candidate_id": f"t{number:03d}", "curve": curve.model_dump()}
    if curve.pruned_at_step is not None:
        step = curve.pruned_at_step
        return result | {"state": "PRUNED", "step": step, "value": curve.intermediate_values[str(step)]}
    return result | {"validation_metrics": {metric: score(model)}}


def _search(
    pruner: dict[str, Any] | None,
    seed: int,
    metric: str,
    data: tuple[Any, Any, dict[str, np.ndarray]],
    trials: int = TRIALS,
) -> dict[str, Any]:
    spec = OptunaSearchSpec(
        family=FAMILY, space=SPACE, params=FIXED, n_trials=trials, parallelism=4, pruner=pruner
    )
    direction = "maximize" if metrics.HIGHER_IS_BETTER[metric] else "minimize"
    document = StudyDocument(family=FAMILY, metric=metric, direction=direction, started_at="-")
    cpu = 0.0
    while budget_spent(document, spec, 0) is None:
        asked = ask(document, spec, spec.parallelism, seed=seed, study_name="benchmark")
        started = time.process_time()
        if pruner is None:  # trained whole, in one fit, as TrainCandidate without a pruner
            results = [
                {"candidate_id": t.candidate_id, "validation_metrics": _score(t.params, "validation", data)}
                for t in asked
            ]
        else:
            results = [_trial(document, pruner, t.number, t.params, metric, data) for t in asked]
        cpu += time.process_time() - started
        tell(document, results)
    best = document.best()
    assert best is not None
    iterations = sum(
        t.steps_trained if t.steps_trained is not None else FIXED["max_iter"] for t in document.trials
    )
    return {
        "seed": seed,
        "trials": len(document.trials),
        "pruned": sum(t.state == "PRUNED" for t in document.trials),
        "iterations": iterations,
        "cpu_seconds": round(cpu, 3),
        "best_validation": best.value,
        "best_params": best.params,
        "holdout": _score(best.params, "holdout", data)[metric],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="Searches per pruner, one per seed")
    parser.add_argument("--metric", default="log_loss", choices=["roc_auc", "log_loss", "accuracy"])
    parser.add_argument("--interval", type=int, default=10, help="Iterations per step (the pruners')")
    parser.add_argument(
        "--trials", type=int, default=TRIALS, help="Trials per search (the grid has 20; pruning frees budget)"
    )
    args = parser.parse_args()
    # One OpenMP thread per fit, as each parallel trial would have: on a shared machine,
    # gradient boosting's threads contend and their wait would swamp what is measured.
    import sklearn.ensemble  # noqa: F401  (loads OpenMP, so that the limit applies to it)

    threadpool_limits(1)
    data = _data()
    higher = metrics.better(args.metric)
    grid = [
        _score({"learning_rate": lr, "max_leaf_nodes": leaves}, "validation", data)[args.metric]
        for lr, leaves in itertools.product(LEARNING_RATES, LEAVES)
    ]
    grid_value = grid[0]
    for value in grid[1:]:
        grid_value = value if higher(value, grid_value) else grid_value
    out: dict[str, Any] = {
        "dataset": "breast-cancer sample (569 rows), validation 20 %, holdout 20 %, seed 42",
        "family": FAMILY,
        "metric": args.metric,
        "interval": args.interval,
        "trials_per_search": args.trials,
        "grid": {"trials": TRIALS, "iterations": TRIALS * FIXED["max_iter"], "best_validation": grid_value},
        "pruners": {},
    }
    baseline: dict[int, dict[str, Any]] = {}

    def same(run: dict[str, Any]) -> bool:
        return bool(run["best_params"] == baseline[run["seed"]]["best_params"])

    for name, declared in PRUNERS.items():
        pruner = None if declared is None else declared | {"interval": args.interval}
        runs = [_search(pruner, seed, args.metric, data, args.trials) for seed in range(args.seeds)]
        if pruner is None:
            baseline = {r["seed"]: r for r in runs}
        iterations = sum(r["iterations"] for r in runs)
        cpu = sum(r["cpu_seconds"] for r in runs)
        out["pruners"][name] = {
            "pruner": pruner,
            "pruned_trials": sum(r["pruned"] for r in runs),
            "trials": sum(r["trials"] for r in runs),
            "iterations": iterations,
            "iterations_vs_no_pruner": round(iterations / sum(b["iterations"] for b in baseline.values()), 3),
            "iterations_per_search_vs_grid": round(iterations / len(runs) / (TRIALS * FIXED["max_iter"]), 3),
            "cpu_seconds": round(cpu, 2),
            "cpu_vs_no_pruner": round(cpu / sum(b["cpu_seconds"] for b in baseline.values()), 3),
            "at_least_as_good_as_grid": f"{sum(not higher(grid_value, r['best_validation']) for r in runs)}"
            f"/{len(runs)}",
            "same_best_as_no_pruner": f"{sum(same(r) for r in runs)}/{len(runs)}",
            "runs": runs,
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
