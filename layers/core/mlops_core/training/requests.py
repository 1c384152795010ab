"""What starts a training run: the workflow's input, and what can be checked before it starts."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, model_validator

from mlops_core.data.schema import DatasetSchema
from mlops_core.errors import Invalid, NotFound, detail
from mlops_core.features.entities import VIEW_NAME_PATTERN
from mlops_core.registry.entities import ALIAS_PATTERN, MODEL_NAME_PATTERN
from mlops_core.registry.signature import FeatureViewInput, ViewFeature
from mlops_core.storage import keys
from mlops_core.storage.dynamo import serialize
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training import metrics
from mlops_core.training.estimators import (
    DEFAULT_CANDIDATES,
    CandidateSpec,
    SearchSpec,
    check_candidate,
    expand,
)
from mlops_core.training.search import Direction, OptunaSearchSpec, check_space
from mlops_core.training.tracking import RUN_ID_PATTERN

Document = TypeVar("Document", bound=BaseModel)


class InvalidTrainingRequest(Invalid):
    """The run cannot be carried out as asked (unknown family, bad hyper-parameters, a
    missing or invalid schema, a metric the dataset does not define): a 422 at
    ``POST /training``, and the named failure of ValidateData (the Step Functions error)."""


def _search_kind(value: Any) -> str:
    """A grid names its values (``grid``); Optuna's search declares a ``space``."""
    if isinstance(value, dict):
        return "optuna" if "space" in value else "grid"
    return "optuna" if isinstance(value, OptunaSearchSpec) else "grid"


#: ``search``: a grid expanded into candidates, or Optuna's search over rounds (docs/training.md).
Search = Annotated[
    Annotated[SearchSpec, Tag("grid")] | Annotated[OptunaSearchSpec, Tag("optuna")],
    Discriminator(_search_kind),
]


class TriggerEvent(BaseModel):
    """The event a run was started on (the retraining loop's ``DriftDetected``)."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(min_length=1, max_length=64, description="Its detail-type: DriftDetected")
    id: str = Field(min_length=1, max_length=128, description="The EventBridge event id")
    kinds: list[str] = Field(default_factory=list, description="What drifted: data, concept")
    model_version: int | None = Field(default=None, description="The version that served the drifted window")


class TrainingTrigger(BaseModel):
    """Lineage of a run that no one started by hand: the drift run whose finding started it."""

    model_config = ConfigDict(extra="forbid")

    drift_run_id: str = Field(min_length=1, max_length=128)
    event: TriggerEvent


class TrainingSetOptions(BaseModel):
    """How a point-in-time training set is read from its labels and what is done with label
    rows lacking features (docs/features.md, "Point-in-time training sets")."""

    model_config = ConfigDict(extra="forbid")

    entity_column: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        description="The labels' entity id column (default: the first view's entity column)",
    )
    timestamp_column: str = Field(
        default="event_timestamp",
        min_length=1,
        max_length=128,
        description="The labels' time column: ISO 8601 (UTC unless it says otherwise) or Unix seconds",
    )
    label_column: str = Field(default="label", min_length=1, max_length=128, description="The target")
    task: Literal["classification", "regression"] = Field(
        default="classification", description="classification: the labels are whole class codes"
    )
    on_missing: Literal["drop", "fail"] = Field(
        default="drop",
        description="Label rows lacking a feature (missing, expired past the TTL, or null): drop "
        "them (counted in the report), or fail the run",
    )
    max_incomplete_fraction: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="With drop: the run fails if more than this share of the label rows lack features",
    )


class FeatureViewRef(BaseModel):
    """A feature view as a training set read it (lineage): name, version and digest."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=VIEW_NAME_PATTERN)
    version: int = Field(ge=1)
    digest: str
    entity: str = Field(description="The view's entity key")
    entity_type: Literal["int64", "string"]
    features: list[str] = Field(description="Its features, as columns of the training set (in this order)")

    def signature_input(self) -> FeatureViewInput:
        """How a model trained on it names the view in its signature (``ModelSignature.feature_views``)."""
        return FeatureViewInput(
            view=self.name,
            version=self.version,
            entity=self.entity,
            entity_type=self.entity_type,
            features=[ViewFeature(name=f) for f in self.features],
        )


class TrainingRequest(BaseModel):
    """The state machine's input."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(pattern=RUN_ID_PATTERN, description="Also the execution's name")
    model_name: str = Field(pattern=MODEL_NAME_PATTERN)
    dataset_key: str | None = Field(
        default=None,
        min_length=1,
        description="CSV in the artifacts bucket; or give labels and feature_views instead",
    )
    labels: str | None = Field(
        default=None,
        min_length=1,
        description="A labels CSV under datasets/ (entity id, event time, label): joined point-in-time "
        "with feature_views into the run's dataset by BuildTrainingSet",
    )
    feature_views: list[Annotated[str, Field(pattern=VIEW_NAME_PATTERN)]] | None = Field(
        default=None, min_length=1, max_length=10, description="The views whose features the model takes"
    )
    training_set: TrainingSetOptions | None = Field(
        default=None, description="With labels: their columns, the task, and the missing-feature policy"
    )
    feature_view_versions: list[FeatureViewRef] | None = Field(
        default=None, description="Set by BuildTrainingSet: the views and versions the dataset was built from"
    )
    schema_key: str | None = Field(default=None, description="Defaults to schema.json beside the dataset")
    expectations_key: str | None = None
    target_metric: str | None = Field(
        default=None, description="roc_auc for classification, rmse for regression"
    )
    threshold: float | None = Field(default=None, description="The gate: the candidate must reach this")
    tolerance: float = Field(
        default=0.0, ge=0, description="How much worse than the champion is still accepted"
    )
    candidates: list[CandidateSpec] | None = Field(
        default=None,
        description="The models to train; unset (and no search): logistic_regression and "
        "hist_gradient_boosting for classification, ridge and hist_gradient_boosting_regressor "
        "for regression",
    )
    search: Search | None = Field(
        default=None, description="A grid (candidates) or Optuna's search (a space and a budget)"
    )
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    compute: Literal["lambda", "sagemaker"] | None = Field(
        default=None,
        description="Where candidates train: the Lambda trainer or a SageMaker training job; "
        "unset: SageMaker only above the deployment's dataset-size threshold",
    )
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    validation_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    promote_to: str | None = Field(default=None, pattern=ALIAS_PATTERN, description="Alias to set on success")
    triggered_by: TrainingTrigger | None = Field(
        default=None, description="Set by the retraining loop (recorded on the run and its version's card)"
    )

    @model_validator(mode="after")
    def _fractions(self) -> TrainingRequest:
        if self.dataset_key is None and self.labels is None:
            raise ValueError("give dataset_key, or labels with feature_views")
        if (self.labels is None) != (self.feature_views is None):
            raise ValueError("labels and feature_views go together (a point-in-time training set)")
        if self.training_set is not None and self.labels is None:
            raise ValueError("training_set options need labels and feature_views")
        if self.holdout_fraction + self.validation_fraction >= 0.8:
            raise ValueError("holdout_fraction + validation_fraction must leave at least 20% to train on")
        if self.promote_to == "production":
            raise ValueError(
                "training may set 'staging' or another alias; promotion to production is a registry call"
            )
        if isinstance(self.search, OptunaSearchSpec) and self.candidates:
            raise ValueError("give 'candidates' or an Optuna 'search' (a space), not both")
        return self

    def grid(self) -> SearchSpec | None:
        return self.search if isinstance(self.search, SearchSpec) else None

    def optuna(self) -> OptunaSearchSpec | None:
        return self.search if isinstance(self.search, OptunaSearchSpec) else None

    def schema_location(self) -> tuple[str, list[str | int]]:
        """The schema's key, and the request field that names it (for error locations)."""
        if self.schema_key:
            return self.schema_key, ["body", "schema_key"]
        if self.dataset_key is None:
            raise InvalidTrainingRequest("a run on feature views has no dataset before BuildTrainingSet")
        return keys.sibling(self.dataset_key, "schema.json"), ["body", "dataset_key"]

    @property
    def options(self) -> TrainingSetOptions:
        return self.training_set or TrainingSetOptions()


class CheckedRequest(NamedTuple):
    """A request checked against its dataset's schema."""

    candidates: list[tuple[CandidateSpec, dict[str, Any]]]  # each with its full parameters
    target_metric: str
    #: An Optuna search's objective: (metric, direction); None for fixed candidates.
    objective: tuple[str, Direction] | None = None


def validation_problems(error: ValidationError) -> list[str]:
    """pydantic's errors as ``where: what`` (``columns[3].name: column name 'a\\tb' ...``)."""
    problems = []
    for e in error.errors(include_url=False):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        message = str(e["msg"]).removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    return problems


def read_document(
    store: ArtifactStore, key: str, model: type[Document], what: str, loc: list[str | int]
) -> Document:
    """A JSON document from the bucket, or ``InvalidTrainingRequest`` saying what is wrong with it."""
    try:
        data = store.get(key).data
    except NotFound:
        message = f"{what} s3 key '{key}' not found"
        raise InvalidTrainingRequest(message, details=[detail(loc, message, "not_found")]) from None
    try:
        return model.model_validate(json.loads(data))
    except ValidationError as error:
        problems = validation_problems(error)
    except ValueError as error:  # not JSON, or not UTF-8
        problems = [f"not a JSON document ({error})"]
    message = f"{what} '{key}' is invalid: " + "; ".join(problems)
    raise InvalidTrainingRequest(
        message[:2000], details=[detail(loc, f"{what}: {p}", "invalid_document") for p in problems[:20]]
    )


def read_schema(store: ArtifactStore, request: TrainingRequest) -> DatasetSchema:
    key, loc = request.schema_location()
    return read_document(store, key, DatasetSchema, "schema", loc)


def check_against_schema(request: TrainingRequest, schema: DatasetSchema) -> CheckedRequest:
    """What the dataset's schema decides: each family's task, that the target metric is
    defined for the task, and that a classification target can have two classes.

    ``InvalidTrainingRequest`` naming the problem. Whether the rows themselves allow every
    metric (two classes present in each split) is for ValidateData, which reads them.
    """
    target_metric = request.target_metric or metrics.DEFAULT_METRIC[schema.task]
    optuna = request.optuna()
    objective: tuple[str, Direction] | None = None
    try:
        if optuna is None:
            specs = candidate_specs(request, schema.task)
            params = [check_candidate(spec, schema.task, i) for i, spec in enumerate(specs)]
        else:
            specs, params = [], []
            objective = check_space(optuna, schema.task, target_metric)
    except Invalid as error:
        raise InvalidTrainingRequest(error.message, details=error.details) from None
    problem = metrics.metric_problem(target_metric, schema.task)
    if problem:
        raise InvalidTrainingRequest(
            problem, details=[detail(["body", "target_metric"], problem, "metric_undefined")]
        )
    target = next(c for c in schema.columns if c.name == schema.target)
    classes = target.allowed if target.categories is None else list(range(len(target.categories)))
    if schema.task == "classification" and classes is not None:
        problem = _classes_problem(schema.target, classes)
        if problem:
            key, loc = request.schema_location()
            raise InvalidTrainingRequest(
                f"schema '{key}': {problem}", details=[detail(loc, problem, "too_few_classes")]
            )
    return CheckedRequest(list(zip(specs, params, strict=True)), target_metric, objective)


def _classes_problem(target: str, allowed: list[float] | list[int]) -> str | None:
    if any(not float(v).is_integer() for v in allowed):
        return f"the target '{target}' allows {allowed}: class labels are whole numbers"
    if len(set(allowed)) < metrics.MIN_CLASSES:
        return f"the target '{target}' allows one class ({allowed}); a classifier needs at least two"
    return None


def check_before_start(request: TrainingRequest, store: ArtifactStore) -> None:
    """What can be checked before a run starts, so that a bad request is a 422 at
    ``POST /training`` rather than a run that fails later: the candidates' families and
    hyper-parameters, that the request can be kept in the run record (DynamoDB's numbers,
    no empty map keys), then, from the dataset's schema (read, never written), the column
    names, each family's task and the target metric (``check_against_schema``)."""
    check_without_schema(request)
    check_against_schema(request, read_schema(store, request))


def candidate_specs(request: TrainingRequest, task: str) -> list[CandidateSpec]:
    """The request's candidates (and grid), or, when it names neither candidates nor a search,
    the defaults for the dataset's task (``DEFAULT_CANDIDATES``)."""
    if request.candidates is None and request.search is None:
        return [CandidateSpec(family=family) for family in DEFAULT_CANDIDATES[task]]
    return expand(request.candidates, request.grid())


def check_without_schema(request: TrainingRequest) -> None:
    """The families and hyper-parameters (their task is known only from the schema), and that
    the request can be kept in the run record (DynamoDB's numbers, no empty map keys)."""
    optuna = request.optuna()
    if optuna is not None:
        check_space(optuna, None, request.target_metric)
    elif request.candidates is not None or request.search is not None:
        for index, spec in enumerate(expand(request.candidates, request.grid())):
            check_candidate(spec, None, index)
    serialize(request.model_dump(mode="json"))
