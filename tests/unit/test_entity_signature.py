"""A signature's feature_views (inference by entity id) and the CLI's option parsers."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from infra.cli.entity import EntityUsageError, entity_rows, parse_defaults, signature_with_view
from mlops_core.registry.signature import ModelSignature

BASE: dict[str, Any] = {
    "features": [{"name": "a"}, {"name": "b"}, {"name": "with space"}],
    "classes": [0, 1],
}


def test_signatures_without_feature_views_validate_as_before() -> None:
    signature = ModelSignature.model_validate(BASE)
    assert signature.feature_views == [] and signature.view_inputs == set()


def test_a_view_feeds_inputs_by_name_or_under_another_name() -> None:
    signature = ModelSignature.model_validate(
        BASE
        | {"feature_views": [{"view": "v", "features": ["a", {"name": "spaced", "input": "with space"}]}]}
    )
    (view,) = signature.feature_views
    assert view.inputs == ["a", "with space"] and signature.view_inputs == {"a", "with space"}
    assert ModelSignature.model_validate_json(signature.model_dump_json()) == signature


@pytest.mark.parametrize(
    ("views", "message"),
    [
        ([{"view": "v", "features": ["nope"]}], "not a signature feature"),
        ([{"view": "v", "features": ["a"]}, {"view": "w", "features": ["a"]}], "fed twice"),
        ([{"view": "v", "features": ["a"]}, {"view": "v", "features": ["b"]}], "named once"),
        ([{"view": "Bad View", "features": ["a"]}], "pattern"),
        ([{"view": "v", "features": []}], "at least 1"),
    ],
)
def test_inconsistent_feature_views_are_refused(views: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ModelSignature.model_validate(BASE | {"feature_views": views})


def test_entity_options_become_rows() -> None:
    assert entity_rows(["tumour_measurements=1", "patient_id=007,other=x"]) == [
        {"tumour_measurements": 1},
        {"patient_id": 7, "other": "x"},
    ]
    for bad in ("patient_id", "=1", "patient_id="):
        with pytest.raises(EntityUsageError):
            entity_rows([bad])


def test_defaults_are_numbers_or_booleans() -> None:
    assert parse_defaults(["a=1.5", "b=2", "c=true"]) == {"a": 1.5, "b": 2, "c": True}
    for bad in ("a", "a=x", 'a="1"', "=1"):
        with pytest.raises(EntityUsageError):
            parse_defaults([bad])


def test_a_view_feeds_the_signature_inputs_it_has() -> None:
    view = {"name": "v", "features": [{"name": "a"}, {"name": "z"}]}
    signature, fed = signature_with_view(dict(BASE), view)
    assert fed == ["a"] and signature["feature_views"] == [{"view": "v", "features": ["a"]}]
    ModelSignature.model_validate(signature)
    with pytest.raises(EntityUsageError, match="none of the signature's features"):
        signature_with_view(dict(BASE), {"name": "w", "features": [{"name": "q"}]})
