"""`mlops datasets upload | list`: the inferred schema, the refusals, the S3 layout training reads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
from typer.testing import CliRunner

from infra.cli import main
from infra.cli.client import Target
from infra.cli.datasets import BadDataset, infer_schema, prepare
from infra.local.sample_data import breast_cancer
from mlops_core.data.schema import DatasetSchema, DataValidationError, load_csv, schema_violations
from tests.support import BUCKET, REGION

CLASSIFICATION = b"x1,x2,label\n" + b"".join(f"{i}.5,{i % 7},{i % 2}\n".encode() for i in range(40))
REGRESSION = b"age,bmi,progression\n" + b"".join(
    f"{20 + i},{18 + i / 10},{100 + i * 3.7}\n".encode() for i in range(40)
)


# ---- the inferred schema ------------------------------------------------------------------------
def test_an_integer_target_with_few_values_is_classification_with_its_classes() -> None:
    schema, rows = infer_schema(CLASSIFICATION, name="d", target="label")
    assert rows == 40
    assert schema.task == "classification"
    columns = {c.name: c for c in schema.columns}
    assert columns["label"].type == "integer" and columns["label"].allowed == [0.0, 1.0]
    assert columns["x1"].type == "double" and columns["x2"].type == "integer"
    assert [c.name for c in schema.features] == ["x1", "x2"]


def test_a_continuous_target_is_regression() -> None:
    schema, _ = infer_schema(REGRESSION, name="d", target="progression")
    assert schema.task == "regression"
    assert {c.name: c.allowed for c in schema.columns}["progression"] is None


def test_the_task_can_be_forced_to_regression_for_integer_labels() -> None:
    schema, _ = infer_schema(CLASSIFICATION, name="d", target="x2", task="regression")
    assert schema.task == "regression"


def test_the_inferred_schema_is_what_validate_data_accepts_for_the_sample_dataset() -> None:
    sample = breast_cancer()
    schema, rows = infer_schema(sample.csv, name="breast-cancer", target="benign")
    assert DatasetSchema.model_validate(json.loads(schema.model_dump_json())) == schema
    assert schema.task == sample.schema["task"]
    assert [(c.name, c.type) for c in schema.columns] == [
        (c["name"], c["type"]) for c in sample.schema["columns"]
    ]
    assert rows == 569
    assert schema_violations(load_csv(sample.csv, schema), schema) == []


def test_nulls_in_a_feature_make_it_nullable_and_booleans_are_recognised() -> None:
    data = b"a,flag,y\n1.5,true,0\n,false,1\n2.5,TRUE,0\n3.5,false,1\n"
    schema, _ = infer_schema(data, name="d", target="y")
    columns = {c.name: c for c in schema.columns}
    assert columns["a"].nullable and columns["a"].type == "double"
    assert columns["flag"].type == "boolean" and not columns["flag"].nullable


PENGUINS = (
    b"species,island,bill_length_mm,sex\n"
    b"Adelie,Torgersen,39.1,male\n"
    b"Gentoo,Biscoe,46.1,female\n"
    b"Chinstrap, Dream ,46.5,NA\n"
    b"Adelie,Dream,37.2,female\n"
)


def test_text_columns_are_categories_and_a_text_target_is_classification_over_its_values() -> None:
    schema, rows = infer_schema(PENGUINS, name="penguins", target="species")
    columns = {c.name: c for c in schema.columns}
    assert (schema.task, rows) == ("classification", 4)
    assert columns["species"].type == "category"
    assert columns["species"].categories == ["Adelie", "Chinstrap", "Gentoo"]
    # Cells are read stripped, as loading reads them; the missing-value words are missing.
    assert columns["island"].categories == ["Biscoe", "Dream", "Torgersen"]
    assert columns["sex"].categories == ["female", "male"] and columns["sex"].nullable
    table = load_csv(PENGUINS, schema)
    assert table.columns["species"].tolist() == [0.0, 2.0, 1.0, 0.0]
    assert table.columns["island"].tolist() == [2.0, 0.0, 1.0, 1.0]
    assert np.isnan(table.columns["sex"][2])
    assert DatasetSchema.model_validate(json.loads(schema.model_dump_json())) == schema


def test_a_cell_outside_a_category_columns_list_is_a_violation_naming_its_line() -> None:
    schema, _ = infer_schema(PENGUINS, name="penguins", target="species")
    with pytest.raises(DataValidationError) as refused:
        load_csv(PENGUINS + b"Emperor,Dream,40.0,male\n", schema)
    assert "line 6, column 'species' (category): 'Emperor' is not one of its categories" in str(refused.value)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_file_separated_by_semicolons_or_tabs_is_stored_comma_separated(delimiter: str) -> None:
    data = PENGUINS.decode().replace(",", delimiter).replace("39.1", '"39.1"').encode()
    dataset = prepare(data, name="penguins", version="v1", target="species")
    assert dataset.data.splitlines()[:2] == [
        b"species,island,bill_length_mm,sex",
        b"Adelie,Torgersen,39.1,male",
    ]
    assert dataset.schema == prepare(PENGUINS, name="penguins", version="v1", target="species").schema


def test_drop_leaves_identifier_columns_out_of_the_csv_and_its_schema() -> None:
    data = b"id,name,x,y\n" + b"".join(f"{i},person {i},{i % 5},{i % 2}\n".encode() for i in range(60))
    with pytest.raises(BadDataset, match="--drop COLUMN"):
        prepare(data, name="d", version="v1", target="y")
    dataset = prepare(data, name="d", version="v1", target="y", drop=["name", "id"])
    assert [c.name for c in dataset.schema.columns] == ["x", "y"]
    assert dataset.data.splitlines()[:2] == [b"x,y", b"0,0"]
    with pytest.raises(BadDataset, match="no column 'nope' to drop"):
        prepare(data, name="d", version="v1", target="y", drop=["nope"])
    with pytest.raises(BadDataset, match="cannot be dropped"):
        prepare(data, name="d", version="v1", target="y", drop=["y"])


@pytest.mark.parametrize(
    ("data", "target", "task", "message"),
    [
        (b"", "y", None, "the file is empty"),
        (b"a;b;y\n1;2;3\n", "y", None, "one column only"),
        (b"1,2,3\n4,5,6\n", "y", None, "no header row"),
        (b"a,,y\n1,2,3\n", "y", None, "leaves column(s) 2 unnamed"),
        (b"a,a,y\n1,2,3\n", "y", None, "names 'a' more than once"),
        (b"a,y\n", "y", None, "a header row and no data"),
        (b"a,b\n1,2\n", "y", None, "no column 'y' to use as the target"),
        (b"a,y\n1,2\n3\n", "y", None, "do not have the header's 2 fields (line 3: 1 fields)"),
        (b"colour,y\nred,1\n3,0\n", "y", None, "column 'colour' mixes numbers and text ('red')"),
        (b"a,y\n1,red\n2,blue\n", "y", "regression", "a regression target is a number"),
        (b"a,y\n1,red\n2,red\n", "y", None, "one class only"),
        (
            b"name,y\n" + b"".join(f"person {i},{i % 2}\n".encode() for i in range(60)),
            "y",
            None,
            "'name' (60 distinct texts in 60 rows) have too many distinct values to be categories",
        ),
        (b"a,y\n1,NA\n2,red\n", "y", None, "the target 'y' is empty in 1 row(s)"),
        (b"a,y\n1,1\n2,\n", "y", None, "the target 'y' is empty in 1 row(s)"),
        (b"a,y\n1,1\n2,1\n", "y", None, "one class only"),
        (b"a,y\n1,0.5\n2,1.5\n", "y", "classification", "non-integer values"),
        (b"a,y\n,1\n,0\n", "y", None, "column 'a' has no values"),
        (b"a,y\n1,inf\n2,0\n", "y", None, "mixes numbers and text ('inf')"),
        (b"\xff\xfe\x00a", "y", None, "not UTF-8"),
    ],
)
def test_files_that_cannot_be_datasets_are_refused_with_the_reason(
    data: bytes, target: str, task: str | None, message: str
) -> None:
    with pytest.raises(BadDataset) as refused:
        infer_schema(data, name="d", target=target, task=task)
    assert message in str(refused.value)


# ---- the command --------------------------------------------------------------------------------
@pytest.fixture
def upload(aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """`mlops datasets upload` against the moto bucket; returns (result, s3 client)."""
    target = Target(api_url="http://api.invalid", api_key=None, region=REGION, artifacts_bucket=BUCKET)
    monkeypatch.setattr(main, "_target", lambda: target)
    runner = CliRunner()

    def invoke(data: bytes, *args: str, name: str = "data.csv") -> Any:
        path = tmp_path / name
        path.write_bytes(data)
        return runner.invoke(main.app, ["datasets", "upload", str(path), *args], prog_name="mlops")

    return invoke


def _keys() -> list[str]:
    listed = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return sorted(item["Key"] for item in listed)


def test_upload_writes_the_csv_and_its_schema_where_training_reads_them(upload: Any) -> None:
    result = upload(CLASSIFICATION, "--name", "churn", "--target", "label")

    assert result.exit_code == 0, result.output
    assert "dataset_key: datasets/churn/v1/data.csv" in result.stdout
    assert _keys() == ["datasets/churn/v1/data.csv", "datasets/churn/v1/schema.json"]
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.get_object(Bucket=BUCKET, Key="datasets/churn/v1/data.csv")["Body"].read() == CLASSIFICATION
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="datasets/churn/v1/schema.json")["Body"].read())
    schema = DatasetSchema.model_validate(stored)
    assert (schema.name, schema.task, schema.target) == ("churn", "classification", "label")


def test_upload_without_a_version_takes_the_next_one_and_never_overwrites(upload: Any) -> None:
    assert upload(REGRESSION, "--name", "d", "--target", "progression").exit_code == 0
    second = upload(REGRESSION, "--name", "d", "--target", "progression", "--json")
    assert second.exit_code == 0
    assert json.loads(second.stdout)["dataset_key"] == "datasets/d/v2/data.csv"

    again = upload(CLASSIFICATION, "--name", "d", "--target", "label", "--version", "v1")
    assert again.exit_code == 2
    assert "datasets/d/v1/ exists already" in again.stderr
    s3 = boto3.client("s3", region_name=REGION)
    assert s3.get_object(Bucket=BUCKET, Key="datasets/d/v1/data.csv")["Body"].read() == REGRESSION


def test_upload_with_an_explicit_version_and_task(upload: Any) -> None:
    result = upload(
        CLASSIFICATION, "--name", "d", "--target", "x2", "--version", "7", "--task", "regression", "--json"
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["dataset_key"] == "datasets/d/v7/data.csv"
    assert answer["task"] == "regression" and answer["rows"] == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--name", "d", "--target", "nope"), "no column 'nope'"),
        (("--name", "bad/name", "--target", "label"), "dataset name 'bad/name'"),
        (("--name", "d", "--target", "label", "--version", "latest"), "version 'latest' must look like v1"),
        (("--name", "d", "--target", "label", "--task", "clustering"), "'clustering' is not one of"),
    ],
)
def test_upload_refuses_bad_arguments_with_exit_2_and_writes_nothing(
    upload: Any, args: tuple[str, ...], message: str
) -> None:
    result = upload(CLASSIFICATION, *args)
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert _keys() == []


def test_upload_of_a_missing_file_is_a_usage_error(upload: Any, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main.app, ["datasets", "upload", str(tmp_path / "no.csv"), "--name", "d", "--target", "y"]
    )
    assert result.exit_code == 2
    assert "no.csv" in result.stderr and "not found" in result.stderr


def test_datasets_list_shows_each_uploaded_version(upload: Any) -> None:
    upload(CLASSIFICATION, "--name", "churn", "--target", "label")
    upload(CLASSIFICATION, "--name", "churn", "--target", "label")
    boto3.client("s3", region_name=REGION).put_object(Bucket=BUCKET, Key="datasets/raw/notes.txt", Body=b"x")

    result = CliRunner().invoke(main.app, ["datasets", "list", "--json"])

    assert result.exit_code == 0, result.output
    assert [(d["dataset_key"], d["schema"]) for d in json.loads(result.stdout)] == [
        ("datasets/churn/v1/data.csv", True),
        ("datasets/churn/v2/data.csv", True),
    ]


def test_concurrent_uploads_of_one_name_each_get_their_own_version_and_lose_nothing(aws: None) -> None:
    """Every upload listed the same versions (none) before any wrote: each still ends in a
    version of its own with its own bytes; a pinned version that is taken is refused."""
    from concurrent.futures import ThreadPoolExecutor

    from infra.cli.datasets import VersionTaken, upload_dataset

    datasets = [
        prepare(CLASSIFICATION + f"{i}.25,1,{i % 2}\n".encode(), name="race", version="v1", target="label")
        for i in range(8)
    ]

    def upload_one(dataset: Any) -> Any:
        return upload_dataset(boto3.client("s3", region_name=REGION), BUCKET, dataset, pinned=False)

    with ThreadPoolExecutor(max_workers=8) as pool:
        written = list(pool.map(upload_one, datasets))

    assert sorted(d.version for d in written) == [f"v{i}" for i in range(1, 9)]
    s3 = boto3.client("s3", region_name=REGION)
    for dataset in written:
        assert s3.get_object(Bucket=BUCKET, Key=dataset.dataset_key)["Body"].read() == dataset.data
        assert s3.head_object(Bucket=BUCKET, Key=dataset.schema_key)["ContentLength"] > 0
    with pytest.raises(VersionTaken, match="datasets/race/v3/ exists already"):
        upload_dataset(s3, BUCKET, replace(datasets[0], version="v3"), pinned=True)
    assert (
        s3.get_object(Bucket=BUCKET, Key="datasets/race/v3/data.csv")["Body"].read()
        == written[[d.version for d in written].index("v3")].data
    )
