"""`mlops datasets`: upload a CSV with the schema inferred from it, as the training workflow reads it.

The workflow takes ``dataset_key`` = ``datasets/{name}/{version}/data.csv`` and reads
``schema.json`` beside it (``mlops_core.data.schema.DatasetSchema``). The schema is inferred
from the file (column types — numbers, booleans, text categories —, nullability, the
target's classes) and then checked the way
ValidateData will check it, with ``mlops_core.data.schema`` itself: a file the workflow
would refuse is refused here, before anything is written.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from botocore.exceptions import ClientError
from pydantic import ValidationError

from mlops_core.data.schema import (
    ColumnSchema,
    DatasetSchema,
    DataValidationError,
    load_csv,
    parse_cell,  # the loader's own cell parser: inferred types are what ValidateData will accept
    schema_violations,
)
from mlops_core.data.types import MAX_CATEGORIES, MISSING_CELLS, FeatureType, shown_categories

PREFIX = "datasets"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
VERSION_PATTERN = re.compile(r"^v?([1-9][0-9]{0,8})$")
# An integer (or boolean) target with at most this many distinct values is taken as class
# labels; anything else is a regression target. `--task` overrides.
MAX_INFERRED_CLASSES = 20
SHOWN_EXAMPLES = 3
# A text column with more distinct values than this, and more than this share of its rows,
# is an identifier or free text (names, ticket numbers), not a category.
MIN_CATEGORIES_FOR_IDENTIFIER = 50
IDENTIFIER_SHARE = 0.5
Task = Literal["classification", "regression"]


class BadDataset(ValueError):
    """The file cannot be a training dataset as it is; the message says why."""


@dataclass(frozen=True)
class PreparedDataset:
    """A CSV and its inferred schema, ready to be written under ``datasets/{name}/{version}/``."""

    name: str
    version: str
    data: bytes
    schema: DatasetSchema
    rows: int

    @property
    def prefix(self) -> str:
        return f"{PREFIX}/{self.name}/{self.version}"

    @property
    def dataset_key(self) -> str:
        return f"{self.prefix}/data.csv"

    @property
    def schema_key(self) -> str:
        return f"{self.prefix}/schema.json"

    @property
    def files(self) -> dict[str, bytes]:
        """S3 key -> bytes; the data first, so that a schema never names missing data."""
        schema = self.schema.model_dump_json(indent=2, exclude_none=True)
        return {self.dataset_key: self.data, self.schema_key: schema.encode()}


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise BadDataset(
            f"dataset name {name!r} must be 1-128 letters, digits, '.', '_' or '-' "
            "(starting with a letter or digit)"
        )
    return name


def check_version(version: str) -> str:
    """``v3`` or ``3`` as ``v3``."""
    match = VERSION_PATTERN.match(version)
    if not match:
        raise BadDataset(f"version {version!r} must look like v1, v2, ...")
    return f"v{match.group(1)}"


def _examples(values: list[str]) -> str:
    unique = list(dict.fromkeys(values))
    return ", ".join(repr(v) for v in unique[:SHOWN_EXAMPLES]) + (
        ", ..." if len(unique) > SHOWN_EXAMPLES else ""
    )


def _read_rows(data: bytes) -> tuple[list[str], list[list[str]]]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadDataset("not a CSV file: it is not UTF-8 text") from None
    try:
        rows = [row for row in csv.reader(io.StringIO(text)) if row]
    except csv.Error as error:
        raise BadDataset(f"not a CSV file: {error}") from None
    if not rows:
        raise BadDataset("the file is empty: a CSV with a header row is needed")
    header = [name.strip() for name in rows[0]]
    if len(header) < 2:
        raise BadDataset(
            f"the header has one column only ({rows[0][0][:60]!r}): the file must be separated by commas "
            "(or semicolons, tabs, '|'), with a header row naming a target and at least one feature"
        )
    if all(_is_number(name) for name in header):
        shown = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
        raise BadDataset(f"no header row: the first row is data ({shown})")
    if unnamed := [str(i + 1) for i, name in enumerate(header) if not name]:
        raise BadDataset(f"the header row leaves column(s) {', '.join(unnamed)} unnamed")
    if duplicates := sorted({n for n in header if header.count(n) > 1}):
        raise BadDataset(f"the header row names {', '.join(map(repr, duplicates))} more than once")
    if len(rows) < 2:
        raise BadDataset("the file has a header row and no data")
    return header, rows[1:]


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _column(name: str, raw: list[str]) -> tuple[ColumnSchema, list[float]]:
    """The column's type and nullability, from every cell, and its values (NaN for nulls).

    Numbers are ``integer`` or ``double``; true/false (with 0/1) is ``boolean``; any other text
    is a ``category`` whose categories are its distinct cells, sorted (codes in that order),
    unless it has too many distinct values to be one (``_identifier_like``)."""
    values: list[float] = []
    not_numbers: list[str] = []
    as_double = ColumnSchema(name=name, type="double")
    for cell in raw:
        try:
            values.append(parse_cell(cell, as_double))
        except ValueError:
            not_numbers.append(cell)
            values.append(math.nan)
    kind: FeatureType
    if not_numbers:
        try:
            values = [parse_cell(cell, ColumnSchema(name=name, type="boolean")) for cell in raw]
            kind = "boolean"
        except ValueError:
            if any(not math.isnan(v) for v in values):
                raise BadDataset(
                    f"column {name!r} mixes numbers and text ({_examples(not_numbers)}): a column is "
                    "numbers, booleans (true/false) or text categories; fix those cells or leave the "
                    "column out with --drop"
                ) from None
            return _category_column(name, raw)
    present = [v for v in values if not math.isnan(v)]
    if not present:
        raise BadDataset(f"column {name!r} has no values")
    if not not_numbers:
        kind = "integer" if all(v.is_integer() for v in present) else "double"
    return ColumnSchema(name=name, type=kind, nullable=len(present) < len(values)), values


class _TooManyCategories(BadDataset):
    """A text column with too many distinct values to be a category."""


def _category_column(name: str, raw: list[str]) -> tuple[ColumnSchema, list[float]]:
    cells = [cell.strip() for cell in raw]
    present = [cell for cell in cells if cell.lower() not in MISSING_CELLS]
    categories = sorted(set(present))
    if len(categories) > MAX_CATEGORIES or (
        len(categories) > MIN_CATEGORIES_FOR_IDENTIFIER and len(categories) > len(present) * IDENTIFIER_SHARE
    ):
        raise _TooManyCategories(f"{name!r} ({len(categories)} distinct texts in {len(present)} rows)")
    try:
        column = ColumnSchema(
            name=name, type="category", categories=categories, nullable=len(present) < len(cells)
        )
    except ValidationError as error:
        raise BadDataset(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
    return column, [parse_cell(cell, column) for cell in raw]


def _target(column: ColumnSchema, values: list[float], task: str | None) -> tuple[str, ColumnSchema]:
    """The task (inferred unless given) and the target column (its classes allowed, for classification)."""
    if column.nullable:
        missing = sum(math.isnan(v) for v in values)
        raise BadDataset(f"the target {column.name!r} is empty in {missing} row(s): every row needs a label")
    if column.type == "category":
        if task == "regression":
            raise BadDataset(
                f"the target {column.name!r} holds text ({shown_categories(column.categories, 3)}): "
                "a regression target is a number"
            )
        if len(column.categories or []) < 2:
            raise BadDataset(f"the target {column.name!r} has one class only: nothing to learn")
        return "classification", column
    classes = sorted(set(values))
    integral = column.type != "double"
    if task is None:
        task = "classification" if integral and len(classes) <= MAX_INFERRED_CLASSES else "regression"
    if task == "regression":
        return task, column
    if not integral:
        raise BadDataset(
            f"the target {column.name!r} has non-integer values: classification needs class codes "
            "(use --task regression for a numeric target)"
        )
    if len(classes) < 2:
        raise BadDataset(f"the target {column.name!r} has one class only ({classes[0]:g}): nothing to learn")
    return task, column.model_copy(update={"allowed": classes})


#: Separators other than the comma that a header line may use (European spreadsheets write
#: ';', exports write tabs); such a file is stored comma-separated, as training reads it.
OTHER_DELIMITERS = (";", "\t", "|")


def with_commas(data: bytes) -> bytes:
    """The CSV comma-separated: a file whose header has no comma but one of
    ``OTHER_DELIMITERS`` is read with it and written again with commas (cells as they are)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data  # refused with its reason by _read_rows
    header = text.split("\n", 1)[0]
    if "," in header:
        return data
    delimiter = next((d for d in OTHER_DELIMITERS if d in header), None)
    if delimiter is None:
        return data
    try:
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
    except csv.Error as error:
        raise BadDataset(f"not a CSV file: {error}") from None
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def drop_columns(data: bytes, drop: list[str]) -> bytes:
    """The CSV without the ``drop`` columns (each must be in its header); cells kept as they are."""
    if not drop:
        return data
    header, rows = _read_rows(data)
    if unknown := [name for name in drop if name not in header]:
        raise BadDataset(f"no column {unknown[0]!r} to drop; the columns are: {', '.join(header)}")
    keep = [i for i, name in enumerate(header) if name not in drop]
    if len(keep) < 2:
        raise BadDataset("dropping those columns leaves fewer than 2: a target and a feature are needed")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([header[i] for i in keep])
    writer.writerows([row[i] for i in keep] if len(row) == len(header) else row for row in rows)
    return out.getvalue().encode()


def infer_schema(
    data: bytes, *, name: str, target: str, task: str | None = None
) -> tuple[DatasetSchema, int]:
    """The schema of a CSV (and its row count), or ``BadDataset`` saying what is wrong."""
    if task not in (None, *get_args(Task)):
        raise BadDataset(f"task {task!r} is neither classification nor regression")
    header, rows = _read_rows(data)
    if target not in header:
        raise BadDataset(f"no column {target!r} to use as the target; the columns are: {', '.join(header)}")
    if ragged := [i for i, row in enumerate(rows, start=2) if len(row) != len(header)]:
        raise BadDataset(
            f"{len(ragged)} row(s) do not have the header's {len(header)} fields "
            f"(line {ragged[0]}: {len(rows[ragged[0] - 2])} fields)"
        )
    columns = {}
    target_values: list[float] = []
    identifiers: list[str] = []
    for position, column_name in enumerate(header):
        try:
            column, values = _column(column_name, [row[position] for row in rows])
        except _TooManyCategories as error:
            identifiers.append(str(error))
            continue
        columns[column_name] = column
        if column_name == target:
            target_values = values
    if identifiers:
        raise BadDataset(
            f"column(s) {', '.join(identifiers)} have too many distinct values to be categories "
            f"(at most {MAX_CATEGORIES}, and fewer than {IDENTIFIER_SHARE:.0%} of the rows): identifiers "
            "or free text are not features; leave them out with --drop COLUMN"
        )
    task, columns[target] = _target(columns[target], target_values, task)
    try:
        schema = DatasetSchema(name=name, task=task, target=target, columns=list(columns.values()))
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise BadDataset(f"the inferred schema is not valid: {problems}") from None
    # What ValidateData will do with the same bytes: nothing may fail there that passed here.
    try:
        table = load_csv(data, schema)
    except DataValidationError as error:
        raise BadDataset(str(error)) from None
    if violations := schema_violations(table, schema):
        raise BadDataset("; ".join(violations))
    return schema, table.rows


def prepare(
    data: bytes,
    *,
    name: str,
    version: str,
    target: str,
    task: str | None = None,
    drop: list[str] | None = None,
) -> PreparedDataset:
    """The dataset to upload: the CSV without the ``drop`` columns, and the schema inferred from it."""
    if target in (drop or []):
        raise BadDataset(f"the target {target!r} cannot be dropped")
    data = drop_columns(with_commas(data), drop or [])
    schema, rows = infer_schema(data, name=check_name(name), target=target, task=task)
    return PreparedDataset(name=name, version=check_version(version), data=data, schema=schema, rows=rows)


# ---- the bucket ------------------------------------------------------------------------------
def versions(s3: Any, bucket: str, name: str) -> list[int]:
    """The versions already uploaded under ``datasets/{name}/``."""
    found = []
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{PREFIX}/{name}/", Delimiter="/"
    )
    for page in pages:
        for prefix in page.get("CommonPrefixes", []):
            match = VERSION_PATTERN.match(prefix["Prefix"].rstrip("/").rsplit("/", 1)[-1])
            if match:
                found.append(int(match.group(1)))
    return sorted(found)


#: Versions an upload moves on to when concurrent uploads of the same name take the next ones.
MAX_VERSION_TRIES = 20


class VersionTaken(BadDataset):
    """The version asked for exists (``--version``): datasets are immutable."""


def upload_dataset(s3: Any, bucket: str, dataset: PreparedDataset, *, pinned: bool) -> PreparedDataset:
    """Write the dataset as a new version, never over another: its data.csv is written only if
    absent (S3's conditional write, ``If-None-Match: *``), which claims the version, then its
    schema. Unless the version is ``pinned`` (``--version``), one taken meanwhile by a
    concurrent upload of the same name moves this one to the next version. Returns the
    dataset as written (its version)."""
    for _ in range(MAX_VERSION_TRIES):
        try:
            s3.put_object(
                Bucket=bucket,
                Key=dataset.dataset_key,
                Body=dataset.data,
                ContentType="text/csv",
                IfNoneMatch="*",
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status not in (409, 412):  # 412: it exists; 409: a concurrent write of it in flight
                raise
            if pinned:
                raise VersionTaken(
                    f"{dataset.prefix}/ exists already (datasets are immutable: runs pin their bytes)"
                ) from None
            dataset = replace(dataset, version=f"v{int(dataset.version[1:]) + 1}")
            continue
        schema = dataset.schema.model_dump_json(indent=2, exclude_none=True).encode()
        s3.put_object(Bucket=bucket, Key=dataset.schema_key, Body=schema, ContentType="application/json")
        return dataset
    raise BadDataset(
        f"{MAX_VERSION_TRIES} versions of {dataset.name!r} were taken by concurrent uploads; retry"
    )


def upload_files(s3: Any, bucket: str, files: dict[str, bytes]) -> None:
    """Write each S3 key's bytes, in order."""
    for key, data in files.items():
        content_type = "text/csv" if key.endswith(".csv") else "application/json"
        s3.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)


def list_datasets(s3: Any, bucket: str) -> list[dict[str, Any]]:
    """Every ``datasets/{name}/{version}/data.csv``: key, size, time, and whether a schema is beside it."""
    objects = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{PREFIX}/"):
        for item in page.get("Contents", []):
            objects[item["Key"]] = item
    found = []
    for key, item in sorted(objects.items()):
        parts = key.split("/")
        if len(parts) == 4 and parts[3] == "data.csv":
            found.append(
                {
                    "dataset_key": key,
                    "name": parts[1],
                    "version": parts[2],
                    "bytes": item["Size"],
                    "uploaded_at": item["LastModified"].isoformat(),
                    "schema": f"{parts[0]}/{parts[1]}/{parts[2]}/schema.json" in objects,
                }
            )
    return found
