"""The training workflow's steps, as plain functions over small JSON documents.

Step Functions passes S3 keys and ids between steps, never the data. Each function here
takes the state the previous step produced and returns the next; ``functions/training``
wraps each in a Lambda handler. Steps are safe to retry: they overwrite their own
outputs, and RegisterModel returns the version a previous attempt already registered.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from pydantic import ValidationError

from mlops_core.config.settings import TrainingComputeSettings
from mlops_core.data import profiles, validation
from mlops_core.data import schema as datasets
from mlops_core.data.schema import DatasetSchema
from mlops_core.data.validation import ExpectationSuite
from mlops_core.errors import Invalid, NotFound, Unavailable
from mlops_core.registry.entities import HIGHER_IS_BETTER, RegisterVersionRequest
from mlops_core.registry.service import ModelRegistry
from mlops_core.registry.signature import ModelSignature, sha256_hex
from mlops_core.storage import keys
from mlops_core.storage.eventbridge import EventPublisher
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training import compute, metrics
from mlops_core.training.evaluation import holdout_baseline, predict_onnx, score_onnx, why_not_comparable
from mlops_core.training.events import TrainingRunFailed
from mlops_core.training.pruning import ITERATIVE, Curve, TrialPruning, fit_in_steps, trial_in_study
from mlops_core.training.requests import (
    InvalidTrainingRequest,
    TrainingRequest,
    check_against_schema,
    read_document,
    read_schema,
    validation_problems,
)
from mlops_core.training.search import StudyDocument
from mlops_core.training.splits import split_indices, target_problems
from mlops_core.training.state import (
    Candidate,
    CandidateResult,
    DatasetRef,
    EvaluatedState,
    Evaluation,
    PrunedResult,
    Registered,
    RunState,
    SearchState,
    SelectedState,
    TrainedState,
    ValidatedState,
)
from mlops_core.training.tracking import RunTracker, package_versions
from mlops_core.training.training_sets import recorded_report


def _load_table(store: ArtifactStore, dataset: DatasetRef) -> tuple[datasets.Table, DatasetSchema]:
    schema = read_document(store, dataset.schema_key, DatasetSchema, "schema", ["dataset", "schema_key"])
    data = store.get(dataset.key, dataset.version_id).data
    if sha256_hex(data) != dataset.sha256:
        raise InvalidTrainingRequest(f"dataset '{dataset.key}' changed since it was validated")
    return datasets.load_csv(data, schema), schema


# ---- ValidateData -----------------------------------------------------------------------
def validate_data(
    raw_request: dict[str, Any],
    store: ArtifactStore,
    tracker: RunTracker,
    compute_settings: TrainingComputeSettings | None = None,
) -> dict[str, Any]:
    """Check the request, the candidates and the dataset; write the reference profile.

    The same checks as ``POST /training`` (``requests.check_against_schema``), for runs
    started some other way, then what only the rows can tell: the schema and
    expectations, and that every metric will have a value on the splits.
    """
    try:
        request = TrainingRequest.model_validate(raw_request)
    except ValidationError as error:
        summary = "; ".join(validation_problems(error))
        raise InvalidTrainingRequest(f"invalid training request: {summary}"[:2000]) from None
    tracker.start(
        request.run_id,
        request.model_name,
        request.model_dump(mode="json"),
        triggered_by=request.triggered_by.model_dump(mode="json") if request.triggered_by else None,
    )
    if request.feature_view_versions is not None:
        _record_training_set(request, store, tracker)
    if request.dataset_key is None:
        raise InvalidTrainingRequest(
            "a run on feature views starts at BuildTrainingSet, which sets its dataset"
        )
    schema_key, _ = request.schema_location()
    schema = read_schema(store, request)
    checked = check_against_schema(request, schema)
    target_metric = checked.target_metric
    suite = (
        read_document(
            store, request.expectations_key, ExpectationSuite, "expectations", ["body", "expectations_key"]
        )
        if request.expectations_key
        else None
    )
    try:
        stored = store.get(request.dataset_key)
    except NotFound:
        raise InvalidTrainingRequest(f"dataset s3 key '{request.dataset_key}' not found") from None
    table = validation.validate(stored.data, schema, suite)
    problems = target_problems(
        table.columns[schema.target],
        schema.target,
        task=schema.task,
        seed=request.seed,
        holdout_fraction=request.holdout_fraction,
        validation_fraction=request.validation_fraction,
        class_names=next(c.categories for c in schema.columns if c.name == schema.target),
    )
    if problems:
        raise InvalidTrainingRequest(f"dataset '{request.dataset_key}': " + "; ".join(problems))
    try:
        where = compute.choose(
            request.compute, len(stored.data), compute_settings or TrainingComputeSettings()
        )
    except Invalid as error:
        raise InvalidTrainingRequest(error.message, details=error.details) from None
    dataset = DatasetRef(
        key=request.dataset_key,
        version_id=stored.version_id,
        sha256=sha256_hex(stored.data),
        rows=table.rows,
        schema_key=schema_key,
    )
    profile_key = keys.reference_profile(request.run_id)
    store.put(
        profile_key,
        json.dumps(profiles.profile(table, schema), indent=2).encode(),
        content_type="application/json",
    )
    tracker.update(
        request.run_id,
        dataset=dataset.model_dump(),
        reference_profile_key=profile_key,
        target_metric=target_metric,
        compute=where,
    )
    features = [c.name for c in schema.features]
    candidates = [
        Candidate(
            run_id=request.run_id,
            candidate_id=f"c{i:03d}",
            family=spec.family,
            params=params,
            task=schema.task,
            dataset=dataset,
            features=features,
            feature_views=[v.signature_input() for v in request.feature_view_versions]
            if request.feature_view_versions
            else None,
            target=schema.target,
            seed=request.seed,
            holdout_fraction=request.holdout_fraction,
            validation_fraction=request.validation_fraction,
            target_metric=target_metric,
            compute=where,
        )
        for i, (spec, params) in enumerate(checked.candidates)
    ]
    run = ValidatedState(
        run_id=request.run_id,
        model_name=request.model_name,
        task=schema.task,
        dataset=dataset,
        features=features,
        target=schema.target,
        target_metric=target_metric,
        threshold=request.threshold,
        tolerance=request.tolerance,
        seed=request.seed,
        holdout_fraction=request.holdout_fraction,
        validation_fraction=request.validation_fraction,
        promote_to=request.promote_to,
        reference_profile_key=profile_key,
        compute=where,
        candidates=candidates,
    )
    optuna = request.optuna()
    if optuna is not None:  # Optuna's search: SearchRound asks the first round's trials
        return SearchState(
            **run.model_dump(include=set(RunState.model_fields)),
            search=optuna.model_dump(mode="json"),
            search_round=0,
            candidates=[],
            feature_views=[v.signature_input() for v in request.feature_view_versions]
            if request.feature_view_versions
            else None,
        ).model_dump(mode="json", exclude={"results"})
    compute.stage_for_jobs(store, candidates)
    return run.model_dump(mode="json")


def _record_training_set(request: TrainingRequest, store: ArtifactStore, tracker: RunTracker) -> None:
    """Lineage of a run on feature views, on its record again (``start`` rewrote it): the views
    and versions read, and BuildTrainingSet's report."""
    report_key = keys.training_set_object(request.run_id, "report.json")
    try:
        report = json.loads(store.get(report_key).data)
    except NotFound:
        raise InvalidTrainingRequest(
            "the request names feature_view_versions but no training set was built for this run "
            "(BuildTrainingSet writes them)"
        ) from None
    tracker.update(
        request.run_id,
        feature_views=[v.model_dump(mode="json") for v in request.feature_view_versions or []],
        training_set={
            "labels": request.labels,
            "training_set_key": keys.training_set_object(request.run_id, "training_set.csv"),
            "report_key": report_key,
            "report": recorded_report(report),
        },
    )


# ---- TrainCandidate ---------------------------------------------------------------------
def train_candidate(
    raw_candidate: dict[str, Any], store: ArtifactStore, tracker: RunTracker
) -> dict[str, Any]:
    """Fit one candidate, export it to ONNX, score it on the validation rows; record it.
    A search trial that may be pruned trains in steps and may come back PRUNED (no model)."""
    result = fit_trial(raw_candidate, store)
    tracker.record_candidate(Candidate.model_validate(raw_candidate).run_id, result.model_dump(mode="json"))
    return result.model_dump(mode="json")


def fit_candidate(raw_candidate: dict[str, Any], store: ArtifactStore) -> CandidateResult:
    """What TrainCandidate and a SageMaker training job both do: fit, export to ONNX (and
    its signature) beside the run, score on the validation rows. Writes only to S3."""
    result = fit_trial(raw_candidate, store)
    if not isinstance(result, CandidateResult):  # only a trial carrying `pruning` is pruned
        raise InvalidTrainingRequest(f"candidate {result.candidate_id} was pruned: it has no model")
    return result


def fit_trial(raw_candidate: dict[str, Any], store: ArtifactStore) -> CandidateResult | PrunedResult:
    """``fit_candidate``, and for a search trial carrying ``pruning`` whose family trains in
    steps, training in steps under the study's pruner (``pruning.fit_in_steps``): a pruned
    trial is a ``PrunedResult`` (nothing exported), a completed one keeps its curve."""
    from mlops_core.training.estimators import build
    from mlops_core.training.export import export_sklearn

    candidate = Candidate.model_validate(raw_candidate)
    started = time.perf_counter()
    table, schema = _load_table(store, candidate.dataset)
    x, y = table.matrix(candidate.features), table.columns[candidate.target]
    train, validation_rows, _ = split_indices(
        y,
        task=candidate.task,
        seed=candidate.seed,
        holdout_fraction=candidate.holdout_fraction,
        validation_fraction=candidate.validation_fraction,
    )
    if candidate.task == "classification":
        y = y.astype(np.int64)
    columns = {c.name: c for c in schema.columns}
    nullable = [columns[f].nullable for f in candidate.features]
    categories = [columns[f].categories for f in candidate.features]
    estimator = build(
        candidate.family,
        candidate.params,
        candidate.seed,
        missing_values=any(nullable),
        categories={i: len(c) for i, c in enumerate(categories) if c is not None},
        nullable=nullable,
    )
    curve = None
    if candidate.pruning is not None and candidate.family in ITERATIVE:
        estimator, curve, metric = _fit_in_steps(
            candidate,
            candidate.pruning,
            store,
            estimator,
            fit=lambda model: model.fit(x[train], y[train]),
            x_validation=x[validation_rows],
            y_validation=y[validation_rows],
        )
        if curve.pruned_at_step is not None:
            return PrunedResult(
                candidate_id=candidate.candidate_id,
                family=candidate.family,
                params=candidate.params,
                seed=candidate.seed,
                step=curve.pruned_at_step,
                value=curve.intermediate_values[str(curve.pruned_at_step)],
                metric=metric,
                curve=curve,
                train_rows=int(train.size),
                validation_rows=int(validation_rows.size),
                duration_seconds=round(time.perf_counter() - started, 3),
            )
    else:
        estimator.fit(x[train], y[train])
    onnx_bytes, signature = export_sklearn(
        estimator,
        candidate.features,
        feature_types=[columns[f].type for f in candidate.features],
        nullable=nullable,
        categories=categories,
        class_names=columns[candidate.target].categories,
        target=candidate.target,
    )
    if candidate.feature_views:
        signature = ModelSignature.model_validate(
            {**signature.model_dump(), "feature_views": [v.model_dump() for v in candidate.feature_views]}
        )
    x_validation = x[validation_rows]
    probabilities = estimator.predict_proba(x_validation) if candidate.task == "classification" else None
    scores = metrics.score(
        candidate.task, y[validation_rows], estimator.predict(x_validation), probabilities, signature.classes
    )
    artifact_key = keys.candidate_artifact(candidate.run_id, candidate.candidate_id, keys.MODEL_FILE)
    stored = store.put(artifact_key, onnx_bytes)
    store.put(
        keys.candidate_artifact(candidate.run_id, candidate.candidate_id, keys.SIGNATURE_FILE),
        signature.model_dump_json(indent=2).encode(),
        content_type="application/json",
    )
    result = CandidateResult(
        candidate_id=candidate.candidate_id,
        family=candidate.family,
        params=candidate.params,
        seed=candidate.seed,
        artifact_key=stored.key,
        artifact_version_id=stored.version_id,
        sha256=sha256_hex(onnx_bytes),
        validation_metrics=scores,
        train_rows=int(train.size),
        validation_rows=int(validation_rows.size),
        duration_seconds=round(time.perf_counter() - started, 3),
        package_versions=package_versions(),
        curve=curve,
    )
    return result


def _fit_in_steps(
    candidate: Candidate,
    pruning: TrialPruning,
    store: ArtifactStore,
    estimator: Any,
    *,
    fit: Callable[[Any], Any],
    x_validation: np.ndarray,
    y_validation: np.ndarray,
) -> tuple[Any, Curve, str]:
    """Train a trial in steps against the study SearchRound left in S3 (its earlier rounds'
    trials and curves): the estimator, its curve, the metric reported."""
    document = StudyDocument.model_validate_json(store.get(keys.search_study(candidate.run_id)).data)
    pruner = pruning.spec()
    trial = trial_in_study(document, pruner, candidate.run_id, pruning.trial)

    def score(model: Any) -> float:
        classes = [c.item() if isinstance(c, np.generic) else c for c in getattr(model, "classes_", [])]
        probabilities = model.predict_proba(x_validation) if candidate.task == "classification" else None
        try:
            scores = metrics.score(
                candidate.task, y_validation, model.predict(x_validation), probabilities, classes or None
            )
        except metrics.UndefinedMetric:
            return float("nan")
        return float(scores.get(document.metric, float("nan")))

    estimator, curve = fit_in_steps(
        estimator,
        candidate.family,
        candidate.params,
        fit=fit,
        score=score,
        trial=trial,
        interval=pruner.interval,
    )
    return estimator, curve, document.metric


# ---- SelectBest -------------------------------------------------------------------------
def select_best(raw_state: dict[str, Any], tracker: RunTracker) -> dict[str, Any]:
    """The candidate with the best validation score on the target metric (ties: first)."""
    state = TrainedState.model_validate(raw_state)
    if not state.results:
        raise InvalidTrainingRequest("no candidate was trained")
    unscored = [r.candidate_id for r in state.results if state.target_metric not in r.validation_metrics]
    if unscored:
        raise InvalidTrainingRequest(f"candidate(s) {unscored} have no validation {state.target_metric}")
    is_better = metrics.better(state.target_metric)
    best = state.results[0]
    for result in state.results[1:]:
        if is_better(
            result.validation_metrics[state.target_metric], best.validation_metrics[state.target_metric]
        ):
            best = result
    tracker.update(state.run_id, best_candidate=best.candidate_id)
    carried = state.model_dump(include=set(RunState.model_fields))
    return SelectedState.model_validate({**carried, "best": best}).model_dump(mode="json")


# ---- Evaluate ---------------------------------------------------------------------------
def evaluate(
    raw_state: dict[str, Any], store: ArtifactStore, registry: ModelRegistry, tracker: RunTracker
) -> dict[str, Any]:
    """Score the best candidate's ONNX on the holdout, and the champion on the same rows; apply the gate."""
    state = SelectedState.model_validate(raw_state)
    table, _ = _load_table(store, state.dataset)
    y = table.columns[state.target]
    _, _, holdout = split_indices(
        y,
        task=state.task,
        seed=state.seed,
        holdout_fraction=state.holdout_fraction,
        validation_fraction=state.validation_fraction,
    )
    if state.task == "classification":
        y = y.astype(np.int64)
    best = state.best
    signature_key = keys.sibling(best.artifact_key, keys.SIGNATURE_FILE)
    signature = ModelSignature.model_validate_json(store.get(signature_key).data)
    candidate_data = store.get(best.artifact_key, best.artifact_version_id).data
    x = table.matrix(signature.feature_names)[holdout]
    predicted, probabilities = predict_onnx(candidate_data, signature, x)
    candidate_scores = metrics.score(state.task, y[holdout], predicted, probabilities, signature.classes)
    _add_outputs_to_profile(store, state, y[holdout], predicted, candidate_scores)

    metric, threshold, tolerance = state.target_metric, state.threshold, state.tolerance
    higher = HIGHER_IS_BETTER[metric]
    value = candidate_scores[metric]
    reasons = []
    if threshold is not None and (value < threshold if higher else value > threshold):
        reasons.append(f"{metric} {value:.4f} is {'below' if higher else 'above'} the threshold {threshold}")

    champion: dict[str, Any] | None = None
    try:
        production = registry.resolve_alias(state.model_name, "production")
    except NotFound:
        production = None
    if production is not None:
        champion = {"version": production.version}
        incomparable = why_not_comparable(production.signature, signature, table, metric)
        if incomparable:
            champion["comparable"] = False
            champion["reason"] = incomparable
        else:
            champion_data = store.get(production.artifact.key, production.artifact.s3_version_id).data
            champion_x = table.matrix(production.signature.feature_names)[holdout]
            champion_scores = score_onnx(
                champion_data, production.signature, champion_x, y[holdout], state.task
            )
            champion |= {"comparable": True, "holdout_metrics": champion_scores}
            floor = champion_scores[metric] - tolerance if higher else champion_scores[metric] + tolerance
            if value < floor if higher else value > floor:
                reasons.append(
                    f"{metric} {value:.4f} is worse than the champion v{production.version} "
                    f"({champion_scores[metric]:.4f}) beyond the tolerance {tolerance}"
                )
    evaluation = Evaluation(
        passed=not reasons,
        reason="; ".join(reasons) if reasons else "passed the gate",
        metric=metric,
        holdout_metrics=candidate_scores,
        holdout_rows=int(holdout.size),
        threshold=threshold,
        tolerance=tolerance,
        champion=champion,
    )
    if reasons:
        tracker.finish(state.run_id, "REJECTED", evaluation=evaluation.model_dump(mode="json"))
    else:
        tracker.update(state.run_id, evaluation=evaluation.model_dump(mode="json"))
    return EvaluatedState(**state.model_dump(), evaluation=evaluation).model_dump(mode="json")


def _add_outputs_to_profile(
    store: ArtifactStore, state: SelectedState, y: np.ndarray, predicted: np.ndarray, scores: dict[str, float]
) -> None:
    """The run's reference profile with the candidate's output distribution on the holdout and
    its metric baseline (what drift monitoring compares predictions and live labels with).
    Rewritten whole from the profile ValidateData wrote, so a retried Evaluate writes the same."""
    document = json.loads(store.get(state.reference_profile_key).data)
    baseline = holdout_baseline(state.task, state.target_metric, scores, y, predicted)
    profile = profiles.with_outputs(
        document, np.asarray(predicted, dtype=np.float64), task=state.task, baseline=baseline
    )
    store.put(
        state.reference_profile_key, json.dumps(profile, indent=2).encode(), content_type="application/json"
    )


# ---- RegisterModel ----------------------------------------------------------------------
def register_model(raw_state: dict[str, Any], registry: ModelRegistry, tracker: RunTracker) -> dict[str, Any]:
    """Register the winner with lineage to the run; optionally point an alias at it."""
    from mlops_core.serving.sessions import load_session

    state = EvaluatedState.model_validate(raw_state)
    run_id, name, best = state.run_id, state.model_name, state.best
    run = tracker.get(run_id)
    if run.get("registered_version"):  # a retry after success: same answer, nothing new
        version = registry.get_version(name, int(run["registered_version"]))
    else:
        version = registry.register_version(
            name,
            RegisterVersionRequest(
                artifact_key=best.artifact_key,
                sha256=best.sha256,
                metrics=state.evaluation.holdout_metrics,
                run_id=run_id,
                tags={"family": best.family, "candidate": best.candidate_id},
                description=f"{best.family} {json.dumps(best.params, sort_keys=True)}",
            ),
            actor=f"training-run/{run_id}",
            validate_model=load_session,
        )
        tracker.update(run_id, registered_version=version.version)
    if state.promote_to:
        registry.set_alias(name, state.promote_to, version.version, actor=f"training-run/{run_id}")
    tracker.finish(run_id, "SUCCEEDED", registered_version=version.version)
    return Registered(
        run_id=run_id,
        model_name=name,
        version=version.version,
        artifact_sha256=version.artifact.sha256,
        holdout_metrics=state.evaluation.holdout_metrics,
        alias=state.promote_to,
    ).model_dump(mode="json")


# ---- MarkFailed -------------------------------------------------------------------------
def mark_failed(
    state: dict[str, Any], tracker: RunTracker, publisher: EventPublisher | None = None
) -> dict[str, Any]:
    """Record why a run failed (the Catch's error and cause) and announce it.

    Takes whatever state the failing step was given (any step's, plus ``error``), so it
    reads only ``run_id``, ``model_name`` and ``error``. Returns ``{"error", "cause"}`` at
    the top level: the workflow's final Fail state reads them, so the execution fails
    with the step's own error name.
    """
    error = state.get("error") or {}
    run_id = state.get("run_id")
    record = {"error": str(error.get("Error", "Unknown")), "cause": _cause_message(error.get("Cause"))}
    if run_id:
        try:
            tracker.finish(run_id, "FAILED", failure=record)
        except NotFound:
            record["note"] = "the run failed before its record was written"
    if publisher is not None:
        event = TrainingRunFailed(
            run_id=run_id, model_name=state.get("model_name"), error=record["error"], cause=record["cause"]
        )
        try:
            publisher.publish(event)
        except Unavailable as failure:
            # The run record already says why; failing here would replace the step's own
            # error with this one in the execution's result.
            record["note"] = f"TrainingRunFailed not published: {failure.message}"
    return {"run_id": run_id, "model_name": state.get("model_name"), **record}


def _cause_message(cause: Any) -> str:
    """A Lambda failure's Cause is a JSON string with errorMessage; keep just the message."""
    if isinstance(cause, str):
        try:
            parsed = json.loads(cause)
        except ValueError:
            return cause[:4000]
        if isinstance(parsed, dict):
            return str(parsed.get("errorMessage", cause))[:4000]
    return str(cause)[:4000]
