"""Training on feature views: the workflow's BuildTrainingSet step, and what ``POST /training``
checks of such a request before it starts.

A request naming ``labels`` (a CSV of entity id, event time, label under ``datasets/``) and
``feature_views`` is turned into an ordinary run: BuildTrainingSet joins the labels with each
view's **offline source** point-in-time (``features.point_in_time``), applies the request's
policy to label rows lacking features (``drop`` them, counted, unless more than
``max_incomplete_fraction`` of the rows; or ``fail``), and writes, under
``datasets/training-sets/{run_id}/``:

- ``data.csv`` and ``schema.json``: the rows trained on (features in the views' order, then the
  label), the run's dataset for every later step, exactly as a flat-CSV run's;
- ``training_set.csv``: every label row, with its entity id, time, values and a status per
  view (ok, missing, expired), nothing dropped;
- ``report.json``: rows, complete and incomplete rows, missing / expired / null per feature,
  the first incomplete rows, the policy and what it dropped.

The request then goes on with ``dataset_key`` and ``schema_key`` pointing at them and
``feature_view_versions`` naming the views, versions and digests read: ValidateData records
them on the run, TrainCandidate puts them in each candidate's signature, so the registered
version says which views (and versions) it was trained on. A retry rebuilds the same objects
from the same sources.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

from pydantic import ValidationError

from mlops_core.data.schema import ColumnSchema, DatasetSchema
from mlops_core.data.types import FeatureType as ColumnType
from mlops_core.errors import Invalid, NotFound, detail
from mlops_core.features.entities import FeatureType, FeatureViewDefinition, StoredFeatureView
from mlops_core.features.point_in_time import (
    IncompleteTrainingSet,
    Labels,
    TrainingSet,
    TrainingSetReport,
    apply_policy,
    build_training_set,
    check_columns,
    parse_labels,
)
from mlops_core.features.sources import SourceMismatch, list_source_objects, read_source_object
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.requests import (
    FeatureViewRef,
    InvalidTrainingRequest,
    TrainingRequest,
    check_against_schema,
    check_without_schema,
    validation_problems,
)
from mlops_core.training.tracking import RunTracker

#: The dataset column type of each feature type (text features are categories of the values
#: the training set holds).
_COLUMN_TYPES: dict[FeatureType, ColumnType] = {
    FeatureType.int64: "integer",
    FeatureType.float64: "double",
    FeatureType.bool: "boolean",
    FeatureType.string: "category",
}
#: A text feature's categories before the join has read its values (``POST /training``'s
#: checks need the schema's task and target, not the features' categories).
NOT_JOINED_YET = ["(values read by BuildTrainingSet)"]


class FeatureViews(Protocol):
    """What is needed of the feature store (``features.repository.FeatureViewRepository``)."""

    def get(self, view: str, *, consistent: bool = False) -> StoredFeatureView | None: ...


def registered_views(request: TrainingRequest, views: FeatureViews) -> list[StoredFeatureView]:
    """The request's views as registered now; ``InvalidTrainingRequest`` naming any that is
    unknown or clashes with another's names."""
    names = request.feature_views or []
    found, unknown = [], []
    for index, name in enumerate(names):
        stored = views.get(name, consistent=True)
        if stored is None:
            unknown.append((index, name))
            continue
        found.append(stored)
    if unknown:
        raise InvalidTrainingRequest(
            f"feature view(s) not registered: {', '.join(n for _, n in unknown)} (mlops features apply)",
            details=[detail(["body", "feature_views", i], f"{n} not found", "not_found") for i, n in unknown],
        )
    options = request.options
    entity = options.entity_column or found[0].definition.entity.name
    try:
        check_columns([v.definition for v in found], [entity, options.timestamp_column, options.label_column])
    except Invalid as error:
        raise InvalidTrainingRequest(
            error.message, details=[detail(["body", "feature_views"], error.message, "columns")]
        ) from None
    return found


def read_labels(request: TrainingRequest, store: ArtifactStore, entity_column: str) -> Labels:
    key = request.labels or ""
    if not key.startswith(keys.DATASETS_PREFIX):
        message = f"labels must be under {keys.DATASETS_PREFIX} in the artifacts bucket"
        raise InvalidTrainingRequest(message, details=[detail(["body", "labels"], message, "prefix")])
    try:
        data = store.get(key).data
    except NotFound:
        message = f"labels s3 key '{key}' not found"
        raise InvalidTrainingRequest(
            message, details=[detail(["body", "labels"], message, "not_found")]
        ) from None
    options = request.options
    try:
        return parse_labels(
            data,
            entity=entity_column,
            timestamp=options.timestamp_column,
            label=options.label_column,
            name=f"labels '{key}'",
        )
    except Invalid as error:
        raise InvalidTrainingRequest(
            error.message, details=error.details or [detail(["body", "labels"], error.message, "labels")]
        ) from None


def training_schema(
    request: TrainingRequest,
    views: Sequence[FeatureViewDefinition],
    labels: Labels,
    training_set: TrainingSet | None = None,
) -> DatasetSchema:
    """The training set's schema: each view's features (int64 -> integer, float64 -> double,
    bool -> boolean, string -> category of the values ``training_set`` holds), then the label
    (a classification's classes are the labels' values: whole numbers, or text)."""
    options = request.options
    texts = _text_values(training_set) if training_set is not None else {}
    columns = [_feature_column(f.name, f.type, texts) for view in views for f in view.features]
    values = []
    bad = []
    for index, text in enumerate(labels.labels):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or (options.task == "classification" and not value.is_integer()):
            bad.append(index)
        values.append(value)
    if options.task == "classification" and len(bad) == len(values):
        names = sorted({text.strip() for text in labels.labels})
        try:
            target = ColumnSchema(name=options.label_column, type="category", categories=names)
        except ValidationError as error:
            message = f"labels '{request.labels}': " + error.errors()[0]["msg"].removeprefix("Value error, ")
            raise InvalidTrainingRequest(
                message, details=[detail(["body", "labels"], message, "label")]
            ) from None
        return _schema(request, columns, target)
    if bad:
        lines = ", ".join(str(i + 2) for i in bad[:10])
        message = f"labels '{request.labels}': {len(bad)} label(s) are not numbers (lines {lines})"
        if options.task == "classification":
            message = (
                f"labels '{request.labels}': {len(bad)} label(s) are not whole numbers (lines {lines}) and "
                "the others are: classes are all whole numbers or all text"
            )
        raise InvalidTrainingRequest(message, details=[detail(["body", "labels"], message, "label")])
    if options.task == "classification":
        target = ColumnSchema(name=options.label_column, type="integer", allowed=sorted(set(values)))
    else:
        target = ColumnSchema(name=options.label_column, type="double")
    return _schema(request, columns, target)


def _feature_column(name: str, kind: FeatureType, texts: dict[str, list[str]]) -> ColumnSchema:
    column_type = _COLUMN_TYPES[kind]
    if column_type != "category":
        return ColumnSchema(name=name, type=column_type)
    return ColumnSchema(name=name, type="category", categories=texts.get(name) or NOT_JOINED_YET)


def _text_values(training_set: TrainingSet) -> dict[str, list[str]]:
    """Each text feature's distinct values in the training set, sorted (its categories)."""
    found: dict[str, list[str]] = {}
    for join in training_set.joins:
        for feature in join.view.features:
            if feature.type is FeatureType.string:
                values = {
                    str(v).strip() for v in join.values[feature.name] if v is not None and str(v).strip()
                }
                found[feature.name] = sorted(values) or NOT_JOINED_YET
    return found


def _schema(request: TrainingRequest, columns: list[ColumnSchema], target: ColumnSchema) -> DatasetSchema:
    options = request.options
    return DatasetSchema(
        name=f"{request.model_name}-training-set"[:128],
        task=options.task,
        target=options.label_column,
        columns=[*columns, target],
    )


def check_feature_view_request(request: TrainingRequest, store: ArtifactStore, views: FeatureViews) -> None:
    """``POST /training``'s checks of a run on feature views, before it starts: the views are
    registered and their features numeric and distinct, the labels readable (every row with
    an entity id, a time and a label of the task's kind), the candidates and target metric
    fit the task. Whether enough label rows find features is known only once joined (the
    run's BuildTrainingSet)."""
    if request.dataset_key is not None or request.schema_key is not None:
        message = "give dataset_key, or labels with feature_views, not both"
        raise InvalidTrainingRequest(message, details=[detail(["body", "dataset_key"], message, "exclusive")])
    if request.feature_view_versions is not None:
        message = "feature_view_versions is set by the workflow (BuildTrainingSet), not by callers"
        raise InvalidTrainingRequest(
            message, details=[detail(["body", "feature_view_versions"], message, "forbidden")]
        )
    check_without_schema(request)
    found = registered_views(request, views)
    labels = read_labels(request, store, request.options.entity_column or found[0].definition.entity.name)
    check_against_schema(request, training_schema(request, [v.definition for v in found], labels))


# ---- BuildTrainingSet -------------------------------------------------------------------
def build_training_set_step(
    raw_request: dict[str, Any], store: ArtifactStore, views: FeatureViews, tracker: RunTracker
) -> dict[str, Any]:
    """Join the labels with the views point-in-time, write the run's dataset and report, and
    return the request pointing at them (``InvalidTrainingRequest`` for any problem: the
    workflow's named failure, recorded on the run with the report when there is one)."""
    try:
        request = TrainingRequest.model_validate(raw_request)
    except ValidationError as error:
        summary = "; ".join(validation_problems(error))
        raise InvalidTrainingRequest(f"invalid training request: {summary}"[:2000]) from None
    if not request.feature_views or not request.labels:
        raise InvalidTrainingRequest("BuildTrainingSet needs labels and feature_views")
    tracker.start(
        request.run_id,
        request.model_name,
        request.model_dump(mode="json"),
        triggered_by=request.triggered_by.model_dump(mode="json") if request.triggered_by else None,
    )
    found = registered_views(request, views)
    options = request.options
    labels = read_labels(request, store, options.entity_column or found[0].definition.entity.name)
    definitions = [v.definition for v in found]
    training_schema(request, definitions, labels)  # the labels' problems, before any source is read
    sources = []
    for stored in found:
        view = stored.definition
        try:
            objects = [read_source_object(store, view, o) for o in list_source_objects(store, view)]
        except SourceMismatch as error:
            raise InvalidTrainingRequest(f"feature view {view.name}: {error.message}") from None
        sources.append((view, objects, stored.version))
    training_set = build_training_set(labels, sources)
    schema = training_schema(request, definitions, labels, training_set)
    try:
        kept, report = apply_policy(
            training_set, policy=options.on_missing, max_incomplete_fraction=options.max_incomplete_fraction
        )
    except IncompleteTrainingSet as error:
        tracker.update(request.run_id, training_set={"report": recorded_report(_report(error.report))})
        raise InvalidTrainingRequest(error.message) from None
    data_key = keys.training_set_object(request.run_id, "data.csv")
    schema_key = keys.training_set_object(request.run_id, "schema.json")
    full_key = keys.training_set_object(request.run_id, "training_set.csv")
    report_key = keys.training_set_object(request.run_id, "report.json")
    # Written before the dataset it describes: nothing points at a dataset without its schema.
    store.put(
        schema_key,
        schema.model_dump_json(indent=2, exclude_none=True).encode(),
        content_type="application/json",
    )
    store.put(full_key, training_set.to_csv(), content_type="text/csv")
    store.put(report_key, json.dumps(_report(report), indent=2).encode(), content_type="application/json")
    store.put(data_key, training_set.dataset_csv(kept), content_type="text/csv")
    refs = [
        FeatureViewRef(
            name=v.definition.name,
            version=v.version,
            digest=v.digest,
            entity=v.definition.entity.name,
            entity_type=v.definition.entity.type.value,
            features=v.definition.feature_names,
        )
        for v in found
    ]
    tracker.update(
        request.run_id,
        feature_views=[r.model_dump(mode="json") for r in refs],
        training_set={
            "labels": request.labels,
            "training_set_key": full_key,
            "report_key": report_key,
            "report": recorded_report(_report(report)),
        },
    )
    built = request.model_copy(
        update={"dataset_key": data_key, "schema_key": schema_key, "feature_view_versions": refs}
    )
    return built.model_dump(mode="json", exclude_none=True)


def _report(report: TrainingSetReport) -> dict[str, Any]:
    return report.model_dump(mode="json")


#: Per-feature counts kept on the run record up to this many features (an item is at most
#: 400 KB); beyond, the record says so and report.json has them all.
MAX_RECORDED_FEATURES = 200


def recorded_report(report: dict[str, Any]) -> dict[str, Any]:
    """The report as the run record keeps it (per-feature counts left to report.json past
    ``MAX_RECORDED_FEATURES``)."""
    features = report.get("features") or []
    if len(features) <= MAX_RECORDED_FEATURES:
        return report
    return {**report, "features": [], "features_omitted": len(features)}
