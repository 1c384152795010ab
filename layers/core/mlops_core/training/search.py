"""Hyper-parameter search with Optuna, one round at a time (ask-and-tell).

A search request declares a space over one estimator family's parameters
(``OptunaSearchSpec``) and a budget (trials, rounds, seconds). The workflow's SearchRound
step tells the study the results of the round the Map just trained, decides whether the
budget is spent, and if not asks the next round's trials, which the Map trains in
parallel with the same TrainCandidate function as fixed candidates.

Between rounds the study lives in S3 as a JSON document of its trials (``StudyDocument``,
at ``keys.search_study``): each round rebuilds an in-memory study from it with
``study.add_trials`` and asks from that (docs/decision_log.md says why not a journal
file). Everything here but ``ask`` runs on the core layer: checking a space needs no
Optuna, so ``POST /training`` rejects a bad space (422) before anything starts.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from mlops_core.errors import Invalid, detail
from mlops_core.registry.entities import HIGHER_IS_BETTER
from mlops_core.training import metrics
from mlops_core.training.estimators import FAMILIES, CandidateSpec, check_candidate
from mlops_core.training.pruning import Pruner, PrunerSpec, build_pruner, replayed

#: The most trials a search may ask for, and the most it trains at once (the Map's concurrency).
MAX_TRIALS = 256
MAX_PARALLELISM = 16
MAX_ROUNDS = 64
#: Where ``check_candidate`` locates a parameter's problem: ["body", "candidates", i, "params", name].
CANDIDATE_PARAMS_LOC = ("body", "candidates", 0, "params")
SEARCH_LOC: list[str | int] = ["body", "search"]
Direction = Literal["maximize", "minimize"]
TrialState = Literal["RUNNING", "COMPLETE", "FAIL", "PRUNED"]


class _Dimension(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FloatRange(_Dimension):
    type: Literal["float"]
    low: float
    high: float
    log: bool = Field(default=False, description="Sample on a log scale (low must be > 0)")
    step: float | None = Field(default=None, gt=0, description="Discretize (not with log)")


class IntRange(_Dimension):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    step: int = Field(default=1, ge=1)


Choice = str | int | float | bool | None


class Categorical(_Dimension):
    type: Literal["categorical"]
    choices: list[Choice] = Field(min_length=1, max_length=64)


Dimension = Annotated[FloatRange | IntRange | Categorical, Field(discriminator="type")]


class OptunaSearchSpec(BaseModel):
    """Optuna's search over one family: ``space`` (sampled), ``params`` (fixed), a budget."""

    model_config = ConfigDict(extra="forbid")

    family: str
    space: dict[str, Dimension] = Field(min_length=1, description="Parameter -> float, int or categorical")
    params: dict[str, Any] = Field(default_factory=dict, description="Fixed parameters of every trial")
    n_trials: int | None = Field(default=None, ge=1, le=MAX_TRIALS, description="Trials in all")
    rounds: int | None = Field(default=None, ge=1, le=MAX_ROUNDS, description="Ask-train-tell rounds")
    parallelism: int = Field(default=4, ge=1, le=MAX_PARALLELISM, description="Trials per round")
    timeout_seconds: int | None = Field(
        default=None, ge=1, le=86_400, description="No new round starts after this long"
    )
    metric: str | None = Field(default=None, description="Validation metric to optimize; the target metric")
    direction: Direction | None = Field(default=None, description="Must agree with the metric if given")
    sampler: Literal["tpe", "random"] = "tpe"
    pruner: PrunerSpec | None = Field(
        default=None,
        description="Optuna's pruner for families that train in steps (boosting by iterations, "
        "forests by trees); other families' trials are never pruned",
    )

    @model_validator(mode="after")
    def _budget(self) -> OptunaSearchSpec:
        if self.n_trials is None and self.rounds is None and self.timeout_seconds is None:
            raise ValueError("a search needs a budget: n_trials, rounds or timeout_seconds")
        return self

    @property
    def max_trials(self) -> int:
        if self.n_trials is not None:
            return self.n_trials
        if self.rounds is not None:
            return min(MAX_TRIALS, self.rounds * self.parallelism)
        return MAX_TRIALS

    @property
    def max_rounds(self) -> int:
        return self.rounds if self.rounds is not None else math.ceil(self.max_trials / self.parallelism)


def _accepts(annotation: Any, kind: type) -> bool:
    """Whether a parameter annotated ``annotation`` takes values of ``kind`` (int or float)."""
    if typing.get_origin(annotation) in (Union, types.UnionType):
        return any(_accepts(a, kind) for a in typing.get_args(annotation))
    # An int range suits a float parameter too (ints are floats to it), not the reverse.
    return annotation is float or (kind is int and annotation is int)


def _checked(
    spec: OptunaSearchSpec, values: dict[str, Any], where: list[str | int], *, named: bool
) -> list[dict[str, Any]]:
    """``values`` through the family's checks: the problems, located at ``where`` (plus the
    parameter's name when ``named``, for fixed params)."""
    try:
        check_candidate(CandidateSpec(family=spec.family, params=values), None, 0)
    except Invalid as error:
        problems = []
        for d in error.details or []:
            tail = list(d["loc"][len(CANDIDATE_PARAMS_LOC) :])
            problems.append(
                detail([*SEARCH_LOC, *where, *(tail if named else tail[1:])], d["msg"], d["type"])
            )
        return problems
    return []


def _dimension_problems(spec: OptunaSearchSpec, name: str, dimension: Any) -> list[dict[str, Any]]:
    where: list[str | int] = ["space", name]
    at = [*SEARCH_LOC, *where]
    fields = FAMILIES[spec.family][0].model_fields
    if name not in fields or name in spec.params:
        unknown = name not in fields
        message = (
            f"'{spec.family}' has no parameter '{name}'"
            if unknown
            else f"'{name}' is both fixed and searched"
        )
        return [detail(at, message, "unknown_parameter" if unknown else "conflict")]
    if isinstance(dimension, Categorical):
        return [
            p
            for i, choice in enumerate(dimension.choices)
            for p in _checked(spec, {**spec.params, name: choice}, [*where, "choices", i], named=False)
        ]
    kind = int if isinstance(dimension, IntRange) else float
    if not _accepts(fields[name].annotation, kind):
        return [detail([*at, "type"], f"'{name}' does not take {kind.__name__} values", "wrong_type")]
    if dimension.low > dimension.high or (kind is float and dimension.low == dimension.high):
        return [detail(at, "low must be below high", "empty_range")]
    if dimension.log and (dimension.low <= 0 or getattr(dimension, "step", None) not in (None, 1)):
        return [detail([*at, "log"], "a log scale needs low > 0 and no step", "bad_log")]
    return [
        p
        for bound in ("low", "high")
        for p in _checked(
            spec, {**spec.params, name: getattr(dimension, bound)}, [*where, bound], named=False
        )
    ]


def _objective(
    spec: OptunaSearchSpec, task: str | None, target_metric: str | None
) -> tuple[str | None, Direction, list[dict[str, Any]]]:
    metric = spec.metric or target_metric
    if metric is None:
        return None, spec.direction or "maximize", []
    problem = f"unknown metric '{metric}'" if metric not in HIGHER_IS_BETTER else None
    if problem is None and task in ("classification", "regression"):
        problem = metrics.metric_problem(metric, task)  # type: ignore[arg-type]
    if problem:
        return metric, "maximize", [detail([*SEARCH_LOC, "metric"], problem, "metric_undefined")]
    direction: Direction = "maximize" if HIGHER_IS_BETTER[metric] else "minimize"
    if spec.direction is not None and spec.direction != direction:
        message = f"{metric} is to {direction}, not {spec.direction}"
        return metric, direction, [detail([*SEARCH_LOC, "direction"], message, "wrong_direction")]
    return metric, direction, []


def check_space(spec: OptunaSearchSpec, task: str | None, target_metric: str | None) -> tuple[str, Direction]:
    """The metric and direction the search optimizes, or ``Invalid`` naming each problem.

    Every dimension must be a parameter of the family, of the type the family takes, with
    bounds (and choices) the family's checks accept; fixed ``params`` are checked too.
    ``task`` and ``target_metric`` are the dataset's (None when not known yet).
    """
    if spec.family not in FAMILIES:
        raise Invalid(
            f"search: unknown estimator family '{spec.family}'",
            details=[detail([*SEARCH_LOC, "family"], f"one of {sorted(FAMILIES)}", "unknown_family")],
        )
    family_task = FAMILIES[spec.family][1]
    if task is not None and family_task != task:
        message = f"search: '{spec.family}' is a {family_task} family, the dataset is {task}"
        raise Invalid(
            message, details=[detail([*SEARCH_LOC, "family"], f"not a {task} family", "task_mismatch")]
        )
    problems = _checked(spec, dict(spec.params), ["params"], named=True)
    for name, dimension in spec.space.items():
        problems += _dimension_problems(spec, name, dimension)
    metric, direction, objective_problems = _objective(spec, task, target_metric)
    problems += objective_problems
    if problems:
        summary = "; ".join(f"{'.'.join(map(str, p['loc'][2:]))}: {p['msg']}" for p in problems[:10])
        raise Invalid(f"search ({spec.family}): {summary}", details=problems)
    return metric or "", direction


# ---- The study between rounds -----------------------------------------------------------
class Trial(BaseModel):
    """One trial as the study document keeps it."""

    model_config = ConfigDict(extra="forbid")

    number: int
    candidate_id: str
    round: int
    params: dict[str, Any] = Field(description="The sampled parameters only")
    state: TrialState
    value: float | None = None
    error: str | None = None
    result: dict[str, Any] | None = Field(default=None, description="TrainCandidate's result")
    pruned_at_step: int | None = Field(default=None, description="A PRUNED trial's last step")
    steps_trained: int | None = Field(default=None, description="Iterations (trees) trained in steps")
    intermediate_values: dict[str, float] | None = Field(
        default=None, description="Step -> validation value, for pruners (a trial trained in steps)"
    )
    system_attrs: dict[str, Any] | None = Field(default=None, description="The pruner's bookkeeping")


class StudyDocument(BaseModel):
    """The study in S3: what every round rebuilds an Optuna study from."""

    model_config = ConfigDict(extra="forbid")

    family: str
    metric: str
    direction: Direction
    started_at: str
    round: int = 0
    trials: list[Trial] = Field(default_factory=list)
    pruner: dict[str, Any] | None = Field(default=None, description="The search's pruner, as declared")
    pruner_note: str | None = Field(default=None, description="Why the pruner prunes nothing, if so")

    def told(self) -> list[Trial]:
        return [t for t in self.trials if t.state != "RUNNING"]

    def best(self) -> Trial | None:
        complete = [t for t in self.trials if t.state == "COMPLETE" and t.value is not None]
        if not complete:
            return None
        sign = 1.0 if self.direction == "maximize" else -1.0
        # Ties: the earliest trial (max keeps the first of equals).
        return max(complete, key=lambda t: (sign * (t.value or 0.0), -t.number))

    def summary(self) -> dict[str, Any]:
        """What the run record keeps: every trial and the best."""
        best = self.best()
        return {
            "family": self.family,
            "metric": self.metric,
            "direction": self.direction,
            "rounds": self.round,
            "trials": [
                t.model_dump(exclude={"result", "intermediate_values", "system_attrs"}, exclude_none=True)
                for t in self.trials
            ],
            **({"pruner": self.pruner} if self.pruner is not None else {}),
            **({"pruner_note": self.pruner_note} if self.pruner_note else {}),
            **({"pruned": sum(t.state == "PRUNED" for t in self.trials)} if self.pruner is not None else {}),
            "best": None
            if best is None
            else {
                "number": best.number,
                "candidate_id": best.candidate_id,
                "value": best.value,
                "params": best.params,
            },
        }


def trial_candidate_id(number: int) -> str:
    return f"t{number:03d}"


def tell(document: StudyDocument, results: list[dict[str, Any]]) -> None:
    """Record the Map's results on the trials still RUNNING (a retried tell changes nothing).

    A result is TrainCandidate's output, or its input with ``error`` when it failed (the
    Map's Catch): a FAIL trial. A result without a finite value of the metric fails too. A
    result with ``state: PRUNED`` (``pruning``) is a PRUNED trial: its last step's value, its
    curve; a completed trial trained in steps keeps its curve too, for later rounds' pruners.
    """
    by_id = {t.candidate_id: t for t in document.trials}
    for result in results:
        trial = by_id.get(str(result.get("candidate_id")))
        if trial is None or trial.state != "RUNNING":
            continue
        if "error" in result:
            error = result["error"] if isinstance(result["error"], dict) else {}
            trial.state, trial.error = (
                "FAIL",
                f"{error.get('Error', 'Error')}: {error.get('Cause', '')}"[:500],
            )
            continue
        curve = result.get("curve")
        if isinstance(curve, dict):
            trial.intermediate_values = curve.get("intermediate_values")
            trial.system_attrs = curve.get("system_attrs") or None
            trial.steps_trained = curve.get("steps_trained")
        if result.get("state") == "PRUNED":
            trial.state, trial.result = "PRUNED", result
            trial.pruned_at_step, trial.value = result.get("step"), result.get("value")
            continue
        value = result.get("validation_metrics", {}).get(document.metric)
        if not isinstance(value, int | float) or not math.isfinite(value):
            trial.state, trial.error = "FAIL", f"no finite validation {document.metric}"
            continue
        trial.state, trial.value, trial.result = "COMPLETE", float(value), result


def distributions(spec: OptunaSearchSpec) -> dict[str, Any]:
    """The space as Optuna distributions (imports Optuna)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    for name, d in spec.space.items():
        if isinstance(d, FloatRange):
            out[name] = FloatDistribution(d.low, d.high, log=d.log, step=d.step)
        elif isinstance(d, IntRange):
            out[name] = IntDistribution(d.low, d.high, log=d.log, step=d.step)
        else:
            out[name] = CategoricalDistribution(d.choices)
    return out


def ask(
    document: StudyDocument,
    spec: OptunaSearchSpec,
    count: int,
    seed: int,
    study_name: str | None = None,
) -> list[Trial]:
    """``count`` new trials from a study rebuilt from ``document`` (imports Optuna).

    The sampler is seeded from the run's seed and the round, so a run is reproducible;
    TPE's ``constant_liar`` spreads the trials of one round (asked before any is told).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = distributions(spec)
    round_seed = (seed + 7919 * (document.round + 1)) % 2**32
    sampler: optuna.samplers.BaseSampler
    if spec.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=round_seed)
    else:
        startup = max(spec.parallelism, min(10, spec.max_trials // 3))
        sampler = optuna.samplers.TPESampler(seed=round_seed, constant_liar=True, n_startup_trials=startup)
    # With the search's pruner: Hyperband's brackets (by study name and trial number) tell
    # TPE which trials to learn from, as in the trainer (``pruning.trial_in_study``).
    study = optuna.create_study(
        study_name=study_name, direction=document.direction, sampler=sampler, pruner=_pruner(spec.pruner)
    )
    for old in document.trials:
        if old.state != "RUNNING":  # PRUNED ones too: TPE ranks them by their last value
            study.add_trial(replayed(old, space))
    document.round += 1
    asked = []
    for _ in range(count):
        trial = study.ask(space)
        number = len(document.trials)
        record = Trial(
            number=number,
            candidate_id=trial_candidate_id(number),
            round=document.round,
            params=dict(trial.params),
            state="RUNNING",
        )
        document.trials.append(record)
        asked.append(record)
    return asked


def _pruner(pruner: Pruner | None) -> Any:
    return None if pruner is None else build_pruner(pruner)


def budget_spent(document: StudyDocument, spec: OptunaSearchSpec, elapsed_seconds: float) -> str | None:
    """Why no further round starts (the budget it reached), or None."""
    if len(document.trials) >= spec.max_trials:
        return f"{spec.max_trials} trials"
    if document.round >= spec.max_rounds:
        return f"{spec.max_rounds} rounds"
    if spec.timeout_seconds is not None and elapsed_seconds >= spec.timeout_seconds:
        return f"{spec.timeout_seconds} s"
    return None
