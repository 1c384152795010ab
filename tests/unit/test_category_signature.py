"""Category features and text classes in a signature and a schema: what is refused, and how
names map to the codes the graph takes and gives."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from mlops_core.data.schema import ColumnSchema, DatasetSchema, parse_cell
from mlops_core.errors import Invalid
from mlops_core.registry.signature import FeatureSpec, ModelSignature
from mlops_core.serving.instances import instances_to_matrix

SIGNATURE = ModelSignature(
    features=[
        FeatureSpec(name="island", type="category", categories=["Biscoe", "Dream", "Torgersen"]),
        FeatureSpec(name="bill", type="double"),
        FeatureSpec(name="sex", type="category", categories=["female", "male"], nullable=True),
    ],
    classes=[0, 1, 2],
    class_names=["Adelie", "Chinstrap", "Gentoo"],
)


def test_names_become_their_positions_in_the_matrix_and_null_is_nan_where_nullable() -> None:
    matrix = instances_to_matrix(
        [["Torgersen", 40.5, "male"], {"island": "Biscoe", "bill": 38, "sex": None}],
        SIGNATURE,
        max_batch_size=10,
    )
    assert matrix.dtype == np.float32
    assert matrix[0].tolist() == [2.0, 40.5, 1.0]
    assert matrix[1, :2].tolist() == [0.0, 38.0] and math.isnan(matrix[1, 2])
    assert SIGNATURE.shown_classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert SIGNATURE.shown_label(2) == "Gentoo"


def test_a_name_is_matched_exactly_not_by_case_or_blanks() -> None:
    with pytest.raises(Invalid) as refused:
        instances_to_matrix([["biscoe", 40.0, " male"]], SIGNATURE, max_batch_size=10)
    assert [d["loc"][-1] for d in refused.value.details] == ["island", "sex"]
    assert all(d["type"] == "category" for d in refused.value.details)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"name": "x", "type": "category"}, "categories are given for a category feature, and only then"),
        ({"name": "x", "type": "double", "categories": ["a"]}, "and only then"),
        ({"name": "x", "type": "category", "categories": []}, "lists its categories"),
        ({"name": "x", "type": "category", "categories": ["a", "a"]}, "listed twice"),
        (
            {"name": "x", "type": "category", "categories": [" a"]},
            "cannot be told from a missing or padded cell",
        ),
        ({"name": "x", "type": "category", "categories": ["NA"]}, "cannot be told from a missing"),
    ],
)
def test_a_category_feature_lists_distinct_readable_categories(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        FeatureSpec.model_validate(spec)
    with pytest.raises(ValidationError, match=message.replace("feature", "column")):
        ColumnSchema.model_validate(spec)


def test_class_names_name_each_class_once() -> None:
    base = SIGNATURE.model_dump()
    for names, message in ((["a", "b"], "name each class once"), (["a", "a", "b"], "unique")):
        with pytest.raises(ValidationError, match=message):
            ModelSignature.model_validate(base | {"class_names": names})


def test_a_category_column_reads_its_codes_and_refuses_other_text() -> None:
    column = ColumnSchema(name="island", type="category", categories=["Biscoe", "Dream"])
    assert parse_cell(" Dream ", column) == 1.0
    assert math.isnan(parse_cell("NA", column))
    with pytest.raises(ValueError, match="'Mars' is not one of its categories \\(Biscoe, Dream\\)"):
        parse_cell("Mars", column)
    assert column.category_of(1.0) == "Dream"
    with pytest.raises(ValidationError, match="has no min, max or allowed"):
        ColumnSchema(name="i", type="category", categories=["a"], min=0)
    with pytest.raises(ValidationError, match="a regression target is a number"):
        DatasetSchema(name="d", task="regression", target="island", columns=[column, ColumnSchema(name="x")])
