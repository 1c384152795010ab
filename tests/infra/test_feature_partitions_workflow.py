"""Partitioned materialization through the template's state machine (moto's interpreter with
infra/local/distributed_map.py, the real handlers in-process): many source objects whose rows
of one entity are spread over several objects, materialized by the Distributed Map, give the
same online rows and freshness state as one function's run over the same objects; a second
run writes nothing; an object that does not match the view fails alone, named on the record."""

from __future__ import annotations

import io
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from synthesized_app import SynthesizedApp
from test_training_workflow import _with_test_names

from infra.local import lambda_runtime
from infra.local.stack import deploy_template
from mlops_core.features.entities import FeatureViewDefinition, MaterializationRecord
from mlops_core.features.online import OnlineStore
from mlops_core.features.partitions import FinishRequest, PartitionedRuns, PartitionRun
from mlops_core.features.repository import FeatureViewRepository
from mlops_core.features.service import FeatureStoreService
from mlops_core.storage.dynamo import KeyedTable, MetadataTable
from mlops_core.storage.s3 import ArtifactStore
from mlops_core.storage.stepfunctions import MaterializationWorkflow
from tests.support import BUCKET, FEATURES_TABLE, TABLE, upload

pytestmark = pytest.mark.infra
#: Objects and rows per object (CI: 2 cores); entities repeat across objects.
OBJECTS, ROWS_PER_OBJECT, ENTITIES = 30, 200, 1500
NOW_MS = int(time.time() * 1000)


@dataclass
class World:
    single: FeatureStoreService
    partitioned: FeatureStoreService
    views: FeatureViewRepository
    online: OnlineStore


@pytest.fixture
def world(synthesized: SynthesizedApp, moto_session: Any) -> Iterator[World]:
    moto_session.reset()
    lambda_runtime.install()
    template = _with_test_names(synthesized.template_json)
    features_table = synthesized.logical_id(synthesized.stack.features.table)
    template["Resources"][features_table]["Properties"]["TableName"] = FEATURES_TABLE
    deployed = deploy_template(template)
    wanted = deployed.physical_ids[
        synthesized.logical_id(synthesized.stack.features.partitions.state_machine)
    ]
    machines = boto3.client("stepfunctions").list_state_machines()["stateMachines"]
    arn = next(m["stateMachineArn"] for m in machines if wanted in (m["name"], m["stateMachineArn"]))
    views = FeatureViewRepository(MetadataTable(TABLE))
    online = OnlineStore(KeyedTable(FEATURES_TABLE))

    def service(partitions: PartitionedRuns | None) -> FeatureStoreService:
        return FeatureStoreService(views, online, ArtifactStore(BUCKET), partitions=partitions)

    # 1,000 bytes: every run of more than one object is partitioned.
    yield World(
        single=service(None),
        partitioned=service(PartitionedRuns(MaterializationWorkflow(arn), single_run_max_bytes=1000)),
        views=views,
        online=online,
    )


def _definition(name: str) -> FeatureViewDefinition:
    return FeatureViewDefinition(
        name=name,
        owner="test",
        entity={"name": "customer_id", "type": "int64"},
        features=[{"name": "spend", "type": "float64"}, {"name": "visits", "type": "int64"}],
        source={
            "format": "csv",
            "path": f"feature-sources/{name}/",
            "event_timestamp": "event_time",
            "created_timestamp": "created_at",
        },
        ttl="30d",
    )


def _objects(seed: int) -> dict[str, bytes]:
    """Rows of ENTITIES entities spread over OBJECTS objects, a distinct event time per row (so
    the latest row of an entity is one row), 1 % of them malformed (no event time)."""
    rng = random.Random(seed)
    times = rng.sample(range(1, 20 * 86400), OBJECTS * ROWS_PER_OBJECT)
    objects = {}
    for number in range(OBJECTS):
        out = io.StringIO()
        out.write("customer_id,event_time,created_at,spend,visits\n")
        for row in range(ROWS_PER_OBJECT):
            seconds = times[number * ROWS_PER_OBJECT + row]
            stamp = "" if rng.random() < 0.01 else str(NOW_MS // 1000 - seconds)
            out.write(f"{rng.randint(1, ENTITIES)},{stamp},{stamp},{rng.random():.6f},{rng.randint(0, 50)}\n")
        objects[f"part-{number:03d}.csv"] = out.getvalue().encode()
    return objects


def _finish(world: World, record: MaterializationRecord, timeout: float = 300) -> MaterializationRecord:
    assert record.partitioned and record.status == "running", record
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        executions = [
            e
            for m in sfn.list_state_machines()["stateMachines"]
            for e in sfn.list_executions(stateMachineArn=m["stateMachineArn"])["executions"]
            if e["name"] == record.run_id
        ]
        if executions and executions[0]["status"] != "RUNNING":
            break
        assert time.monotonic() < deadline, f"execution did not finish in {timeout:.0f} s"
        time.sleep(0.2)
    assert executions[0]["status"] == "SUCCEEDED", sfn.describe_execution(
        executionArn=executions[0]["executionArn"]
    )
    finished = world.views.record(record.view, record.run_id)
    assert finished is not None
    return finished


def _stored(world: World, view: str) -> dict[str, tuple[Any, ...]]:
    rows = {}
    for first in range(1, ENTITIES + 1, 100):  # 100 keys a read
        rows |= world.online.read_view(view, [str(i) for i in range(first, min(first + 100, ENTITIES + 1))])
    return {e: (r.values, r.event_time_ms, r.created_time_ms, r.expires_at) for e, r in rows.items()}


def test_the_partitioned_run_stores_what_one_function_stores_and_a_second_run_writes_nothing(
    world: World,
) -> None:
    objects = _objects(seed=3)
    for view in ("one_function", "partitioned"):
        world.single.apply(_definition(view), actor="test")
        for key, data in objects.items():
            upload(f"feature-sources/{view}/{key}", data)

    single = world.single.materialize("one_function", trigger="on_demand")
    split = _finish(world, world.partitioned.materialize("partitioned", trigger="on_demand"))

    assert single.status == split.status == "succeeded", split
    assert not single.partitioned and split.partitioned
    assert split.objects_read == single.objects_read == OBJECTS
    assert split.rows_read == single.rows_read == OBJECTS * ROWS_PER_OBJECT
    assert split.rows_rejected == single.rows_rejected > 0
    assert split.rejected_reasons == single.rejected_reasons
    assert split.failed_objects == [] and split.duration_ms is not None
    # One conditional PutItem per item a child writes; no reads while the view was never written.
    assert split.write_requests == split.items_written + split.items_lost_race and split.read_requests == 0
    # Each child writes its objects' latest rows; a newer row of another object may replace one.
    assert split.items_written + split.items_lost_race >= single.items_written
    stored = _stored(world, "one_function")
    assert len(stored) == single.items_written == single.entities
    assert _stored(world, "partitioned") == stored
    # The freshness state: exact under the children's races (each put knows what it replaced).
    one, two = world.views.state("one_function"), world.views.state("partitioned")
    assert (two.entities, two.histogram, two.newest_event_ms) == (
        one.entities,
        one.histogram,
        one.newest_event_ms,
    )
    assert two.last_run_status == "succeeded" and two.view_version == 1
    # The last step retried (e.g. its answer lost): the run is answered as recorded, STATE as it is.
    retried = PartitionRun(
        view="partitioned",
        run_id=split.run_id,
        view_version=1,
        source_prefix="feature-sources/partitioned/",
        incremental=True,
        compare=False,
        end_ms=NOW_MS,
        now_ms=NOW_MS,
    )
    assert world.partitioned.partitions is not None
    assert world.partitioned.partitions.finish(world.partitioned, FinishRequest(run=retried)) == split
    assert world.views.state("partitioned") == two

    again = world.partitioned.materialize(
        "partitioned", trigger="on_demand"
    )  # the watermark: nothing to read
    assert (again.status, again.partitioned, again.objects_read, again.items_written) == (
        "succeeded",
        False,
        0,
        0,
    )
    full = _finish(world, world.partitioned.materialize("partitioned", trigger="on_demand", full=True))
    assert (full.status, full.objects_read, full.items_written) == ("succeeded", OBJECTS, 0)
    assert full.items_unchanged == full.entities and full.read_requests > 0
    assert _stored(world, "partitioned") == stored


def test_an_object_that_does_not_match_the_view_fails_alone_and_is_named(world: World) -> None:
    objects = _objects(seed=5)
    world.single.apply(_definition("partly_wrong"), actor="test")
    for key, data in objects.items():
        upload(f"feature-sources/partly_wrong/{key}", data)
    upload("feature-sources/partly_wrong/zz-wrong.csv", b"customer_id,event_time,spend\n1,1796000000,0.5\n")

    record = _finish(world, world.partitioned.materialize("partly_wrong", trigger="on_demand"))

    assert record.status == "failed"
    assert [f.object_key for f in record.failed_objects] == ["zz-wrong.csv"]
    assert "visits" in json.dumps(record.failed_objects[0].model_dump())
    assert record.error is not None and "1 of 31 source object(s) failed" in record.error
    assert record.objects_read == OBJECTS and record.items_written > 0
    # The lease is released and the wrong object was not marked: the next run reads only it.
    upload("feature-sources/partly_wrong/zz-wrong.csv", b"customer_id,event_time,created_at,spend,visits\n")
    retry = world.partitioned.materialize("partly_wrong", trigger="on_demand")
    assert (retry.status, retry.objects_read, retry.objects_skipped) == ("succeeded", 1, OBJECTS)
