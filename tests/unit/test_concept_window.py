"""Concept drift of a window: the live metric from labelled feedback against the training
baseline (Wilson interval), and ADWIN over the errors, fed each label once across runs."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from mlops_core.data.profiles import MetricBaseline, ReferenceProfile
from mlops_core.errors import Conflict
from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.monitoring.concept_window import (
    ADWIN_SETTLE_MS,
    ConceptState,
    ConceptWindowEvaluator,
    evaluate_concept,
)
from mlops_core.monitoring.config import ConceptSettings, MonitoringConfig

T0 = 1_796_115_000_000  # ms
HOUR = 3_600_000
SETTINGS = ConceptSettings()


class Feedback:
    """The bulk feedback as ``FeedbackStore.window`` answers it."""

    def __init__(self, records: Sequence[FeedbackRecord] = ()) -> None:
        self.records = list(records)

    def window(
        self, model_name: str, *, start_ms: int, end_ms: int, limit: int | None = None
    ) -> list[FeedbackRecord]:
        found = [r for r in self.records if r.model_name == model_name and start_ms <= r.at_ms < end_ms]
        ordered = sorted(found, key=lambda r: (r.at_ms, r.prediction_id))
        return ordered[-limit:] if limit is not None else ordered


class States:
    """The detector state as ``ConceptStateRepository`` keeps it: JSON, written under its revision."""

    def __init__(self) -> None:
        self.stored: dict[str, str] = {}
        self.writes = 0

    def get(self, model_name: str) -> ConceptState | None:
        raw = self.stored.get(model_name)
        return None if raw is None else ConceptState.model_validate_json(raw)

    def save(self, state: ConceptState, *, expected_revision: int) -> None:
        current = self.get(state.model_name)
        if (current.revision if current else 0) != expected_revision:
            raise Conflict("revision moved")
        self.stored[state.model_name] = state.model_dump_json()
        self.writes += 1


def _profile(**baseline: float | int | str) -> ReferenceProfile:
    fields = {"metric": "roc_auc", "value": 0.99, "rows": 114, "accuracy": 0.95} | baseline
    return ReferenceProfile(rows=569, features={}, metric_baseline=MetricBaseline.model_validate(fields))


def _stream(
    count: int, accuracy: float, *, start_ms: int = T0, seed: int = 1, version: int = 1, prefix: str = "p"
) -> list[FeedbackRecord]:
    """``count`` labelled feedback, one a second from ``start_ms``, right with probability ``accuracy``."""
    rng = random.Random(seed)
    records = []
    for i in range(count):
        right = rng.random() < accuracy
        records.append(
            FeedbackRecord(
                prediction_id=f"{prefix}-{seed}-{i:06d}",
                model_name="m",
                model_version=version,
                reward=1.0 if right else 0.0,
                label=1 if right else 0,
                prediction=1,
                at_ms=start_ms + i * 1000,
                prediction_at_ms=start_ms + i * 1000 - 60_000,
            )
        )
    return records


def _evaluate(
    feedback: Feedback,
    states: States,
    *,
    end_ms: int,
    start_ms: int | None = None,
    profile: ReferenceProfile | None = None,
    **options: object,
):  # type: ignore[no-untyped-def]
    return evaluate_concept(
        "m",
        end_ms - 24 * HOUR if start_ms is None else start_ms,
        end_ms,
        profile if profile is not None else _profile(),
        options.pop("settings", SETTINGS),  # type: ignore[arg-type]
        feedback_store=feedback,
        state_repository=states,
        **options,  # type: ignore[arg-type]
    )


def test_an_accuracy_drop_is_detected_with_its_interval_below_the_baseline() -> None:
    feedback = Feedback(_stream(400, 0.75))
    result = _evaluate(feedback, States(), end_ms=T0 + 2 * HOUR)

    assert result.status == "drift" and result.drifted and result.degraded
    assert result.metric == "accuracy" and result.baseline_metric == 0.95 and result.baseline_rows == 114
    assert result.live is not None and result.live.upper < 0.95
    assert result.live.lower <= result.live_metric <= result.live.upper
    assert 0.7 < result.live_metric < 0.8  # type: ignore[operator]
    assert (result.rows, result.feedback_rows, result.unusable_rows, result.labelled_rows) == (
        400,
        400,
        0,
        400,
    )


def test_no_drop_is_not_drift() -> None:
    result = _evaluate(Feedback(_stream(400, 0.95)), States(), end_ms=T0 + 2 * HOUR)

    assert result.status == "no_drift" and not result.drifted and not result.degraded
    assert result.live is not None and result.live.lower < 0.95 < result.live.upper
    assert result.adwin is not None and not result.adwin.alarm and result.adwin.fed == 400


def test_fewer_labels_than_min_labels_is_insufficient_data_however_bad_they_look() -> None:
    result = _evaluate(Feedback(_stream(20, 0.0)), States(), end_ms=T0 + 2 * HOUR)

    assert result.status == "insufficient_data" and result.insufficient_data
    assert not result.degraded and not result.drifted
    assert result.rows == 20 and result.min_labels == 50
    assert result.live is not None and result.live.value == 0.0  # reported, not decided
    assert "fewer than min_labels (50)" in result.notes[-1]


def test_adwin_state_round_trips_and_each_label_is_fed_once_across_overlapping_windows() -> None:
    first, second = _stream(300, 0.9, seed=1), _stream(200, 0.9, start_ms=T0 + HOUR, seed=2)
    feedback, states = Feedback(first), States()

    one = _evaluate(feedback, states, end_ms=T0 + 2 * HOUR)
    assert one.adwin is not None and (one.adwin.fed, one.adwin.seen) == (300, 300)
    stored = states.get("m")
    assert stored is not None and stored.revision == 1
    assert (stored.watermark_ms, stored.watermark_id) == (first[-1].at_ms, first[-1].prediction_id)
    assert stored.adwin.width == 300 and stored.adwin.total == pytest.approx(sum(1 - r.reward for r in first))

    feedback.records += second  # the next window overlaps the first
    two = _evaluate(feedback, states, end_ms=T0 + 3 * HOUR)
    assert two.rows == 500  # the window's metric sees every label in it
    assert two.adwin is not None and (two.adwin.fed, two.adwin.seen) == (200, 500)

    writes = states.writes
    three = _evaluate(feedback, states, end_ms=T0 + 3 * HOUR)  # the same window again (a retry)
    assert three.adwin is not None and (three.adwin.fed, three.adwin.seen) == (0, 500)
    assert states.writes == writes  # nothing new: nothing written


def test_feedback_younger_than_the_settle_time_waits_for_the_next_run() -> None:
    end = T0 + 300 * 1000 + ADWIN_SETTLE_MS // 2  # the last ~150 feedback are under five minutes old
    states = States()
    result = _evaluate(Feedback(_stream(300, 0.9)), states, end_ms=end)

    settled = sum(1 for r in _stream(300, 0.9) if r.at_ms < end - ADWIN_SETTLE_MS)
    assert result.rows == 300
    assert result.adwin is not None and result.adwin.fed == settled < 300
    later = _evaluate(Feedback(_stream(300, 0.9)), states, end_ms=end + ADWIN_SETTLE_MS)
    assert later.adwin is not None and (later.adwin.fed, later.adwin.seen) == (300 - settled, 300)


def test_adwin_alarms_when_errors_rise_between_windows_and_not_when_they_fall() -> None:
    steady, worse = _stream(1500, 0.9, seed=3), _stream(1500, 0.6, start_ms=T0 + HOUR, seed=4)
    states = States()
    quiet = _evaluate(Feedback(steady), states, end_ms=T0 + HOUR)
    assert quiet.adwin is not None and not quiet.adwin.alarm

    # The next window alone is large enough to be degraded; ADWIN, fed across runs, says so too.
    alarm = _evaluate(Feedback(steady + worse), states, start_ms=T0 + HOUR, end_ms=T0 + 2 * HOUR)
    assert alarm.adwin is not None and alarm.adwin.alarm and alarm.adwin.error_rate > 0.3
    assert alarm.drifted and alarm.status == "drift"
    stored = states.get("m")
    assert stored is not None and stored.alarms >= 1

    better = _stream(1500, 0.95, start_ms=T0 + 2 * HOUR, seed=5)  # and then the model recovers
    recovered = _evaluate(Feedback(better), States(), end_ms=T0 + 3 * HOUR)
    assert recovered.adwin is not None and not recovered.adwin.alarm
    improving = States()
    _evaluate(Feedback(worse), improving, start_ms=T0, end_ms=T0 + 2 * HOUR)
    after = _evaluate(Feedback(better), improving, start_ms=T0 + 2 * HOUR, end_ms=T0 + 3 * HOUR)
    assert after.adwin is not None and not after.adwin.alarm  # a cut, but errors fell: not drift
    state = improving.get("m")
    assert state is not None and state.adwin.detections >= 1 and state.alarms == 0


def test_an_old_profile_without_a_baseline_reports_no_baseline_and_the_live_metric() -> None:
    old = ReferenceProfile(rows=569, features={})
    result = _evaluate(Feedback(_stream(400, 0.6)), States(), end_ms=T0 + 2 * HOUR, profile=old)

    assert result.status == "no_baseline" and not result.degraded
    assert result.baseline_metric is None and result.live_metric is not None
    assert "no metric baseline" in result.notes[0]
    # A baseline from before accuracy was kept, on a gate metric other than accuracy: same answer.
    older = _profile(accuracy=None)  # type: ignore[arg-type]
    assert _evaluate(Feedback(_stream(400, 0.6)), States(), end_ms=T0 + 2 * HOUR, profile=older).status == (
        "no_baseline"
    )
    gated_on_accuracy = _profile(metric="accuracy", value=0.95, accuracy=None)  # type: ignore[arg-type]
    assert _evaluate(
        Feedback(_stream(400, 0.6)), States(), end_ms=T0 + 2 * HOUR, profile=gated_on_accuracy
    ).degraded


def test_only_the_watched_versions_feedback_counts_and_a_new_version_restarts_adwin() -> None:
    old, new = _stream(400, 0.5, seed=6, version=1), _stream(400, 0.95, seed=7, version=2, prefix="q")
    states = States()
    on_v1 = _evaluate(Feedback(old), states, end_ms=T0 + 2 * HOUR, model_version=1)
    assert on_v1.degraded and on_v1.adwin is not None and on_v1.adwin.seen == 400

    on_v2 = _evaluate(Feedback(old + new), states, end_ms=T0 + 2 * HOUR, model_version=2)
    assert (on_v2.rows, on_v2.feedback_rows) == (400, 400)
    assert not on_v2.degraded
    stored = states.get("m")
    assert stored is not None and stored.model_version == 2 and stored.seen == 400  # restarted


def test_a_concurrent_run_that_fed_first_makes_this_one_feed_only_what_is_left() -> None:
    records = _stream(300, 0.9)
    states = States()

    class RacedOnce(States):
        def __init__(self) -> None:
            super().__init__()
            self.raced = False

        def save(self, state: ConceptState, *, expected_revision: int) -> None:
            if not self.raced:  # another run stores the first 100 labels just before this write
                self.raced = True
                _evaluate(Feedback(records[:100]), states, end_ms=T0 + 2 * HOUR)
                self.stored = dict(states.stored)
            super().save(state, expected_revision=expected_revision)

    raced = RacedOnce()
    result = _evaluate(Feedback(records), raced, end_ms=T0 + 2 * HOUR)
    assert result.adwin is not None and (result.adwin.fed, result.adwin.seen) == (200, 300)
    stored = raced.get("m")
    assert stored is not None and stored.revision == 2 and stored.adwin.width == 300


def test_regression_scores_errors_against_the_holdouts_tolerance() -> None:
    profile = _profile(
        metric="rmse", value=2.0, accuracy=None, mae=1.0, error_tolerance=2.5, within_tolerance=0.9
    )  # type: ignore[arg-type]
    rng = random.Random(8)

    def errors(scale: float, seed_offset: int) -> list[FeedbackRecord]:
        return [
            FeedbackRecord(
                prediction_id=f"r-{seed_offset}-{i:05d}",
                model_name="m",
                model_version=1,
                reward=None,  # a regression label carries no reward
                label=10.0 + rng.gauss(0, scale),
                prediction=10.0,
                at_ms=T0 + i * 1000,
                prediction_at_ms=T0 + i * 1000,
            )
            for i in range(400)
        ]

    fine = _evaluate(Feedback(errors(1.5, 0)), States(), end_ms=T0 + 2 * HOUR, profile=profile)
    assert fine.task == "regression" and fine.metric == "within_tolerance"
    assert fine.status == "no_drift" and fine.baseline_mae == 1.0
    assert fine.mae is not None and 1.0 < fine.mae < 1.4

    worse = _evaluate(Feedback(errors(4.0, 1)), States(), end_ms=T0 + 2 * HOUR, profile=profile)
    assert worse.status == "drift" and worse.degraded
    assert worse.live is not None and worse.live.upper < 0.9 and worse.mae is not None and worse.mae > 2.5


def test_a_bandit_reward_stands_in_for_correctness_and_unusable_feedback_is_counted() -> None:
    records = [
        FeedbackRecord(
            prediction_id=f"b-{i:04d}",
            model_name="m",
            model_version=1,
            reward=None if i % 10 == 0 else float(i % 2),
            label=None,
            prediction=1,
            at_ms=T0 + i * 1000,
            prediction_at_ms=T0,
        )
        for i in range(200)
    ]
    result = _evaluate(Feedback(records), States(), end_ms=T0 + 2 * HOUR)

    assert (result.rows, result.unusable_rows, result.labelled_rows) == (180, 20, 0)
    assert result.live_metric == pytest.approx(100 / 180, abs=0.01)


def test_the_runners_hook_form_passes_the_configuration_and_the_version() -> None:
    evaluator = ConceptWindowEvaluator(Feedback(_stream(400, 0.75)), States())
    config = MonitoringConfig(max_rows=100, concept=ConceptSettings(min_labels=500))

    result = evaluator.evaluate(
        model_name="m",
        model_version=1,
        config=config,
        profile=_profile(),
        rows=[],
        window_start_ms=T0,
        window_end_ms=T0 + 2 * HOUR,
    )
    assert result.status == "insufficient_data" and result.min_labels == 500 and result.model_version == 1
    assert result.feedback_rows == 100  # the newest max_rows of the window's feedback
    dumped = result.model_dump(mode="json")
    assert {"drifted", "live_metric", "baseline_metric"} <= set(dumped)  # what DriftDetected carries
