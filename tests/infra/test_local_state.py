"""`mlops up --state DIR` (infra/local/persistence.py): what a saved local stack gives back.

The synthesized template is deployed as the local stack deploys it, given data (items,
object versions and a delete marker, a succeeded and a failed training execution), saved,
wiped (a fresh moto, as a new process has), deployed again with the saved names and
restored. Everything a client can read through the AWS API must be as it was: items,
every object version with its version id, bytes, ETag and order, executions with their
output, error and history.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from synthesized_app import SynthesizedApp

from infra.local import lambda_runtime
from infra.local.persistence import STOPPED_ERROR, LocalState, _RestoredExecution, with_names
from infra.local.sample_data import DATASET_PREFIX, breast_cancer
from infra.local.stack import DeployedResources, deploy_template
from tests.support import BUCKET, TABLE

pytestmark = pytest.mark.infra
API_KEY = "local-test-key-0123456789"


def _test_names(template: dict[str, Any]) -> dict[str, str]:
    """The bucket and table named as the tests' environment names them (handlers read the
    names at import, and other tests may have imported them)."""
    outputs = template["Outputs"]
    return {
        outputs["ArtifactsBucketName"]["Value"]["Ref"]: BUCKET,
        outputs["MetadataTableName"]["Value"]["Ref"]: TABLE,
    }


def _execute(deployed: DeployedResources, name: str, candidates: list[dict[str, Any]]) -> None:
    sfn = boto3.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=deployed.state_machine_arn,
        name=name,
        input=json.dumps(
            {
                "run_id": name,
                "model_name": "breast-cancer",
                "dataset_key": f"{DATASET_PREFIX}/data.csv",
                "threshold": 0.5,
                "candidates": candidates,
                "seed": 7,
            }
        ),
    )["executionArn"]
    deadline = time.monotonic() + 120
    while sfn.describe_execution(executionArn=arn)["status"] == "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _observe(deployed: DeployedResources) -> dict[str, Any]:
    """Everything a client can read back: items, object versions (and bytes), executions."""
    s3, sfn = boto3.client("s3"), boto3.client("stepfunctions")
    items = boto3.client("dynamodb").scan(TableName=deployed.metadata_table)["Items"]
    listed = s3.list_object_versions(Bucket=deployed.artifacts_bucket)
    versions = [
        {k: v[k] for k in ("Key", "VersionId", "ETag", "IsLatest", "LastModified", "Size")}
        | {"Body": s3.get_object(Bucket=BUCKET, Key=v["Key"], VersionId=v["VersionId"])["Body"].read()}
        for v in listed.get("Versions", [])
    ]
    markers = [{k: m[k] for k in ("Key", "VersionId", "IsLatest")} for m in listed.get("DeleteMarkers", [])]
    executions = []
    assert deployed.state_machine_arn is not None
    for listed_execution in sfn.list_executions(stateMachineArn=deployed.state_machine_arn)["executions"]:
        arn = listed_execution["executionArn"]
        described = sfn.describe_execution(executionArn=arn)
        described.pop("ResponseMetadata")
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        executions.append({"listed": listed_execution, "described": described, "history": history})
    return {
        "items": sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"])),
        "versions": versions,
        "markers": markers,
        "executions": executions,
    }


def test_a_saved_local_stack_comes_back_with_items_object_versions_and_executions(
    synthesized: SynthesizedApp, moto_session: Any, tmp_path: Path
) -> None:
    moto_session.reset()
    lambda_runtime.install()
    template = with_names(synthesized.template_json, _test_names(synthesized.template_json))
    first = deploy_template(template)
    state = LocalState(tmp_path)
    state.restore(template, first.physical_ids, API_KEY)  # a new state directory: nothing to restore
    s3 = boto3.client("s3")
    for key, data in breast_cancer().files.items():
        s3.put_object(Bucket=BUCKET, Key=key, Body=data)
    s3.put_object(Bucket=BUCKET, Key="notes/readme.txt", Body=b"first", Metadata={"owner": "ml"})
    s3.put_object(Bucket=BUCKET, Key="notes/readme.txt", Body=b"second")
    s3.delete_object(Bucket=BUCKET, Key="notes/readme.txt")
    boto3.client("dynamodb").put_item(
        TableName=TABLE, Item={"pk": {"S": "TEST#binary"}, "sk": {"S": "X"}, "b": {"B": b"\x00\xff"}}
    )
    _execute(first, "run-ok", [{"family": "logistic_regression"}])
    _execute(first, "run-bad-family", [{"family": "xgboost"}])
    before = _observe(first)
    assert len(before["executions"]) == 2
    assert {e["described"]["status"] for e in before["executions"]} == {"SUCCEEDED", "FAILED"}
    assert any(i["sk"]["S"] == "VERSION#000001" for i in before["items"])  # run-ok registered v1
    assert [m["Key"] for m in before["markers"]] == ["notes/readme.txt"]
    assert sum(v["Key"] == "notes/readme.txt" for v in before["versions"]) == 2

    assert state.save() is True
    assert state.save() is False  # nothing changed: nothing written

    moto_session.reset()  # a new process: moto starts empty
    again = LocalState(tmp_path)
    assert again.api_key == API_KEY
    named = with_names(synthesized.template_json, again.names)
    second = deploy_template(named)
    again.restore(named, second.physical_ids, again.api_key or "")

    assert second.state_machine_arn == first.state_machine_arn
    assert second.functions == first.functions
    after = _observe(second)
    assert after["items"] == before["items"]
    assert after["versions"] == before["versions"]
    assert after["markers"] == before["markers"]
    assert after["executions"] == before["executions"]
    with pytest.raises(ClientError, match="ExecutionAlreadyExists"):
        boto3.client("stepfunctions").start_execution(
            stateMachineArn=second.state_machine_arn, name="run-ok", input="{}"
        )
    moto_session.reset()


def test_an_execution_running_when_the_stack_stopped_comes_back_aborted() -> None:
    described = {
        "executionArn": "arn:aws:states:us-east-1:123456789012:execution:M:run-1",
        "name": "run-1",
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:M",
        "input": "{}",
        "startDate": "2026-01-01T00:00:00+00:00",
        "status": "RUNNING",
    }

    restored = _RestoredExecution(described, events=[])

    assert restored.status == "ABORTED"
    assert restored.error == STOPPED_ERROR
    assert restored.stop_date is not None


def test_a_state_directory_of_another_format_is_refused(tmp_path: Path) -> None:
    from infra.local.persistence import SNAPSHOT, StateDoesNotFit

    (tmp_path / SNAPSHOT).write_text(json.dumps({"format": 999}))

    with pytest.raises(StateDoesNotFit, match="another format"):
        LocalState(tmp_path)


def test_items_that_no_longer_fit_the_table_are_refused_with_a_message(
    synthesized: SynthesizedApp, moto_session: Any, tmp_path: Path
) -> None:
    from infra.local.persistence import SNAPSHOT, Snapshot, StateDoesNotFit

    moto_session.reset()
    template = synthesized.template_json
    table = template["Outputs"]["MetadataTableName"]["Value"]["Ref"]
    # Written by a stack whose table had only a partition key: no "sk" on the item.
    (tmp_path / SNAPSHOT).write_text(Snapshot(tables={table: [{"pk": {"S": "MODEL#m"}}]}).to_json())
    deployed = deploy_template(template)

    with pytest.raises(StateDoesNotFit, match=f"the items of {table}"):
        LocalState(tmp_path).restore(template, deployed.physical_ids, API_KEY)
    moto_session.reset()
