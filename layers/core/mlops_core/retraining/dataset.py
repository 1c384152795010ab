"""A retraining dataset: captured predictions joined by prediction id with their feedback labels,
plus (optionally) the production version's own training data, as the training workflow reads
datasets — ``datasets/{name}/v{N}/data.csv`` with ``schema.json`` beside it.

The columns are the production signature's features, in its order, then the target (each
declared as the production run's schema declares it). A captured row is used when it has a
feedback label; it is left out, and counted by reason, when it has none (``no_label``),
lacks one of the features (``features_mismatch``), carries a label that is not a number
(``label_not_numeric``) or a value the schema refuses (``outside_schema``: a null where none
is allowed, outside min/max, not an allowed category; ValidateData would refuse the whole
dataset for it), or is already in the training data (``in_training_data``: a production
version that was itself retrained has those rows). ``retraining.json`` beside the data
records where the rows came from, prediction ids included, which is how the next
retraining finds rows it already has.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlops_core.data.schema import ColumnSchema, DatasetSchema, Table
from mlops_core.errors import Invalid, NotFound
from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.retraining.entities import DatasetCounts
from mlops_core.serving.capture import CapturedPrediction
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore

DATA_FILE = "data.csv"
SCHEMA_FILE = "schema.json"
#: Where a retraining dataset's rows came from (beside its data.csv).
PROVENANCE_FILE = "retraining.json"
#: Dataset names are at most 128 characters (``DatasetSchema.name``, the CLI's pattern).
_SUFFIX = "-retraining"
_VERSION = re.compile(r"^v([1-9][0-9]{0,8})$")


def dataset_name(model_name: str) -> str:
    """``{model}-retraining``: its own name, so no version a person uploads is ever taken."""
    return f"{model_name[: 128 - len(_SUFFIX)]}{_SUFFIX}"


def next_version_key(store: ArtifactStore, name: str) -> str:
    """``datasets/{name}/v{N}/data.csv`` for the first N above every version there (as
    ``mlops datasets upload`` chooses one)."""
    prefix = f"{keys.DATASETS_PREFIX}{name}/"
    versions = [
        int(match.group(1))
        for key in store.keys(prefix)
        if (match := _VERSION.match(key.removeprefix(prefix).split("/", 1)[0]))
    ]
    return f"{prefix}v{max(versions, default=0) + 1}/{DATA_FILE}"


@dataclass(frozen=True)
class BuiltDataset:
    schema: DatasetSchema
    data: bytes
    counts: DatasetCounts
    prediction_ids: list[str]


def retraining_schema(base: DatasetSchema, features: Sequence[str], name: str) -> DatasetSchema:
    """The production run's schema with the signature's features in order, then the target."""
    declared = {column.name: column for column in base.columns}
    missing = [f for f in features if f not in declared]
    if missing:
        raise Invalid(f"the production signature's features {missing[:5]} are not in its training schema")
    columns = [declared[f] for f in features] + [declared[base.target]]
    return DatasetSchema(name=name, task=base.task, target=base.target, columns=columns)


def build_dataset(
    schema: DatasetSchema,
    captured: Iterable[CapturedPrediction],
    feedback: Iterable[FeedbackRecord],
    *,
    training: Table | None = None,
    known_ids: frozenset[str] = frozenset(),
) -> BuiltDataset:
    """The CSV of ``schema``'s columns: ``training``'s rows (the production version's data),
    then each captured prediction that has a feedback label, in capture order."""
    labels = {f.prediction_id: f for f in feedback if f.label is not None}
    feature_columns = [c for c in schema.columns if c.name != schema.target]
    target = next(c for c in schema.columns if c.name == schema.target)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([c.name for c in schema.columns])
    training_rows = 0
    if training is not None:
        matrix = np.column_stack([training.columns[c.name] for c in schema.columns])
        for row in matrix:
            writer.writerow([_cell(float(v), c) for v, c in zip(row, schema.columns, strict=True)])
        training_rows = training.rows
    skipped: Counter[str] = Counter()
    used: list[str] = []
    captured_rows = 0
    for prediction in captured:
        captured_rows += 1
        found = labels.get(prediction.prediction_id)
        if found is None:
            skipped["no_label"] += 1
            continue
        if prediction.prediction_id in known_ids:
            skipped["in_training_data"] += 1
            continue
        values = dict(zip(prediction.features, prediction.inputs, strict=False))
        if any(c.name not in values for c in feature_columns):
            skipped["features_mismatch"] += 1
            continue
        label = _label_number(found.label)
        if label is None:
            skipped["label_not_numeric"] += 1
            continue
        cells = [_value(values[c.name]) for c in feature_columns] + [label]
        if not all(_allowed(v, c) for v, c in zip(cells, [*feature_columns, target], strict=True)):
            skipped["outside_schema"] += 1
            continue
        writer.writerow([_cell(v, c) for v, c in zip(cells, [*feature_columns, target], strict=True)])
        used.append(prediction.prediction_id)
    counts = DatasetCounts(
        captured=captured_rows,
        feedback=len(labels),
        labelled=len(used),
        skipped=dict(sorted(skipped.items())),
        training_rows=training_rows,
        rows=training_rows + len(used),
    )
    return BuiltDataset(schema=schema, data=out.getvalue().encode(), counts=counts, prediction_ids=used)


def write_dataset(
    store: ArtifactStore, dataset_key: str, built: BuiltDataset, provenance: Mapping[str, Any]
) -> None:
    """data.csv first, then schema.json, then retraining.json: a schema never names missing data."""
    store.put(dataset_key, built.data, content_type="text/csv")
    store.put(
        keys.sibling(dataset_key, SCHEMA_FILE),
        built.schema.model_dump_json(indent=2, exclude_none=True).encode(),
        content_type="application/json",
    )
    document = {**provenance, "counts": built.counts.model_dump(), "prediction_ids": built.prediction_ids}
    store.put(
        keys.sibling(dataset_key, PROVENANCE_FILE),
        json.dumps(document).encode(),
        content_type="application/json",
    )


def known_prediction_ids(store: ArtifactStore, dataset_key: str) -> frozenset[str]:
    """The prediction ids a retraining dataset was made from (none for any other dataset)."""
    try:
        document = json.loads(store.get(keys.sibling(dataset_key, PROVENANCE_FILE)).data)
    except NotFound:
        return frozenset()
    return frozenset(str(i) for i in document.get("prediction_ids") or [])


def _value(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _label_number(label: Any) -> float | None:
    if isinstance(label, bool):
        return float(label)
    if isinstance(label, int | float) and math.isfinite(label):
        return float(label)
    return None


def _allowed(value: float, column: ColumnSchema) -> bool:
    """What ValidateData checks of one cell (``schema.parse_cell`` and ``schema_violations``)."""
    if math.isnan(value):
        return column.nullable
    refused = (
        not math.isfinite(value)
        or (column.type == "integer" and not value.is_integer())
        or (column.type == "boolean" and value not in (0.0, 1.0))
        or (column.min is not None and value < column.min)
        or (column.max is not None and value > column.max)
        or (column.categories is not None and not _is_code(value, column.categories))
    )
    return not refused and (column.allowed is None or value in column.allowed)


def _is_code(value: float, categories: list[str]) -> bool:
    return value.is_integer() and 0 <= value < len(categories)


def _cell(value: float, column: ColumnSchema) -> str:
    """A value as the loader reads it back exactly (``schema.parse_cell``)."""
    if math.isnan(value):
        return ""
    if column.type == "category":  # a code, as loading and the signature number the categories
        return column.category_of(value)
    if column.type == "boolean":
        return "true" if value else "false"
    if column.type == "integer" or (column.allowed is not None and value.is_integer()):
        return str(int(value))
    return repr(value)
