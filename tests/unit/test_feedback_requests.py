"""What a feedback body may say (rewards 0/1, JSON scalar labels, one form or the other) and how a
label is matched with a model's classes."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from mlops_core.feedback.labels import class_of, is_number, same_value
from mlops_core.feedback.requests import MAX_FEEDBACK_PER_CALL, FeedbackRequest

ID = "0193a8f2-51c4-7d3e-8a9b-0c1d2e3f4a5b"


def _problems(text: str) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as refused:
        FeedbackRequest.model_validate(json.loads(text))
    return [(e["loc"], e["type"]) for e in refused.value.errors()]


@pytest.mark.parametrize(
    ("written", "reward"), [("1", 1), ("0", 0), ("true", 1), ("false", 0), ("1.0", 1), ("0.0", 0)]
)
def test_a_reward_is_0_or_1(written: str, reward: int) -> None:
    request = FeedbackRequest.model_validate(json.loads(f'{{"prediction_id": "{ID}", "reward": {written}}}'))
    (entry,) = request.entries()
    assert entry.reward == reward and type(entry.reward) is int


@pytest.mark.parametrize("written", ["0.5", "2", "-1", "NaN", "Infinity", '"1"', "[1]", "{}"])
def test_any_other_reward_is_refused_at_its_field(written: str) -> None:
    assert _problems(f'{{"prediction_id": "{ID}", "reward": {written}}}') == [(("reward",), "reward")]


@pytest.mark.parametrize("written", ["NaN", "-Infinity", "[0]", '{"a": 1}', f'"{"x" * 1001}"'])
def test_a_label_is_a_finite_json_scalar(written: str) -> None:
    assert _problems(f'{{"prediction_id": "{ID}", "label": {written}}}') == [(("label",), "label")]


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({"prediction_id": ID}, [((), "reward_or_label")]),
        ({"prediction_id": ID, "reward": 1, "label": 1}, [((), "reward_or_label")]),
        ({"reward": 1}, [((), "feedback_form")]),
        ({"feedback": [{"prediction_id": ID, "reward": 1}], "reward": 1}, [((), "feedback_form")]),
        ({"feedback": []}, [(("feedback",), "too_short")]),
        (
            {"feedback": [{"prediction_id": ID, "reward": 1}] * (MAX_FEEDBACK_PER_CALL + 1)},
            [(("feedback",), "too_long")],
        ),
        ({"feedback": [{"prediction_id": ID}]}, [(("feedback", 0), "reward_or_label")]),
        ({"prediction_id": ID, "reward": 1, "rewards": 1}, [(("rewards",), "extra_forbidden")]),
        ({"prediction_id": "x" * 65, "reward": 1}, [(("prediction_id",), "string_too_long")]),
    ],
)
def test_a_body_is_one_feedback_or_a_list_of_them(body: dict[str, Any], problems: list[Any]) -> None:
    assert _problems(json.dumps(body)) == problems


def test_the_single_form_and_the_batch_give_the_same_entries() -> None:
    single = FeedbackRequest.model_validate({"prediction_id": ID, "label": "yes"})
    batch = FeedbackRequest.model_validate({"feedback": [{"prediction_id": ID, "label": "yes"}]})
    assert not single.is_batch and batch.is_batch
    assert single.entries() == batch.entries()


@pytest.mark.parametrize(
    ("value", "classes", "named"),
    [
        (1, [0, 1], 1),
        (True, [0, 1], 1),
        (False, [0, 1], 0),
        (1.0, [0, 1], 1),
        (1.5, [0, 1], None),
        ("1", [0, 1], None),
        ("yes", ["no", "yes"], "yes"),
        (1, ["0", "1"], None),
        ("Yes", ["no", "yes"], None),
        (10**400, [0, 1], None),
        (None, [0, 1], None),
    ],
)
def test_a_label_names_a_class_as_the_signature_spells_it(value: Any, classes: list[Any], named: Any) -> None:
    found = class_of(value, classes)
    assert found == named and type(found) is type(named)


@given(st.lists(st.one_of(st.integers(), st.text(max_size=5)), min_size=1, max_size=8, unique=True))
def test_every_class_names_itself(classes: list[int | str]) -> None:
    for cls in classes:
        assert class_of(cls, classes) == cls
        assert same_value(cls, cls)


def test_recorded_labels_compare_by_value_for_numbers_and_exactly_for_strings() -> None:
    assert same_value(3, 3.0) and same_value(True, 1) and same_value(2**70, 2**70)
    assert (
        not same_value(2**53 + 1, 2**53)
        and not same_value("3", 3)
        and not same_value(float("nan"), float("nan"))
    )
    assert is_number(2.5) and is_number(7) and not is_number(True) and not is_number(float("inf"))
