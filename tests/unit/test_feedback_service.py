"""FeedbackService against a moto prediction log, with a stand-in registry and a clock set by hand:
recorded once, duplicates answered with the original, "not captured yet" told from "unknown",
labels turned into rewards the way the signature spells its classes."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from mlops_core.errors import Invalid, NotFound
from mlops_core.feedback.prediction_log import PredictionLog
from mlops_core.feedback.requests import FeedbackEntry
from mlops_core.feedback.service import NOT_CAPTURED_RETRY_AFTER_SECONDS, FeedbackService, NotCapturedYet
from mlops_core.registry.signature import FeatureSpec, ModelSignature
from mlops_core.serving.capture import CapturedPrediction, prediction_ids
from mlops_core.storage.dynamo import MetadataTable
from tests.support import PREDICTIONS_TABLE, REGION

NOW_S = 1_796_115_000.0
NOW_MS = int(NOW_S * 1000)
CLASSIFIER = ModelSignature(features=[FeatureSpec(name="x")], classes=[0, 1])
NAMED_CLASSES = ModelSignature(features=[FeatureSpec(name="x")], classes=["no", "yes"])
REGRESSOR = ModelSignature(task="regression", features=[FeatureSpec(name="x")], classes=None)


class Versions:
    """The registry's read side as the service uses it: a signature per (model, version)."""

    def __init__(self, signatures: dict[tuple[str, int], ModelSignature]) -> None:
        self.signatures = signatures
        self.reads = 0

    def get_version(self, name: str, version: int) -> Any:
        self.reads += 1
        if (name, version) not in self.signatures:
            raise NotFound(f"model '{name}' has no version {version}")
        return type("Version", (), {"signature": self.signatures[(name, version)]})()


class Clock:
    def __init__(self) -> None:
        self.now = NOW_S

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def log(aws: None) -> PredictionLog:
    return PredictionLog(MetadataTable(PREDICTIONS_TABLE, what="prediction log"))


@pytest.fixture
def versions() -> Versions:
    return Versions({("clf", 1): CLASSIFIER, ("named", 2): NAMED_CLASSES, ("reg", 3): REGRESSOR})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(log: PredictionLog, versions: Versions, clock: Clock) -> FeedbackService:
    return FeedbackService(log, versions, capture_delay_seconds=300, clock_skew_seconds=10, clock=clock)  # type: ignore[arg-type]


def captured(log: PredictionLog, model: str = "clf", version: int = 1, prediction: Any = 1) -> str:
    """A prediction made a minute ago, in the log; returns its id."""
    at_ms = NOW_MS - 60_000
    (prediction_id,) = prediction_ids(1, now_ms=at_ms)
    row = CapturedPrediction(
        prediction_id=prediction_id,
        model_name=model,
        model_version=version,
        alias="production",
        at_ms=at_ms,
        features=["x"],
        inputs=[0.5],
        prediction=prediction,
        probabilities=None,
    )
    log.record([row])
    return prediction_id


def feedback_items() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb", region_name=REGION).scan(TableName=PREDICTIONS_TABLE)["Items"]
    return [item for item in items if item["sk"]["S"] == "FEEDBACK"]


def test_a_reward_is_recorded_with_what_served_the_prediction(
    service: FeedbackService, log: PredictionLog
) -> None:
    prediction_id = captured(log)

    outcome = service.record(FeedbackEntry(prediction_id=prediction_id, reward=1))

    assert not outcome.duplicate and outcome.matches_original
    record = outcome.record
    assert (record.model_name, record.model_version, record.prediction) == ("clf", 1, 1)
    assert (record.reward, record.label, record.at_ms) == (1.0, None, NOW_MS)
    assert record.prediction_at_ms == NOW_MS - 60_000
    (item,) = feedback_items()
    logged = log.get_with_feedback(prediction_id)
    assert logged.feedback == record
    assert int(item["expires_at"]["N"]) == logged.expires_at  # it goes when the prediction goes


def test_a_retry_is_answered_with_the_original_and_changes_nothing(
    service: FeedbackService, log: PredictionLog, clock: Clock
) -> None:
    prediction_id = captured(log)
    first = service.record(FeedbackEntry(prediction_id=prediction_id, reward=1))
    stored = feedback_items()
    clock.now += 30

    again = service.record(FeedbackEntry(prediction_id=prediction_id, reward=1))
    other = service.record(FeedbackEntry(prediction_id=prediction_id, reward=0))
    relabelled = service.record(FeedbackEntry(prediction_id=prediction_id, label=0))

    assert again.duplicate and again.matches_original and again.record == first.record
    assert other.duplicate and not other.matches_original and other.record.reward == 1.0
    assert relabelled.duplicate and not relabelled.matches_original
    assert feedback_items() == stored


def test_a_label_earns_a_reward_when_the_model_predicted_it(
    service: FeedbackService, log: PredictionLog
) -> None:
    right = service.record(FeedbackEntry(prediction_id=captured(log, prediction=1), label=1))
    wrong = service.record(FeedbackEntry(prediction_id=captured(log, prediction=1), label=0))

    assert (right.record.label, right.record.reward) == (1, 1.0)
    assert (wrong.record.label, wrong.record.reward) == (0, 0.0)


@pytest.mark.parametrize("label", [True, 1, 1.0])
def test_a_boolean_or_integral_label_names_an_integer_class(
    service: FeedbackService, log: PredictionLog, label: Any
) -> None:
    outcome = service.record(FeedbackEntry(prediction_id=captured(log, prediction=1), label=label))

    assert outcome.record.label == 1 and type(outcome.record.label) is int
    assert outcome.record.reward == 1.0


@pytest.mark.parametrize("label", ["1", 2, 0.5, "yes"])
def test_a_label_outside_the_classes_is_refused_at_its_location(
    service: FeedbackService, log: PredictionLog, label: Any
) -> None:
    prediction_id = captured(log)

    with pytest.raises(Invalid) as refused:
        service.record(FeedbackEntry(prediction_id=prediction_id, label=label))

    assert refused.value.details[0]["loc"] == ["body", "label"]
    assert refused.value.details[0]["type"] == "unknown_class"
    assert "0, 1" in refused.value.details[0]["msg"]
    assert feedback_items() == []


def test_string_classes_match_strings_only(service: FeedbackService, log: PredictionLog) -> None:
    outcome = service.record(FeedbackEntry(prediction_id=captured(log, "named", 2, "yes"), label="yes"))
    assert (outcome.record.label, outcome.record.reward) == ("yes", 1.0)

    with pytest.raises(Invalid):
        service.record(FeedbackEntry(prediction_id=captured(log, "named", 2, "yes"), label=1))


def test_a_regression_label_is_recorded_without_a_reward(
    service: FeedbackService, log: PredictionLog
) -> None:
    labelled = service.record(FeedbackEntry(prediction_id=captured(log, "reg", 3, 2.75), label=3.5))
    rewarded = service.record(FeedbackEntry(prediction_id=captured(log, "reg", 3, 2.75), reward=0))

    assert (labelled.record.label, labelled.record.reward) == (3.5, None)
    assert (rewarded.record.label, rewarded.record.reward) == (None, 0.0)
    for label in ("3.5", True):
        with pytest.raises(Invalid) as refused:
            service.record(FeedbackEntry(prediction_id=captured(log, "reg", 3, 2.75), label=label))
        assert refused.value.details[0]["loc"] == ["body", "label"]


def test_a_recent_id_of_ours_not_in_the_log_is_not_captured_yet(service: FeedbackService) -> None:
    for age_ms in (0, 10_000, 299_000, -9_000):  # -9 s: the issuing host's clock runs a little ahead
        (recent,) = prediction_ids(1, now_ms=NOW_MS - age_ms)
        with pytest.raises(NotCapturedYet) as waiting:
            service.record(FeedbackEntry(prediction_id=recent, reward=1))
        assert waiting.value.retry_after_seconds == NOT_CAPTURED_RETRY_AFTER_SECONDS


def _issued_at(ms: int) -> str:
    """A UUIDv7-shaped id issued at ``ms`` (fixed random bits: test ids must not vary between runs)."""
    text = f"{ms:012x}7000800000000000abcd"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@pytest.mark.parametrize(
    "prediction_id",
    [
        _issued_at(NOW_MS - 301_000),  # past the capture delay
        _issued_at(NOW_MS + 11_000),  # from the future, beyond the clock skew
        "6f1c2a4e-9b3d-4c8e-a1f2-3b4c5d6e7f80",  # a UUIDv4: not one of ours
        "not-a-uuid",
    ],
    ids=["old", "future", "uuid4", "not-a-uuid"],
)
def test_an_old_foreign_or_future_id_is_unknown(service: FeedbackService, prediction_id: str) -> None:
    with pytest.raises(NotFound, match="unknown or expired prediction"):
        service.record(FeedbackEntry(prediction_id=prediction_id, reward=1))


def test_an_expired_prediction_is_unknown_although_dynamodb_has_not_deleted_it(
    service: FeedbackService, log: PredictionLog, clock: Clock
) -> None:
    prediction_id = captured(log)
    expires_at = log.get_with_feedback(prediction_id).expires_at
    assert expires_at is not None
    clock.now = expires_at

    with pytest.raises(NotFound):
        service.record(FeedbackEntry(prediction_id=prediction_id, reward=1))


def test_a_batch_answers_each_item_on_its_own(service: FeedbackService, log: PredictionLog) -> None:
    first, second = captured(log), captured(log)
    entries = [
        FeedbackEntry(prediction_id=first, reward=1),
        FeedbackEntry(prediction_id="6f1c2a4e-9b3d-4c8e-a1f2-3b4c5d6e7f80", reward=1),
        FeedbackEntry(prediction_id=second, label=7),
        FeedbackEntry(prediction_id=first, reward=0),
    ]

    results = service.record_each(entries)

    assert [type(r).__name__ for r in results] == [
        "FeedbackOutcome",
        "NotFound",
        "Invalid",
        "FeedbackOutcome",
    ]
    assert results[2].details[0]["loc"] == ["body", "feedback", 2, "label"]  # type: ignore[union-attr]
    assert results[3].duplicate and not results[3].matches_original  # type: ignore[union-attr]
    assert len(feedback_items()) == 1  # the bad label wrote nothing; the second was recorded


def test_a_models_signature_is_read_once(
    service: FeedbackService, log: PredictionLog, versions: Versions
) -> None:
    for _ in range(3):
        service.record(FeedbackEntry(prediction_id=captured(log), label=0))
    assert versions.reads == 1


def test_a_version_the_registry_lost_is_named(service: FeedbackService, log: PredictionLog) -> None:
    with pytest.raises(NotFound, match="served by clf v9"):
        service.record(FeedbackEntry(prediction_id=captured(log, "clf", 9), label=1))


class StaleLog(PredictionLog):
    """Reads as an eventually consistent read may, right after another request wrote the feedback."""

    def get_with_feedback(self, prediction_id: str) -> Any:
        logged = super().get_with_feedback(prediction_id)
        return type(logged)(**{**logged.__dict__, "feedback": None, "feedback_expires_at": None})


def test_losing_the_conditional_write_answers_the_winners_feedback(
    service: FeedbackService, log: PredictionLog, versions: Versions, clock: Clock
) -> None:
    prediction_id = captured(log)
    winner = service.record(FeedbackEntry(prediction_id=prediction_id, label=True))
    stale = FeedbackService(StaleLog(log.table), versions, clock=clock)  # type: ignore[arg-type]
    clock.now += 1

    loser = stale.record(FeedbackEntry(prediction_id=prediction_id, label=1))

    assert loser.duplicate and loser.matches_original
    assert loser.record == winner.record
