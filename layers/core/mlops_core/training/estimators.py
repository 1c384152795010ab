"""The estimator families training may use, and the hyper-parameters each accepts.

Candidates are declared as data (``{"family": ..., "params": {...}}``) and checked here
before any training starts: an unknown family or an invalid parameter fails the
workflow at ValidateData with a message naming it. Building an estimator imports
scikit-learn, so only ``build`` needs the science layer.
"""

from __future__ import annotations

import itertools
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlops_core.errors import Invalid, detail


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogisticRegressionParams(_Params):
    C: float = Field(default=1.0, gt=0)
    max_iter: int = Field(default=1000, ge=10, le=100_000)
    class_weight: Literal["balanced"] | None = None
    scale: bool = Field(default=True, description="Standardize features first (a StandardScaler step)")


class RandomForestParams(_Params):
    n_estimators: int = Field(default=100, ge=1, le=2000)
    max_depth: int | None = Field(default=None, ge=1, le=100)
    min_samples_leaf: int = Field(default=1, ge=1)
    max_features: Literal["sqrt", "log2"] | float | None = "sqrt"
    class_weight: Literal["balanced", "balanced_subsample"] | None = None


class HistGradientBoostingParams(_Params):
    learning_rate: float = Field(default=0.1, gt=0, le=1)
    max_iter: int = Field(default=100, ge=1, le=5000)
    max_leaf_nodes: int | None = Field(default=31, ge=2)
    max_depth: int | None = Field(default=None, ge=1)
    l2_regularization: float = Field(default=0.0, ge=0)
    early_stopping: Literal["auto"] | bool = "auto"


class RidgeParams(_Params):
    alpha: float = Field(default=1.0, ge=0)
    scale: bool = True


FAMILIES: dict[str, tuple[type[_Params], Literal["classification", "regression"]]] = {
    "logistic_regression": (LogisticRegressionParams, "classification"),
    "random_forest": (RandomForestParams, "classification"),
    "hist_gradient_boosting": (HistGradientBoostingParams, "classification"),
    "random_forest_regressor": (RandomForestParams, "regression"),
    "hist_gradient_boosting_regressor": (HistGradientBoostingParams, "regression"),
    "ridge": (RidgeParams, "regression"),
}


#: What a run trains when its request names no candidates and no search: a linear model and
#: gradient boosting (which takes missing values and non-linear effects), per task.
DEFAULT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "classification": ("logistic_regression", "hist_gradient_boosting"),
    "regression": ("ridge", "hist_gradient_boosting_regressor"),
}


class CandidateSpec(BaseModel):
    """One model to train: a family and its hyper-parameters."""

    model_config = ConfigDict(extra="forbid")

    family: str
    params: dict[str, Any] = Field(default_factory=dict)


class SearchSpec(BaseModel):
    """A grid over one family's parameters, expanded into candidates (at most ``budget``)."""

    model_config = ConfigDict(extra="forbid")

    family: str
    grid: dict[str, list[Any]] = Field(min_length=1)
    budget: int = Field(default=16, ge=1, le=256)


def check_candidate(spec: CandidateSpec, task: str | None, index: int) -> dict[str, Any]:
    """The candidate's full parameter set (defaults filled in), or ``Invalid`` naming the problem.

    ``task`` is the dataset's; None when it is not known yet (the family is then not
    checked against it).
    """
    loc: list[str | int] = ["body", "candidates", index]
    if spec.family not in FAMILIES:
        raise Invalid(
            f"candidate {index}: unknown estimator family '{spec.family}'",
            details=[detail([*loc, "family"], f"one of {sorted(FAMILIES)}", "unknown_family")],
        )
    params_model, family_task = FAMILIES[spec.family]
    if task is not None and family_task != task:
        raise Invalid(
            f"candidate {index}: '{spec.family}' is a {family_task} family, the dataset is {task}",
            details=[detail([*loc, "family"], f"not a {task} family", "task_mismatch")],
        )
    try:
        return params_model.model_validate(spec.params).model_dump()
    except ValidationError as error:
        problems = [
            detail([*loc, "params", *e["loc"]], e["msg"], e["type"]) for e in error.errors(include_url=False)
        ]
        summary = "; ".join(f"{'.'.join(map(str, p['loc'][len(loc) + 1 :]))}: {p['msg']}" for p in problems)
        raise Invalid(
            f"candidate {index} ({spec.family}): invalid hyper-parameters: {summary}", details=problems
        ) from None


def expand(candidates: list[CandidateSpec] | None, search: SearchSpec | None) -> list[CandidateSpec]:
    """Explicit candidates, then the grid's combinations in a fixed order, up to the budget."""
    expanded = list(candidates or [])
    if search is not None:
        keys = sorted(search.grid)
        for values in itertools.islice(itertools.product(*(search.grid[k] for k in keys)), search.budget):
            expanded.append(CandidateSpec(family=search.family, params=dict(zip(keys, values, strict=True))))
    if not expanded:
        raise Invalid(
            "no candidates: give 'candidates' or a 'search' grid",
            details=[detail(["body", "candidates"], "at least one candidate is required", "too_short")],
        )
    return expanded


#: Families whose ONNX export treats a missing value (NaN) as scikit-learn does. The others get
#: a median imputer first when the features can be missing: scikit-learn's forests take NaN
#: too, but skl2onnx's export routes it differently (67 of 500 labels differed, measured), and
#: the linear families do not take it at all.
NATIVE_MISSING_VALUES = frozenset({"hist_gradient_boosting", "hist_gradient_boosting_regressor"})


#: Families that take a category feature as one-hot columns (a linear model cannot use a code
#: as a number). The tree ensembles split on the code itself (ordinal encoding): skl2onnx
#: exports histogram gradient boosting's native ``categorical_features`` wrongly (a third of
#: the labels differed, measured), and one-hot columns only slow the forests down.
ONE_HOT_FAMILIES = frozenset({"logistic_regression", "ridge"})


def build(
    family: str,
    params: dict[str, Any],
    seed: int,
    *,
    missing_values: bool = False,
    categories: dict[int, int] | None = None,
    nullable: list[bool] | None = None,
) -> Any:
    """A fresh, unfitted scikit-learn estimator (imports scikit-learn).

    ``missing_values``: the features may hold NaN (nullable columns in the dataset's schema).
    ``categories``: the input columns that are category codes, each with its number of
    categories; ``nullable``, per input column, whether it may be NaN (with ``categories``).
    """
    estimator = _estimator(family, params, seed)
    if categories and family in ONE_HOT_FAMILIES:
        return _with_one_hot(family, estimator, categories, nullable)
    if not missing_values or family in NATIVE_MISSING_VALUES:
        return estimator
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    # keep_empty_features: a column missing in every training row is kept (imputed with 0), so
    # the model still takes every feature of its signature.
    imputer = ("simpleimputer", SimpleImputer(strategy="median", keep_empty_features=True))
    steps = estimator.steps if isinstance(estimator, Pipeline) else [(family, estimator)]
    return Pipeline([imputer, *steps])


def _with_one_hot(
    family: str, estimator: Any, categories: dict[int, int], nullable: list[bool] | None
) -> Any:
    """One pipeline: category codes one-hot encoded (a missing one as its most frequent code,
    an unseen code as all zeros), the other columns as they are (a missing number as the
    median), then the family's own steps."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    width = len(nullable) if nullable is not None else max(categories) + 1
    may_miss = nullable or [False] * width
    coded = sorted(categories)
    numbers = [i for i in range(width) if i not in categories]
    category_steps: list[tuple[str, Any]] = []
    if any(may_miss[i] for i in coded):
        category_steps.append(("impute", SimpleImputer(strategy="most_frequent", keep_empty_features=True)))
    category_steps.append(
        (
            "onehot",
            OneHotEncoder(
                categories=[np.arange(categories[i], dtype=np.float64) for i in coded],
                handle_unknown="ignore",
                sparse_output=False,
            ),
        )
    )
    parts: list[tuple[str, Any, list[int]]] = [("categories", Pipeline(category_steps), coded)]
    if numbers:
        number_step: Any = (
            SimpleImputer(strategy="median", keep_empty_features=True)
            if any(may_miss[i] for i in numbers)
            else "passthrough"
        )
        parts.append(("numbers", number_step, numbers))
    encode = ("encode", ColumnTransformer(parts))
    steps = estimator.steps if isinstance(estimator, Pipeline) else [(family, estimator)]
    return Pipeline([encode, *steps])


def _estimator(family: str, params: dict[str, Any], seed: int) -> Any:
    from sklearn.ensemble import (
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    values = dict(params)
    if family == "logistic_regression":
        scale = values.pop("scale")
        model = LogisticRegression(random_state=seed, **values)
        return make_pipeline(StandardScaler(), model) if scale else model
    if family == "ridge":
        scale = values.pop("scale")
        return make_pipeline(StandardScaler(), Ridge(**values)) if scale else Ridge(**values)
    forests: dict[str, Any] = {
        "random_forest": RandomForestClassifier,
        "random_forest_regressor": RandomForestRegressor,
    }
    if family in forests:
        if family == "random_forest_regressor":
            values.pop("class_weight", None)
        # n_jobs=1: a Lambda has 1-6 vCPUs and parallel candidates already use them.
        return forests[family](random_state=seed, n_jobs=1, **values)
    boosters: dict[str, Any] = {
        "hist_gradient_boosting": HistGradientBoostingClassifier,
        "hist_gradient_boosting_regressor": HistGradientBoostingRegressor,
    }
    return boosters[family](random_state=seed, **values)
