"""Recording feedback on predictions, once each (``POST /feedback``).

For each feedback ``{prediction_id, reward | label}``:

1. The prediction and any feedback on it are read together (``PredictionLog.get_with_feedback``).
   Feedback recorded already: the answer is that original outcome (``duplicate``), whatever
   this request carries, and nothing is written.
2. No prediction under that id (or one past its ``expires_at``, which DynamoDB deletes
   lazily): if the id is one of ours issued within the capture delay (and not in the
   future beyond the clock skew), the prediction is on its way to the log: ``NotCapturedYet``
   (409, retry after a few seconds). Otherwise ``NotFound``: unknown or expired.
3. A reward is recorded as given. A label is checked against the model version that served
   the prediction (its signature, from the registry): a classifier's label must be one of
   its classes (``Invalid`` otherwise, at the label's location), and the reward is 1 if
   the model predicted that class, else 0; a regressor's label must be a number, and is
   recorded with no reward (a regression bandit needs explicit 0/1 rewards: which error is
   a success is the caller's rule, not the model's).
4. The ``FEEDBACK`` item is written on condition that none exists. Losing that race to a
   concurrent request is a duplicate like (1): the winner's item is read back (consistently)
   and answered.

Every item of a batch goes through the same steps on its own: one item's failure writes
nothing of its own and leaves the others as they are, and a retried batch changes nothing
that was recorded. The rewards updater counts recorded feedback from the table's stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_core.errors import Conflict, Invalid, MlopsError, NotFound, Unavailable, detail
from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.feedback.labels import class_of, is_number, same_value
from mlops_core.feedback.prediction_log import PredictionLog
from mlops_core.feedback.requests import FeedbackEntry
from mlops_core.registry.lookup import RegistryLookup
from mlops_core.registry.signature import ModelSignature
from mlops_core.serving.capture import CapturedPrediction, issued_at_ms

DEFAULT_CAPTURE_DELAY_SECONDS = 300
DEFAULT_CLOCK_SKEW_SECONDS = 10
#: How long a caller is asked to wait for a prediction on its way to the log.
NOT_CAPTURED_RETRY_AFTER_SECONDS = 5
#: Classes shown in a message about a label outside them.
_SHOWN_CLASSES = 20
#: Signatures kept per container (versions are immutable, so they never go stale).
_SIGNATURE_CACHE_SIZE = 256


class NotCapturedYet(Conflict):
    """The prediction id is recent and ours, but its capture has not reached the log yet."""

    def __init__(self, prediction_id: str) -> None:
        super().__init__(
            f"prediction '{prediction_id}' has not been captured yet: retry in a few seconds",
            retry_after_seconds=NOT_CAPTURED_RETRY_AFTER_SECONDS,
        )


@dataclass(frozen=True)
class FeedbackOutcome:
    """The feedback recorded on a prediction: by this request, or by an earlier one."""

    record: FeedbackRecord
    #: True when the feedback had been recorded before: ``record`` is the original.
    duplicate: bool
    #: Whether this request's reward or label is the one recorded (always True when not a duplicate).
    matches_original: bool
    #: A text target's class names by class (code): labels and predictions are recorded as
    #: the classes (codes) and shown to the caller by name.
    class_names: Mapping[Any, str] | None = None

    @property
    def shown_label(self) -> Any:
        return self._shown(self.record.label)

    @property
    def shown_prediction(self) -> Any:
        return self._shown(self.record.prediction)

    def _shown(self, value: Any) -> Any:
        if self.class_names is None or value is None:
            return value
        return next((name for code, name in self.class_names.items() if same_value(value, code)), value)


class FeedbackService:
    def __init__(
        self,
        log: PredictionLog,
        registry: RegistryLookup,
        *,
        capture_delay_seconds: int = DEFAULT_CAPTURE_DELAY_SECONDS,
        clock_skew_seconds: int = DEFAULT_CLOCK_SKEW_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.registry = registry
        self.capture_delay_ms = capture_delay_seconds * 1000
        self.clock_skew_ms = clock_skew_seconds * 1000
        self.clock = clock
        self._signatures: dict[tuple[str, int], ModelSignature] = {}

    def record(self, entry: FeedbackEntry, *, loc: Sequence[str | int] = ("body",)) -> FeedbackOutcome:
        """Record one feedback, or answer the one recorded before. ``loc`` is where the entry
        is in the request (for the location of a problem with its label)."""
        now_ms = int(self.clock() * 1000)
        logged = self.log.get_with_feedback(entry.prediction_id)
        if logged.feedback is not None and not _expired(logged.feedback_expires_at, now_ms):
            return self._duplicate(entry, logged.feedback)
        prediction = None if _expired(logged.expires_at, now_ms) else logged.prediction
        if prediction is None:
            raise self._missing(entry.prediction_id, now_ms)
        served = (
            logged.model_name or prediction.model_name,
            logged.model_version or prediction.model_version,
        )
        record = self._record(entry, prediction, served, now_ms, list(loc))
        # The feedback goes when its prediction goes.
        expires_at = logged.expires_at or prediction.at_ms // 1000 + self.log.ttl_seconds
        try:
            self.log.record_feedback(record, expires_at=expires_at)
        except Conflict:
            original = self.log.feedback(entry.prediction_id, consistent=True)
            if original is None:  # recorded, then gone: only an expiry or a hand-made delete does that
                raise Unavailable("the prediction log changed while recording feedback; retry") from None
            return self._duplicate(entry, original)
        return FeedbackOutcome(
            record=record,
            duplicate=False,
            matches_original=True,
            class_names=self._class_names(record.prediction_id, served) if entry.label is not None else None,
        )

    def _class_names(self, prediction_id: str, served: tuple[str, int]) -> dict[Any, str] | None:
        signature = self._signature(prediction_id, served)
        if signature.class_names is None or signature.classes is None:
            return None
        return dict(zip(signature.classes, signature.class_names, strict=True))

    def _duplicate(self, entry: FeedbackEntry, original: FeedbackRecord) -> FeedbackOutcome:
        """The original outcome; whether this entry says the same (a class name compared as the
        class it names)."""
        names = None
        if original.label is not None:
            try:
                served = (original.model_name, original.model_version)
                names = self._class_names(original.prediction_id, served)
            except NotFound:  # the version is gone: the label is compared as it was recorded
                names = None
        if entry.label is not None:
            label: Any = entry.label
            if names is not None:
                label = next((code for code, name in names.items() if label == name), None)
            matches = original.label is not None and label is not None and same_value(label, original.label)
        else:
            matches = original.label is None and original.reward == entry.reward
        return FeedbackOutcome(record=original, duplicate=True, matches_original=matches, class_names=names)

    def record_each(self, entries: Iterable[FeedbackEntry]) -> list[FeedbackOutcome | MlopsError]:
        """Each entry of a batch on its own, in order: its outcome, or the domain error that
        refused it (``loc`` names the entry's place in a ``feedback`` list)."""
        results: list[FeedbackOutcome | MlopsError] = []
        for index, entry in enumerate(entries):
            try:
                results.append(self.record(entry, loc=("body", "feedback", index)))
            except MlopsError as error:
                results.append(error)
        return results

    def _missing(self, prediction_id: str, now_ms: int) -> MlopsError:
        issued = issued_at_ms(prediction_id)
        if issued is not None and now_ms - self.capture_delay_ms <= issued <= now_ms + self.clock_skew_ms:
            return NotCapturedYet(prediction_id)
        return NotFound(f"unknown or expired prediction '{prediction_id}'")

    def _record(
        self,
        entry: FeedbackEntry,
        prediction: CapturedPrediction,
        served: tuple[str, int],
        now_ms: int,
        loc: list[str | int],
    ) -> FeedbackRecord:
        """The feedback on ``prediction``, credited to the version that ``served`` it."""
        reward: float | None = None if entry.reward is None else float(entry.reward)
        label = entry.label
        if label is not None:
            signature = self._signature(prediction.prediction_id, served)
            if signature.task == "classification":
                label, reward = _classified(label, prediction, signature, loc)
            elif not is_number(label):
                raise Invalid(
                    "a regression model's label is its true value: a number",
                    details=[detail([*loc, "label"], "a finite number (not a string or boolean)", "number")],
                )
        return FeedbackRecord(
            prediction_id=prediction.prediction_id,
            model_name=served[0],
            model_version=served[1],
            reward=reward,
            label=label,
            prediction=prediction.prediction,
            at_ms=now_ms,
            prediction_at_ms=prediction.at_ms,
        )

    def _signature(self, prediction_id: str, key: tuple[str, int]) -> ModelSignature:
        found = self._signatures.get(key)
        if found is None:
            try:
                found = self.registry.get_version(*key).signature
            except NotFound:
                raise NotFound(
                    f"prediction '{prediction_id}' was served by {key[0]} v{key[1]}, "
                    "which the registry no longer has"
                ) from None
            if len(self._signatures) >= _SIGNATURE_CACHE_SIZE:
                self._signatures.clear()
            self._signatures[key] = found
        return found


def _classified(
    label: object, prediction: CapturedPrediction, signature: ModelSignature, loc: list[str | int]
) -> tuple[int | str, float]:
    """The label as the signature spells its class (a class name as the class it names), and
    the reward it earns the prediction."""
    classes = signature.classes or []
    if signature.class_names is not None:
        names = dict(zip(signature.class_names, classes, strict=True))
        named = names.get(label) if isinstance(label, str) else None
        shown_classes: Sequence[int | str] = signature.class_names
    else:
        named, shown_classes = class_of(label, classes), classes
    if named is None:
        shown = ", ".join(repr(c) for c in shown_classes[:_SHOWN_CLASSES])
        more = f" (+{len(classes) - _SHOWN_CLASSES} more)" if len(classes) > _SHOWN_CLASSES else ""
        raise Invalid(
            f"label {label!r:.100} is not one of the model's classes",
            details=[detail([*loc, "label"], f"one of the model's classes: {shown}{more}", "unknown_class")],
        )
    predicted = class_of(prediction.prediction, classes)
    return named, 1.0 if predicted is not None and predicted == named else 0.0


def _expired(expires_at: int | None, now_ms: int) -> bool:
    return expires_at is not None and expires_at * 1000 <= now_ms
