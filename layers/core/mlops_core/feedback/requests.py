"""What a caller sends to ``POST /feedback``: one feedback, or a batch of up to 100.

One feedback is ``{"prediction_id": ..., "reward": 0 | 1}`` or ``{"prediction_id": ...,
"label": ...}`` (exactly one of the two); a batch is ``{"feedback": [<feedback>, ...]}``.
A body that is neither (a reward of 0.5, 2, NaN or "1", both or neither of reward and
label, an unknown field, more than 100 items) is refused whole with 422 and the location
of each problem: nothing of it is recorded. Whether a label is one of the model's classes
is known only from the prediction it is about, so that is decided per item
(``mlops_core.feedback.service``).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

#: Feedback items one call may carry.
MAX_FEEDBACK_PER_CALL = 100
#: Prediction ids are UUIDs (36 characters); anything much longer is not one.
MAX_PREDICTION_ID_LENGTH = 64
MAX_LABEL_LENGTH = 1000


def _reward(value: Any) -> Any:
    """0 or 1: the integers, the same numbers written as 0.0 / 1.0, or false / true."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    raise PydanticCustomError("reward", "a reward is 0 or 1 (or false / true)")


def _label(value: Any) -> Any:
    """A JSON scalar as it was sent (its type matters: ``"1"`` is not ``1``, see ``labels``)."""
    if isinstance(value, str):
        if len(value) > MAX_LABEL_LENGTH:
            raise PydanticCustomError("label", f"a label has at most {MAX_LABEL_LENGTH} characters")
        return value
    if isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise PydanticCustomError("label", "a label is a string, a finite number or a boolean")


Reward = Annotated[Literal[0, 1], BeforeValidator(_reward)]
#: A class label or a regression target: a JSON scalar (never NaN or infinity).
Label = Annotated[
    str | int | float | bool,
    PlainValidator(_label),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "maxLength": MAX_LABEL_LENGTH},
                {"type": "number"},
                {"type": "boolean"},
            ]
        }
    ),
]
PredictionId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PREDICTION_ID_LENGTH)]

_PREDICTION_ID = "A prediction id from the predict response's prediction_ids"
_REWARD = "The outcome as a reward: 1 (success) or 0; true/false are taken as 1/0"
_LABEL = (
    "The true outcome: one of the model's classes (the reward is 1 if the model predicted it, "
    "else 0), or a regression model's true value (recorded with no reward)"
)


def _exactly_one(reward: Any, label: Any) -> None:
    if (reward is None) == (label is None):
        raise PydanticCustomError("reward_or_label", "give exactly one of reward or label")


class FeedbackEntry(BaseModel):
    """Feedback on one prediction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prediction_id: PredictionId = Field(description=_PREDICTION_ID)
    reward: Reward | None = Field(default=None, description=_REWARD)
    label: Label | None = Field(default=None, description=_LABEL)

    @model_validator(mode="after")
    def _one_outcome(self) -> FeedbackEntry:
        _exactly_one(self.reward, self.label)
        return self


class FeedbackRequest(BaseModel):
    """One feedback (``prediction_id`` with ``reward`` or ``label``), or ``feedback``: a list
    of them. The answer to one is its outcome; to a list, 200 with one outcome per item."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"prediction_id": "0193a8f2-51c4-7d3e-8a9b-0c1d2e3f4a5b", "reward": 1},
                {"prediction_id": "0193a8f2-51c4-7d3e-8a9b-0c1d2e3f4a5b", "label": 0},
                {
                    "feedback": [
                        {"prediction_id": "0193a8f2-51c4-7d3e-8a9b-0c1d2e3f4a5b", "reward": 1},
                        {"prediction_id": "0193a8f2-51c5-7a01-9b2c-3d4e5f6a7b8c", "label": 1},
                    ]
                },
            ]
        },
    )

    prediction_id: PredictionId | None = Field(default=None, description=f"{_PREDICTION_ID} (one feedback)")
    reward: Reward | None = Field(default=None, description=f"{_REWARD} (one feedback)")
    label: Label | None = Field(default=None, description=f"{_LABEL} (one feedback)")
    feedback: list[FeedbackEntry] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FEEDBACK_PER_CALL,
        description=f"A batch: 1 to {MAX_FEEDBACK_PER_CALL} feedback items, each recorded on its own "
        "(and then no other field)",
    )

    @model_validator(mode="after")
    def _one_form(self) -> FeedbackRequest:
        if self.feedback is not None:
            if (self.prediction_id, self.reward, self.label) != (None, None, None):
                raise PydanticCustomError(
                    "feedback_form", "send one feedback, or a 'feedback' list with nothing beside it"
                )
            return self
        if self.prediction_id is None:
            raise PydanticCustomError(
                "feedback_form", "prediction_id is required (or send a 'feedback' list)"
            )
        _exactly_one(self.reward, self.label)
        return self

    @property
    def is_batch(self) -> bool:
        return self.feedback is not None

    def entries(self) -> list[FeedbackEntry]:
        if self.feedback is not None:
            return list(self.feedback)
        single = {"prediction_id": self.prediction_id, "reward": self.reward, "label": self.label}
        return [FeedbackEntry.model_validate(single)]  # valid: _one_form checked the same rules
