"""Concept drift of one drift run's window, from labelled feedback.

Two findings, one result (``ConceptResult``):

- **The live metric against the training baseline.** The window's feedback (recorded in
  [window start, window end), read in bulk from ``feedback/``; only the feedback on the
  version under watch, when one is named) is scored one row at a time:

  * classification: right (1) or wrong (0). The feedback function turned a label into
    the reward "label == prediction" against the serving version's classes, so the
    recorded reward *is* correctness; a bandit-style reward sent without a label stands
    in for it (a fractional reward counts as that much of a right answer). The baseline
    is the holdout accuracy (``metric_baseline.accuracy``, or ``value`` when the gate's
    metric was accuracy).
  * regression: within tolerance (1) or not (0), where the tolerance is the 90th
    percentile of the absolute errors on the training holdout
    (``metric_baseline.error_tolerance``), so the baseline share
    (``within_tolerance``) is about 0.9. A proportion keeps one statistical treatment
    for both tasks (Wilson's interval, and bounded errors for ADWIN, whose bound needs
    values in [0, 1]); the mean absolute error is reported beside it (``mae``).

  The share of right rows gets a Wilson interval at ``ConceptSettings.confidence``; the
  window is **degraded** when the whole interval is below the baseline
  (``concept.accuracy_against_baseline``). Fewer than ``min_labels`` scored rows: the
  window is ``insufficient_data`` and degraded is not decided.

- **ADWIN over the error stream**, for early warning between windows: the model's
  detector state (``concept.Adwin``, JSON) is kept on ``MODEL#{name} / CONCEPT`` with a
  watermark (recording time, prediction id): each run feeds it only the scored feedback
  after the watermark, so every label is seen once however the windows overlap, and the
  state is written back under its revision (a concurrent run that got there first makes
  this one read again and feed only what is still new). Feedback is fed only once it is
  ``ADWIN_SETTLE_MS`` old: the bulk copy lands in S3 seconds after the feedback is
  recorded, and a label fed out of order would be skipped for good by the watermark.
  The alarm counts only a cut after which the error rate is higher (an improving model
  is not drift). The state restarts when the version under watch changes.

``status``: ``drift`` (degraded, or ADWIN's alarm), ``no_drift``, ``insufficient_data``,
or ``no_baseline`` (a profile written before training recorded the baseline: the live
metric is reported without a comparison, and a regression model cannot be scored at all).

The drift runner calls ``evaluate_concept`` (or ``ConceptWindowEvaluator.evaluate``, the
keyword form of its concept hook) once per run and stores the result's JSON as the run's
``concept``; ``drifted``, ``live_metric`` and ``baseline_metric`` are what DriftDetected
carries. ``CONCEPT_DRIFT_METRIC`` names the EMF metric (1 when drifted, else 0) that the
concept-drift alarm watches. This module does not import the feedback domain (the layers
contract): the feedback store is passed in (``FeedbackSource``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from mlops_core.clock import now_iso
from mlops_core.data.profiles import MetricBaseline, ReferenceProfile
from mlops_core.errors import Conflict, Unavailable
from mlops_core.monitoring.concept import Adwin, MetricCheck, accuracy_against_baseline
from mlops_core.monitoring.config import ConceptSettings, MonitoringConfig
from mlops_core.storage import keys
from mlops_core.storage.dynamo import MetadataTable

#: The EMF metric (namespace ServerlessMLOps, dimension model) a drift run emits: 1 when the
#: window's concept drifted, else 0; the concept-drift CloudWatch alarm watches its maximum.
CONCEPT_DRIFT_METRIC = "ConceptDriftDetected"
#: How old a feedback must be (at the window's end) before ADWIN is fed it.
ADWIN_SETTLE_MS = 5 * 60 * 1000
#: Reads of the detector state before giving up when other runs keep moving it.
STATE_ATTEMPTS = 4

Task = Literal["classification", "regression"]
ConceptStatus = Literal["drift", "no_drift", "insufficient_data", "no_baseline"]
ConceptMetric = Literal["accuracy", "within_tolerance"]


class LabelledFeedback(Protocol):
    """What concept drift reads of a feedback (``feedback.entities.FeedbackRecord`` has it)."""

    @property
    def prediction_id(self) -> str: ...
    @property
    def model_version(self) -> int: ...
    @property
    def reward(self) -> float | None: ...
    @property
    def label(self) -> Any: ...
    @property
    def prediction(self) -> Any: ...
    @property
    def at_ms(self) -> int: ...


class FeedbackSource(Protocol):
    """The bulk feedback by recording time (``feedback.feedback_store.FeedbackStore``)."""

    def window(
        self, model_name: str, *, start_ms: int, end_ms: int, limit: int | None = None
    ) -> Sequence[LabelledFeedback]: ...


# ---- the detector's state between runs ---------------------------------------------------
class ConceptState(BaseModel):
    """``MODEL#{name} / CONCEPT``: ADWIN and how far into the feedback it has read."""

    model_config = ConfigDict(extra="ignore")

    model_name: str
    model_version: int | None = Field(None, description="The version whose errors it watches")
    adwin: Adwin = Field(default_factory=Adwin)
    watermark_ms: int = Field(0, description="Feedback recorded up to here (with watermark_id) was fed")
    watermark_id: str = ""
    seen: int = Field(0, description="Scored feedback fed so far (since the last restart)")
    alarms: int = Field(0, description="Cuts after which the error rate was higher")
    revision: int = 0
    updated_at: str | None = None


class ConceptStates(Protocol):
    """Where the detector state is kept (``ConceptStateRepository``; tests may keep it in memory)."""

    def get(self, model_name: str) -> ConceptState | None: ...
    def save(self, state: ConceptState, *, expected_revision: int) -> None: ...


class ConceptStateRepository:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    def get(self, model_name: str) -> ConceptState | None:
        item = self.table.get(keys.model_pk(model_name), keys.CONCEPT_SK, consistent=True)
        if item is None:
            return None
        fields = {k: v for k, v in item.items() if k not in keys.KEY_ATTRIBUTES}
        fields["adwin"] = Adwin.model_validate_json(fields.get("adwin") or "{}")
        return ConceptState.model_validate(fields)

    def save(self, state: ConceptState, *, expected_revision: int) -> None:
        """Write ``state`` if the stored one is still at ``expected_revision`` (``Conflict``)."""
        condition = "attribute_not_exists(pk)" if expected_revision == 0 else "revision = :expected"
        item = {
            keys.PARTITION_KEY: keys.model_pk(state.model_name),
            keys.SORT_KEY: keys.CONCEPT_SK,
            **state.model_dump(mode="json", exclude={"adwin"}),
            # One string: the buckets' floats round-trip exactly, and the item stays small.
            "adwin": state.adwin.model_dump_json(),
        }
        self.table.put(
            item, condition=condition, values={":expected": expected_revision} if expected_revision else None
        )


# ---- the result ------------------------------------------------------------------------------
class AdwinSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alarm: bool = Field(description="A cut in this run after which the error rate was higher")
    fed: int = Field(description="Scored feedback fed in this run (after the watermark, settled)")
    seen: int = Field(description="Fed since the detector (re)started")
    error_rate: float = Field(description="The mean error over ADWIN's current window")
    width: int = Field(description="Observations in ADWIN's current window")
    watermark_ms: int
    delta: float


class ConceptResult(BaseModel):
    """One window's concept drift; stored as the drift run's ``concept``."""

    model_config = ConfigDict(extra="forbid")

    model_name: str
    model_version: int | None
    task: Task
    status: ConceptStatus
    drifted: bool = Field(description="degraded or ADWIN's alarm: DriftDetected gets the kind 'concept'")
    metric: ConceptMetric
    live_metric: float | None = Field(description="The window's share of right (or within-tolerance) rows")
    baseline_metric: float | None = Field(description="The same measure on the training holdout")
    baseline_rows: int | None = Field(description="Holdout rows the baseline was measured on")
    live: MetricCheck | None = Field(description="The live metric with its Wilson interval")
    degraded: bool = Field(description="The live interval's top is below the baseline")
    insufficient_data: bool
    min_labels: int
    rows: int = Field(description="Scored feedback in the window")
    feedback_rows: int = Field(description="Feedback in the window (on the version under watch)")
    unusable_rows: int = Field(description="Feedback without a label or reward it could score")
    labelled_rows: int = Field(description="Scored rows that carried a label")
    mae: float | None = Field(None, description="Regression: the window's mean absolute error")
    baseline_mae: float | None = None
    adwin: AdwinSummary | None
    window_start_ms: int
    window_end_ms: int
    notes: list[str] = Field(default_factory=list)


# ---- scoring one feedback ----------------------------------------------------------------
class _Scorer:
    """How a feedback becomes 1 (right) or 0 (wrong), and the baseline it is compared with."""

    def __init__(self, task: Task, baseline: MetricBaseline | None) -> None:
        self.task = task
        self.metric: ConceptMetric = "accuracy" if task == "classification" else "within_tolerance"
        self.baseline_value: float | None = None
        self.tolerance: float | None = None
        if baseline is not None and task == "classification":
            self.baseline_value = (
                baseline.accuracy
                if baseline.accuracy is not None
                else (baseline.value if baseline.metric == "accuracy" else None)
            )
        elif baseline is not None and baseline.error_tolerance is not None:
            self.tolerance = baseline.error_tolerance
            self.baseline_value = baseline.within_tolerance

    @property
    def can_score(self) -> bool:
        return self.task == "classification" or self.tolerance is not None

    def correct(self, feedback: LabelledFeedback) -> float | None:
        if self.task == "regression":
            error = _absolute_error(feedback)
            if error is not None and self.tolerance is not None:
                return 1.0 if error <= self.tolerance else 0.0
        reward = feedback.reward
        if reward is None or not math.isfinite(reward):
            return None
        return min(1.0, max(0.0, float(reward)))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _absolute_error(feedback: LabelledFeedback) -> float | None:
    label, prediction = _number(feedback.label), _number(feedback.prediction)
    return None if label is None or prediction is None else abs(label - prediction)


# ---- the evaluation -----------------------------------------------------------------------
def evaluate_concept(
    model_name: str,
    window_start_ms: int,
    window_end_ms: int,
    profile: ReferenceProfile | Mapping[str, Any] | None,
    settings: ConceptSettings,
    *,
    feedback_store: FeedbackSource,
    state_repository: ConceptStates,
    model_version: int | None = None,
    task: Task | None = None,
    max_rows: int | None = None,
) -> ConceptResult:
    """Concept drift over [window_start_ms, window_end_ms) of ``model_name``'s feedback.

    ``profile``: the reference profile of the run that trained the version under watch
    (its ``metric_baseline``; None or a profile without one: ``no_baseline``).
    ``model_version``: only the feedback on that version counts, and ADWIN restarts when
    it changes (None: every version's feedback). ``task``: the version's signature's task
    (None: read from the baseline, else classification). ``max_rows``: at most this many of
    the window's feedback, the newest (the drift run passes its ``max_rows``).
    """
    reference = (
        profile
        if isinstance(profile, ReferenceProfile) or profile is None
        else ReferenceProfile.model_validate(profile)
    )
    baseline = reference.metric_baseline if reference is not None else None
    task = task or _task_of(baseline)
    scorer = _Scorer(task, baseline)
    notes: list[str] = []
    if baseline is None:
        notes.append("the reference profile has no metric baseline (trained before Evaluate recorded it)")
    elif scorer.baseline_value is None:
        notes.append(f"the metric baseline has no {scorer.metric} (recorded before it was kept)")
    if not scorer.can_score:
        notes.append("a regression model's errors need the baseline's error tolerance: nothing scored")

    feedback = [
        f
        for f in feedback_store.window(
            model_name, start_ms=window_start_ms, end_ms=window_end_ms, limit=max_rows
        )
        if model_version is None or f.model_version == model_version
    ]
    scored = [(f, c) for f in feedback if (c := scorer.correct(f)) is not None] if scorer.can_score else []
    rows = len(scored)
    live = None
    if rows:
        live = accuracy_against_baseline(
            round(math.fsum(c for _, c in scored)),
            rows,
            scorer.baseline_value,
            confidence=settings.confidence,
        ).model_copy(update={"metric": scorer.metric})
    insufficient = rows < settings.min_labels
    degraded = bool(live is not None and live.degraded and not insufficient)
    adwin = (
        _feed_adwin(
            state_repository,
            model_name,
            model_version,
            scored,
            settings,
            settle_before=window_end_ms - ADWIN_SETTLE_MS,
        )
        if scored or state_repository.get(model_name) is not None
        else None
    )
    alarm = adwin is not None and adwin.alarm
    drifted = degraded or alarm
    status: ConceptStatus
    if drifted:
        status = "drift"
    elif insufficient:
        status = "insufficient_data"
        notes.append(f"{rows} scored feedback in the window, fewer than min_labels ({settings.min_labels})")
    elif scorer.baseline_value is None:
        status = "no_baseline"
    else:
        status = "no_drift"
    errors = [e for f, _ in scored if (e := _absolute_error(f)) is not None] if task == "regression" else []
    return ConceptResult(
        model_name=model_name,
        model_version=model_version,
        task=task,
        status=status,
        drifted=drifted,
        metric=scorer.metric,
        live_metric=live.value if live else None,
        baseline_metric=scorer.baseline_value,
        baseline_rows=baseline.rows if baseline is not None else None,
        live=live,
        degraded=degraded,
        insufficient_data=insufficient,
        min_labels=settings.min_labels,
        rows=rows,
        feedback_rows=len(feedback),
        unusable_rows=len(feedback) - rows,
        labelled_rows=sum(1 for f, _ in scored if f.label is not None),
        mae=math.fsum(errors) / len(errors) if errors else None,
        baseline_mae=baseline.mae if baseline is not None else None,
        adwin=adwin,
        window_start_ms=window_start_ms,
        window_end_ms=window_end_ms,
        notes=notes,
    )


def _task_of(baseline: MetricBaseline | None) -> Task:
    if baseline is not None and (baseline.error_tolerance is not None or baseline.metric in ("rmse", "r2")):
        return "regression"
    return "classification"


def _feed_adwin(
    repository: ConceptStates,
    model_name: str,
    model_version: int | None,
    scored: list[tuple[LabelledFeedback, float]],
    settings: ConceptSettings,
    *,
    settle_before: int,
) -> AdwinSummary:
    """Feed the model's ADWIN the settled feedback after its watermark, once; store it back."""
    ordered = sorted(scored, key=lambda pair: (pair[0].at_ms, pair[0].prediction_id))
    for _ in range(STATE_ATTEMPTS):
        stored = repository.get(model_name)
        expected = stored.revision if stored is not None else 0
        state = stored.model_copy(deep=True) if stored is not None else ConceptState(model_name=model_name)
        if stored is None or (model_version is not None and state.model_version != model_version):
            # A new version is a new concept to watch: its errors are not the old one's.
            state = ConceptState(model_name=model_name, model_version=model_version, revision=expected)
            state.adwin = Adwin(delta=settings.adwin_delta)
        state.adwin.delta = settings.adwin_delta
        mark = (state.watermark_ms, state.watermark_id)
        fresh = [(f, c) for f, c in ordered if (f.at_ms, f.prediction_id) > mark and f.at_ms < settle_before]
        alarm = False
        for _, correct in fresh:
            before = state.adwin.estimate
            if state.adwin.update(1.0 - correct) and state.adwin.estimate > before:
                alarm = True
                state.alarms += 1
        if fresh:
            state.watermark_ms, state.watermark_id = fresh[-1][0].at_ms, fresh[-1][0].prediction_id
        state.seen += len(fresh)
        summary = AdwinSummary(
            alarm=alarm,
            fed=len(fresh),
            seen=state.seen,
            error_rate=state.adwin.estimate,
            width=state.adwin.width,
            watermark_ms=state.watermark_ms,
            delta=state.adwin.delta,
        )
        if not fresh and stored is not None and stored.model_dump() == state.model_dump():
            return summary  # nothing new: no write
        state.revision, state.updated_at = expected + 1, now_iso()
        try:
            repository.save(state, expected_revision=expected)
        except Conflict:
            continue  # another run fed it first: read again, feed only what it did not
        return summary
    raise Unavailable(
        f"the concept drift state of model '{model_name}' changed under {STATE_ATTEMPTS} attempts",
        retry_after_seconds=5,
    )


class ConceptWindowEvaluator:
    """``evaluate_concept`` with its stores bound, in the keyword form of the drift runner's
    concept hook (the runner passes the window's captured rows too; concept drift reads the
    feedback instead)."""

    def __init__(self, feedback_store: FeedbackSource, state_repository: ConceptStates) -> None:
        self.feedback_store = feedback_store
        self.state_repository = state_repository

    def evaluate(
        self,
        *,
        model_name: str,
        model_version: int,
        config: MonitoringConfig,
        profile: ReferenceProfile,
        window_start_ms: int,
        window_end_ms: int,
        task: Task | None = None,
        **_: Any,
    ) -> ConceptResult:
        return evaluate_concept(
            model_name,
            window_start_ms,
            window_end_ms,
            profile,
            config.concept,
            feedback_store=self.feedback_store,
            state_repository=self.state_repository,
            model_version=model_version,
            task=task,
            max_rows=config.max_rows,
        )
