"""Partitioned materialization in the template: a Distributed Map over the view's source prefix
that tolerates every item failing (the last step records failures), every failure caught into
FailMaterialization, the materializer told where the limit is and allowed to start this machine
only, and roles that allow exactly what each step does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from synthesized_app import SynthesizedApp
from test_infra_batch import _grants_of
from test_infra_functions import _arn, _arn_with_suffix

from infra.cdk.constructs.features_partitions import (
    MAX_CONCURRENCY,
    OBJECT_MEMORY_MB,
    single_run_max_bytes,
)
from mlops_core.features.partitions import PARTITIONED_LEASE_SECONDS

pytestmark = pytest.mark.infra

FEATURE_VIEW_ITEMS = {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["FEATURE_VIEW#*"]}}


def _definition(synthesized: SynthesizedApp) -> dict[str, Any]:
    return synthesized.state_machine_definition(synthesized.stack.features.partitions.state_machine)


def test_a_distributed_map_over_the_view_s_sources_then_one_record(synthesized: SynthesizedApp) -> None:
    definition = _definition(synthesized)
    states = definition["States"]

    assert definition["StartAt"] == "MaterializeObjects"
    assert definition["TimeoutSeconds"] == PARTITIONED_LEASE_SECONDS  # as the run's lease
    assert {name: state["Type"] for name, state in states.items()} == {
        "MaterializeObjects": "Map",
        "FinishMaterialization": "Task",
        "Materialized": "Succeed",
        "FailMaterialization": "Task",
        "MaterializationFailed": "Fail",
    }
    objects = states["MaterializeObjects"]
    assert objects["ItemProcessor"]["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}
    assert objects["ItemReader"]["Resource"].endswith(":states:::s3:listObjectsV2")
    assert objects["ItemReader"]["Parameters"]["Prefix.$"] == "$.source_prefix"
    assert objects["ResultWriter"]["Parameters"]["Prefix"] == "feature-map-runs"
    assert objects["ToleratedFailurePercentage"] == 100
    assert objects["MaxConcurrency"] == MAX_CONCURRENCY
    selector = objects["ItemSelector"]
    assert (selector["key.$"], selector["size.$"], selector["listed.$"]) == (
        "$$.Map.Item.Value.Key",
        "$$.Map.Item.Value.Size",
        "$$.Map.Item.Value",
    )
    assert selector["run_id.$"] == "$.run_id" and selector["compare.$"] == "$.compare"
    assert states["FinishMaterialization"]["Parameters"]["Payload"] == {
        "run.$": "$",
        "manifest_key.$": "$.map.manifest_key",
    }
    for name in ("MaterializeObjects", "FinishMaterialization"):
        assert states[name]["Catch"] == [
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "FailMaterialization"}
        ]
    assert states["FailMaterialization"]["Parameters"]["Payload"] == {"run.$": "$", "failure.$": "$.failure"}
    assert states["FailMaterialization"]["Next"] == "MaterializationFailed"
    task = objects["ItemProcessor"]["States"]["MaterializeObject"]
    retried = {error for r in task["Retry"] for error in r["ErrorEquals"]}
    assert {"Unavailable", "Lambda.TooManyRequestsException", "Lambda.ServiceException"} <= retried


def test_the_materializer_knows_its_limit_and_may_start_this_machine_only(
    synthesized: SynthesizedApp,
) -> None:
    features = synthesized.stack.features
    machine = json.dumps({"Ref": synthesized.logical_id(features.partitions.state_machine)})
    environment = synthesized.resources[synthesized.logical_id(features.materialize.function)]["Properties"][
        "Environment"
    ]["Variables"]
    assert environment["MATERIALIZE_SINGLE_RUN_MAX_BYTES"] == str(single_run_max_bytes(2048))
    assert json.dumps(environment["MATERIALIZE_PARTITION_STATE_MACHINE_ARN"], sort_keys=True) == machine
    assert 100_000_000 < single_run_max_bytes(2048) < 150_000_000
    starts = {g for g in _grants_of(synthesized, features.materialize) if "states:StartExecution" in g[0]}
    assert starts == {(("states:StartExecution",), machine)}


def test_each_step_may_do_what_it_does_and_nothing_else(synthesized: SynthesizedApp) -> None:
    partitions = synthesized.stack.features.partitions
    table = _arn(synthesized.logical_id(synthesized.stack.storage.metadata_table))
    features_table = _arn(synthesized.logical_id(synthesized.stack.features.table))
    bucket_id = synthesized.logical_id(synthesized.stack.storage.artifacts_bucket)
    bus = _arn(synthesized.logical_id(synthesized.stack.events.bus))

    # No BatchWriteItem on the features table (a child's writes are conditional), no deletes.
    assert _grants_of(synthesized, partitions.materialize_object) == {
        (("dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:PutItem"), features_table),
        (("dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"), table),
        (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, "/feature-sources/*")),
        (("s3:ListBucket",), _arn(bucket_id)),
    }
    assert _grants_of(synthesized, partitions.finish) == {
        (("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"), table),
        (("s3:GetObject", "s3:GetObjectVersion"), _arn_with_suffix(bucket_id, "/feature-map-runs/*")),
        (("s3:ListBucket",), _arn(bucket_id)),
        (("events:PutEvents",), bus),
    }
    for step in (partitions.materialize_object, partitions.finish):
        on_table = [
            s
            for s in synthesized.role_policy_statements(step.role)
            if json.dumps(s["Resource"], sort_keys=True) == table
        ]
        assert on_table and all(s["Condition"] == FEATURE_VIEW_ITEMS for s in on_table)
    properties = synthesized.resources[synthesized.logical_id(partitions.materialize_object.function)]
    assert properties["Properties"]["MemorySize"] == OBJECT_MEMORY_MB
    assert properties["Properties"]["Environment"]["Variables"]["MATERIALIZE_SINGLE_RUN_MAX_BYTES"] == str(
        single_run_max_bytes(OBJECT_MEMORY_MB)
    )


def test_the_machine_invokes_its_two_steps_only_and_touches_no_table(synthesized: SynthesizedApp) -> None:
    partitions = synthesized.stack.features.partitions
    by_action: dict[str, list[Any]] = {}
    for statement in synthesized.role_policy_statements(partitions.state_machine.role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for action in actions:
            by_action.setdefault(action, []).extend(resources)
    invoked = {json.dumps(r, sort_keys=True) for r in by_action["lambda:InvokeFunction"]}
    expected = set()
    for step in (partitions.materialize_object, partitions.finish):
        function_id = synthesized.logical_id(step.function)
        expected |= {_arn(function_id), _arn_with_suffix(function_id, ":*")}
    assert invoked == expected
    assert not any(a.startswith(("dynamodb:", "s3:Delete")) for a in by_action)
