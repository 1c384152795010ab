"""The training workflow's SearchRound step: tell the last round's results, ask the next.

    ValidateData (a search) → SearchRound → Searched? no  → TrainTrials (Map) → SearchRound …
                                                   yes → Evaluate (the best trial) → Gate …

The study is kept in S3 between rounds (``keys.search_study``) and rebuilt each round
(``search.ask``). SearchRound is safe to retry: telling skips trials already told, and a
round already asked (the document's round is past the state's) is returned as it was.
"""

from __future__ import annotations

import json
from typing import Any

from mlops_core.clock import now_iso, parse_iso
from mlops_core.errors import Invalid, NotFound
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.training.compute import stage_for_jobs
from mlops_core.training.estimators import CandidateSpec, check_candidate
from mlops_core.training.pruning import TrialPruning, applies, note
from mlops_core.training.requests import InvalidTrainingRequest
from mlops_core.training.search import (
    OptunaSearchSpec,
    StudyDocument,
    Trial,
    ask,
    budget_spent,
    check_space,
    tell,
)
from mlops_core.training.state import Candidate, CandidateResult, RunState, SearchState, SelectedState
from mlops_core.training.tracking import RunTracker


def _load(store: ArtifactStore, state: SearchState, spec: OptunaSearchSpec) -> StudyDocument:
    try:
        return StudyDocument.model_validate_json(store.get(keys.search_study(state.run_id)).data)
    except NotFound:
        metric, direction = check_space(spec, state.task, state.target_metric)
        return StudyDocument(
            family=spec.family,
            metric=metric,
            direction=direction,
            started_at=now_iso(),
            pruner=None if spec.pruner is None else spec.pruner.model_dump(mode="json"),
            pruner_note=_pruner_note(state, spec),
        )


def _pruner_note(state: SearchState, spec: OptunaSearchSpec) -> str | None:
    """Why the search's pruner prunes nothing, if so (the run record says it)."""
    if applies(spec.pruner, spec.family) and state.compute != "lambda":
        return "trials on SageMaker train to the end: a training job does not read the study"
    return note(spec.pruner, spec.family)


def _save(store: ArtifactStore, run_id: str, document: StudyDocument) -> None:
    store.put(
        keys.search_study(run_id),
        json.dumps(document.model_dump(mode="json"), indent=1).encode(),
        content_type="application/json",
    )


def _candidate(state: SearchState, spec: OptunaSearchSpec, trial: Trial) -> Candidate | None:
    """The trial as a Map item (its full parameters), or None when the family's checks
    refuse the combination (the trial is then failed, never trained)."""
    try:
        params = check_candidate(
            CandidateSpec(family=spec.family, params={**spec.params, **trial.params}), None, 0
        )
    except Invalid as error:  # the combination is refused: the trial fails, not the run
        trial.state, trial.error = "FAIL", error.message[:500]
        return None
    return Candidate(
        run_id=state.run_id,
        candidate_id=trial.candidate_id,
        family=spec.family,
        params=params,
        task=state.task,
        dataset=state.dataset,
        features=state.features,
        feature_views=state.feature_views,
        target=state.target,
        seed=state.seed,
        holdout_fraction=state.holdout_fraction,
        validation_fraction=state.validation_fraction,
        target_metric=state.target_metric,
        compute=state.compute,
        pruning=TrialPruning(pruner=spec.pruner.model_dump(mode="json"), trial=trial.number)
        if spec.pruner is not None and applies(spec.pruner, spec.family) and state.compute == "lambda"
        else None,
    )


def search_round(raw_state: dict[str, Any], store: ArtifactStore, tracker: RunTracker) -> dict[str, Any]:
    """Tell the Map's results, then either the next round's trials (a ``SearchState``) or,
    once the budget is spent, the best trial (a ``SelectedState``: Evaluate's input)."""
    state = SearchState.model_validate(raw_state)
    spec = OptunaSearchSpec.model_validate(state.search)
    document = _load(store, state, spec)
    tell(document, state.results)
    carried = state.model_dump(include=set(RunState.model_fields))
    if document.round > state.search_round:  # a retry: this round was asked already
        pending = [t for t in document.trials if t.round == document.round]
    else:
        elapsed = (parse_iso(now_iso()) - parse_iso(document.started_at)).total_seconds()
        spent = budget_spent(document, spec, elapsed)
        if spent is not None:
            return _finish(store, tracker, state=state, document=document, carried=carried, spent=spent)
        count = min(spec.parallelism, spec.max_trials - len(document.trials))
        pending = ask(document, spec, count, state.seed, study_name=state.run_id)
    candidates = [c for t in pending if (c := _candidate(state, spec, t)) is not None]
    stage_for_jobs(store, candidates)
    _save(store, state.run_id, document)
    tracker.update(state.run_id, search=document.summary())
    if not candidates:  # every trial of the round was refused: tell nothing, ask again
        return search_round(
            {**carried, "search": state.search, "search_round": document.round}, store, tracker
        )
    return SearchState(
        **carried, search=state.search, search_round=document.round, candidates=candidates
    ).model_dump(mode="json", exclude={"results"})


def _finish(
    store: ArtifactStore,
    tracker: RunTracker,
    *,
    state: SearchState,
    document: StudyDocument,
    carried: dict[str, Any],
    spent: str,
) -> dict[str, Any]:
    _save(store, state.run_id, document)
    summary = document.summary() | {"stopped": f"budget spent: {spent}"}
    best = document.best()
    if best is None or best.result is None:
        tracker.update(state.run_id, search=summary)
        raise InvalidTrainingRequest(
            f"search: none of {len(document.trials)} trials completed (the run record lists their errors)"
        )
    tracker.update(state.run_id, search=summary, best_candidate=best.candidate_id)
    result = CandidateResult.model_validate(best.result)
    return SelectedState.model_validate({**carried, "best": result}).model_dump(mode="json")
