"""Pruning a search's trials with Optuna's own pruners, inside the trial's TrainCandidate.

A pruner decides from a trial's intermediate values (its validation metric after each
step of training) against the other trials' values at the same steps. Here the study lives
between rounds (a JSON document in S3, ``search.StudyDocument``) and each trial trains in
its own TrainCandidate invocation, so the trainer rebuilds an in-memory study from that
document: every earlier trial with its intermediate values and the pruner's bookkeeping
(``system_attrs``: successive halving's rungs), then asks its own trial (the same number as
in the document) and trains in steps, ``trial.report(value, step)`` after each and
``trial.should_prune()`` before the next. A pruned trial's result says PRUNED with its last
step; SearchRound records it on the study as pruned, with its curve, so later rounds' pruners
and the sampler see it.

Only families that train in steps are pruned, each by its own resource, trained with
``warm_start`` so an unpruned trial is the very model a single fit makes (a unit test checks
it): gradient boosting by iterations (``max_iter``), random forests by trees
(``n_estimators``). Logistic regression (lbfgs restarted at each step would not be the same
model) and ridge (closed form) train in one step and are never pruned. A step's number is the
iterations (trees) trained so far; reports come every ``interval`` of them, the same for every
trial of a study, so steps line up across trials.

Trials of one round train in parallel and see only the rounds before theirs (no shared
storage between them): the first round is never pruned.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

if TYPE_CHECKING:  # search.py declares a search's pruner with the specs below
    from mlops_core.training.search import StudyDocument

#: The families that train in steps, and the parameter that counts a step's resource.
ITERATIVE: dict[str, str] = {
    "hist_gradient_boosting": "max_iter",
    "hist_gradient_boosting_regressor": "max_iter",
    "random_forest": "n_estimators",
    "random_forest_regressor": "n_estimators",
}


class _Pruner(BaseModel):
    model_config = ConfigDict(extra="forbid")

    interval: int = Field(
        default=10,
        ge=1,
        le=5000,
        description="Iterations (boosting) or trees (forests) between two reports; a step's "
        "number is the iterations trained so far",
    )


class MedianPrunerSpec(_Pruner):
    """Optuna's ``MedianPruner``: prune below the median of completed trials at the same step."""

    type: Literal["median"]
    n_startup_trials: int = Field(default=5, ge=0)
    n_warmup_steps: int = Field(default=0, ge=0)
    interval_steps: int = Field(default=1, ge=1)
    n_min_trials: int = Field(default=1, ge=1)


class SuccessiveHalvingPrunerSpec(_Pruner):
    """Optuna's ``SuccessiveHalvingPruner`` (asynchronous successive halving)."""

    type: Literal["successive_halving"]
    min_resource: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    reduction_factor: int = Field(default=4, ge=2, le=100)
    min_early_stopping_rate: int = Field(default=0, ge=0, le=20)


class HyperbandPrunerSpec(_Pruner):
    """Optuna's ``HyperbandPruner`` (brackets of successive halving)."""

    type: Literal["hyperband"]
    min_resource: int = Field(default=1, ge=1)
    max_resource: Annotated[int, Field(ge=1)] | Literal["auto"] = "auto"
    reduction_factor: int = Field(default=3, ge=2, le=100)

    @model_validator(mode="after")
    def _resources(self) -> HyperbandPrunerSpec:
        if isinstance(self.max_resource, int) and self.max_resource <= self.min_resource:
            raise ValueError("max_resource must be above min_resource")
        return self


class NoPrunerSpec(_Pruner):
    """No pruning (Optuna's ``NopPruner``): every trial trains to the end, in one fit."""

    type: Literal["none"]


PrunerSpec = Annotated[
    MedianPrunerSpec | SuccessiveHalvingPrunerSpec | HyperbandPrunerSpec | NoPrunerSpec,
    Field(discriminator="type"),
]
Pruner = MedianPrunerSpec | SuccessiveHalvingPrunerSpec | HyperbandPrunerSpec | NoPrunerSpec


def applies(pruner: Pruner | None, family: str) -> bool:
    """Whether a search's trials are pruned: a pruner other than ``none``, a family in steps."""
    return pruner is not None and not isinstance(pruner, NoPrunerSpec) and family in ITERATIVE


def note(pruner: Pruner | None, family: str) -> str | None:
    """Why a search with a pruner prunes nothing (the run record says it), or None."""
    if pruner is None or isinstance(pruner, NoPrunerSpec) or family in ITERATIVE:
        return None
    return f"'{family}' trains in one step: its trials are never pruned"


class TrialPruning(BaseModel):
    """What a trial's Map item carries when it may be pruned: the pruner and its number."""

    model_config = ConfigDict(extra="forbid")

    pruner: dict[str, Any]
    trial: int = Field(ge=0)

    def spec(self) -> Pruner:
        return parse_pruner(self.pruner)


def parse_pruner(raw: dict[str, Any]) -> Pruner:
    """A pruner's declaration (as the request gives it) as its spec."""
    return TypeAdapter(PrunerSpec).validate_python(raw)


class Curve(BaseModel):
    """A trial's intermediate values (step -> validation value) and its pruner's bookkeeping."""

    model_config = ConfigDict(extra="forbid")

    intermediate_values: dict[str, float]
    system_attrs: dict[str, Any] = Field(default_factory=dict)
    pruned_at_step: int | None = None
    steps_trained: int = Field(description="Iterations (trees) trained in all")


def build_pruner(pruner: Pruner) -> Any:
    """The Optuna pruner ``pruner`` declares (imports Optuna)."""
    import optuna

    if isinstance(pruner, MedianPrunerSpec):
        return optuna.pruners.MedianPruner(
            n_startup_trials=pruner.n_startup_trials,
            n_warmup_steps=pruner.n_warmup_steps,
            interval_steps=pruner.interval_steps,
            n_min_trials=pruner.n_min_trials,
        )
    if isinstance(pruner, SuccessiveHalvingPrunerSpec):
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=pruner.min_resource,
            reduction_factor=pruner.reduction_factor,
            min_early_stopping_rate=pruner.min_early_stopping_rate,
        )
    if isinstance(pruner, HyperbandPrunerSpec):
        return optuna.pruners.HyperbandPruner(
            min_resource=pruner.min_resource,
            max_resource=pruner.max_resource,
            reduction_factor=pruner.reduction_factor,
        )
    return optuna.pruners.NopPruner()


def replayed(old: Any, distributions: dict[str, Any] | None = None) -> Any:
    """A document's trial as an Optuna ``FrozenTrial`` (imports Optuna): its state, value,
    curve and pruner bookkeeping; with ``distributions``, its params too (for samplers)."""
    import optuna

    states = {
        "COMPLETE": optuna.trial.TrialState.COMPLETE,
        "FAIL": optuna.trial.TrialState.FAIL,
        "PRUNED": optuna.trial.TrialState.PRUNED,
        "RUNNING": optuna.trial.TrialState.RUNNING,
    }
    state = states[old.state]
    with_params = distributions is not None and state != optuna.trial.TrialState.RUNNING
    return optuna.trial.create_trial(
        state=state,
        value=old.value if state == optuna.trial.TrialState.COMPLETE else None,
        params=old.params if with_params else None,
        distributions={k: distributions[k] for k in old.params if k in distributions}
        if with_params and distributions is not None
        else None,
        intermediate_values={int(k): v for k, v in (old.intermediate_values or {}).items()},
        system_attrs=dict(old.system_attrs or {}),
    )


def trial_in_study(document: StudyDocument, pruner: Pruner, study_name: str, number: int) -> Any:
    """Trial ``number`` asked from an in-memory study rebuilt from ``document`` with the
    pruner (imports Optuna): every trial numbered below it replayed, so its number, and the
    bracket Hyperband puts it in, are the document's."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name,
        direction=document.direction,
        pruner=build_pruner(pruner),
        sampler=optuna.samplers.RandomSampler(seed=0),  # never samples: the params are fixed
    )
    for old in sorted(document.trials, key=lambda t: t.number):
        if old.number >= number:
            break
        study.add_trial(replayed(old))
    trial = study.ask()
    if trial.number != number:
        raise ValueError(f"trial {number} is not in the study document (it has {len(study.trials) - 1})")
    return trial


def fit_in_steps(
    estimator: Any,
    family: str,
    params: dict[str, Any],
    *,
    fit: Callable[[Any], Any],
    score: Callable[[Any], float],
    trial: Any,
    interval: int,
) -> tuple[Any, Curve]:
    """Train ``estimator`` (warm-started) ``interval`` iterations (trees) at a time, report
    ``score(estimator)`` at each step and stop when Optuna's pruner says so.

    The last step is never pruned (its training is done). Gradient boosting that stops early
    (its own ``early_stopping``) completes at the step it stopped. A non-finite score is
    not reported (no decision at that step); the trial's final score decides its fate.
    """
    resource = ITERATIVE[family]
    total = int(params[resource])
    steps = [*range(interval, total, interval), total]
    # A forest on nullable features is a Pipeline (an imputer first, refitted the same each
    # step): the model that trains in steps is its last step.
    model = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    model.set_params(warm_start=True)
    trained, pruned_at = 0, None
    for step in steps:
        model.set_params(**{resource: step})
        fit(estimator)
        trained = int(getattr(model, "n_iter_", step))
        value = score(estimator)
        finite = math.isfinite(value)
        if finite:
            trial.report(value, trained)
        if trained < step:  # stopped early by its own early stopping: complete
            break
        if finite and step < total and trial.should_prune():
            pruned_at = trained
            break
    model.set_params(warm_start=False)
    frozen = trial.study.trials[trial.number]
    curve = Curve(
        intermediate_values={str(k): float(v) for k, v in sorted(frozen.intermediate_values.items())},
        system_attrs={
            k: v for k, v in frozen.system_attrs.items() if isinstance(v, int | float | str | bool)
        },
        pruned_at_step=pruned_at,
        steps_trained=trained,
    )
    return estimator, curve
