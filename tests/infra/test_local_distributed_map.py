"""Local fidelity of the Distributed Map (infra/local/distributed_map.py): what Step Functions
does and moto 5.2.5's interpreter does not, checked on moto with the gap-filler installed.
Items are processed by Pass/Fail states (no Lambda), so only the Map itself is exercised."""

from __future__ import annotations

import json
import time
from typing import Any

import boto3
import pytest

from infra.local import distributed_map, lambda_runtime
from tests.support import REGION

pytestmark = pytest.mark.infra
BUCKET = "mlops-distributed-map-test"
ROLE = "arn:aws:iam::123456789012:role/sfn"


def _definition(**tolerance: Any) -> dict[str, Any]:
    """A Map over the objects under $.prefix; an item whose key contains "bad" fails."""
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Look",
        "States": {
            "Look": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.key", "StringMatches": "*bad*", "Next": "Refuse"}],
                "Default": "Take",
            },
            "Refuse": {"Type": "Fail", "Error": "BadObject", "Cause": "a bad object"},
            "Take": {"Type": "Pass", "Parameters": {"seen.$": "$.key"}, "End": True},
        },
    }
    return {
        "StartAt": "Objects",
        "States": {
            "Objects": {
                "Type": "Map",
                "ItemReader": {
                    "Resource": "arn:aws:states:::s3:listObjectsV2",
                    "Parameters": {"Bucket": BUCKET, "Prefix.$": "$.prefix"},
                },
                "ItemSelector": {"key.$": "$$.Map.Item.Value.Key"},
                "ItemProcessor": processor,
                "MaxConcurrency": 8,
                "ResultWriter": {
                    "Resource": "arn:aws:states:::s3:putObject",
                    "Parameters": {"Bucket": BUCKET, "Prefix": "results"},
                },
                **tolerance,
                "End": True,
            }
        },
    }


@pytest.fixture
def world(moto_session: Any) -> Any:
    moto_session.reset()
    lambda_runtime.install()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET)
    return s3


def _run(definition: dict[str, Any], prefix: str) -> dict[str, Any]:
    sfn = boto3.client("stepfunctions", region_name=REGION)
    machine = sfn.create_state_machine(
        name=f"m{time.monotonic_ns()}", definition=json.dumps(definition), roleArn=ROLE
    )
    arn = sfn.start_execution(
        stateMachineArn=machine["stateMachineArn"], name="run", input=json.dumps({"prefix": prefix})
    )["executionArn"]
    deadline = time.monotonic() + 120
    while (result := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return dict(result)


def _results(s3: Any, execution: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    details = json.loads(execution["output"])["ResultWriterDetails"]
    manifest = json.loads(s3.get_object(Bucket=BUCKET, Key=details["Key"])["Body"].read())
    files = {
        status: [
            e for f in entries for e in json.loads(s3.get_object(Bucket=BUCKET, Key=f["Key"])["Body"].read())
        ]
        for status, entries in manifest["ResultFiles"].items()
    }
    return manifest, files


def test_the_item_reader_lists_every_page_of_objects(world: Any) -> None:
    for i in range(1_201):  # ListObjectsV2 answers 1,000 keys a page
        world.put_object(Bucket=BUCKET, Key=f"in/{i:05d}.csv", Body=b"x")
    execution = _run(_definition(), "in/")
    assert execution["status"] == "SUCCEEDED"
    _, files = _results(world, execution)
    assert len(files["SUCCEEDED"]) == 1_201 and files["FAILED"] == []


def test_an_empty_prefix_is_an_empty_map(world: Any) -> None:
    execution = _run(_definition(), "nothing-here/")
    assert execution["status"] == "SUCCEEDED"
    manifest, files = _results(world, execution)
    assert files == {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    assert manifest["ResultFiles"] == {"FAILED": [], "PENDING": [], "SUCCEEDED": []}


def test_result_files_hold_each_child_s_input_and_output_or_error(world: Any) -> None:
    for key in ("in/a.csv", "in/b.csv", "in/bad.csv"):
        world.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    execution = _run(_definition(ToleratedFailureCount=1), "in/")
    assert execution["status"] == "SUCCEEDED"
    manifest, files = _results(world, execution)
    assert manifest["DestinationBucket"] == BUCKET and manifest["MapRunArn"].count(":mapRun:") == 1
    assert all(
        f["Key"].startswith("results/") and f["Size"] > 0 for f in manifest["ResultFiles"]["SUCCEEDED"]
    )
    succeeded = sorted(json.loads(e["Output"])["seen"] for e in files["SUCCEEDED"])
    assert succeeded == ["in/a.csv", "in/b.csv"]
    assert all(
        e["Status"] == "SUCCEEDED" and json.loads(e["Input"])["key"] in succeeded for e in files["SUCCEEDED"]
    )
    (failed,) = files["FAILED"]
    assert (failed["Status"], failed["Error"], failed["Cause"]) == ("FAILED", "BadObject", "a bad object")
    assert json.loads(failed["Input"]) == {"key": "in/bad.csv"}


@pytest.mark.parametrize(
    ("tolerance", "status"),
    [
        ({}, "FAILED"),  # none declared: any failed item fails the Map
        ({"ToleratedFailureCount": 0}, "FAILED"),
        ({"ToleratedFailureCount": 1}, "SUCCEEDED"),
        ({"ToleratedFailurePercentage": 10}, "FAILED"),  # 1 of 4 = 25 % (an integer, as CDK writes it)
        ({"ToleratedFailurePercentage": 30}, "SUCCEEDED"),
    ],
)
def test_tolerated_failures_decide_whether_the_map_fails(
    world: Any, tolerance: dict[str, Any], status: str
) -> None:
    for key in ("in/a.csv", "in/b.csv", "in/c.csv", "in/bad.csv"):
        world.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    execution = _run(_definition(**tolerance), "in/")
    assert execution["status"] == status
    if status == "FAILED":
        assert execution["error"] == "States.ExceedToleratedFailureThreshold"


def test_the_patched_moto_internals_are_as_expected() -> None:
    assert distributed_map.check_moto_internals() == []


@pytest.mark.parametrize(
    ("failed", "total", "count", "percentage", "exceeded"),
    [
        (0, 10, None, None, False),
        (1, 10, None, None, True),
        (1, 10, 1, None, False),
        (2, 10, 1, None, True),
        (1, 10, None, 10.0, False),
        (2, 10, None, 10.0, True),
        (2, 10, 5, 10.0, True),  # either threshold fails it
    ],
)
def test_the_tolerance_rule(
    failed: int, total: int, count: int | None, percentage: float | None, exceeded: bool
) -> None:
    assert distributed_map.exceeds_tolerance(failed, total, count=count, percentage=percentage) is exceeded


def test_integer_percentages_are_respelled_for_moto_s_grammar_only() -> None:
    definition = json.dumps(_definition(ToleratedFailurePercentage=10))
    respelled = json.loads(distributed_map.respell_definition(definition))
    assert respelled["States"]["Objects"]["ToleratedFailurePercentage"] == 10.0
    assert distributed_map.respell_definition(json.dumps(_definition())) == json.dumps(_definition())
