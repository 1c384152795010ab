"""Partitioned materialization's decisions without AWS: when a run is partitioned, the ETag
a child reads from either spelling of the ItemReader's entry, the histogram's summed changes,
and what the CLI prints of a partitioned run."""

from __future__ import annotations

from infra.cli.features import run_lines
from mlops_core.features.entities import FeatureViewDefinition
from mlops_core.features.materialization import Histogram
from mlops_core.features.partitions import PartitionedRuns, PartitionItem
from mlops_core.storage.s3 import ListedObject
from mlops_core.storage.stepfunctions import MaterializationWorkflow

#: The real starter, never called by ``needed``.
WORKFLOW = MaterializationWorkflow("arn:aws:states:us-east-1:123456789012:stateMachine:partitions")


def _view(path: str) -> FeatureViewDefinition:
    return FeatureViewDefinition(
        name="v",
        owner="o",
        entity={"name": "id", "type": "int64"},
        features=[{"name": "x", "type": "float64"}],
        source={"format": "csv", "path": path, "event_timestamp": "t"},
        ttl="1d",
    )


def _objects(*sizes: int) -> list[ListedObject]:
    return [ListedObject(key=f"feature-sources/v/{i}.csv", etag="e", size=s) for i, s in enumerate(sizes)]


def test_a_run_is_partitioned_only_beyond_the_limit_in_several_objects_of_a_prefix() -> None:
    runs = PartitionedRuns(WORKFLOW, single_run_max_bytes=1000)
    prefix = _view("feature-sources/v/")
    assert not runs.needed(prefix, _objects(400, 600))  # at the limit: one function
    assert runs.needed(prefix, _objects(400, 601))
    assert not runs.needed(prefix, _objects(5000))  # one object: nothing to split
    assert not runs.needed(_view("feature-sources/v/all.csv"), _objects(900, 900))
    assert not PartitionedRuns(None, single_run_max_bytes=1000).needed(prefix, _objects(900, 900))


def test_a_child_reads_the_etag_as_step_functions_or_s3_spell_it() -> None:
    base = {
        "view": "v",
        "run_id": "r",
        "view_version": 1,
        "source_prefix": "feature-sources/v/",
        "incremental": True,
        "compare": False,
        "end_ms": 1,
        "now_ms": 1,
        "key": "feature-sources/v/a.csv",
        "size": 3,
    }
    for field in ("Etag", "ETag"):
        item = PartitionItem.model_validate(base | {"listed": {field: '"abc"', "Key": "k"}})
        assert item.etag == "abc"


def test_summed_changes_keep_a_replaced_row_that_another_child_added() -> None:
    histogram = Histogram({}, 60_000)
    # child A replaced a row child B wrote (-1 in a bucket B adds +1 to): summed first, exact
    histogram.apply({"0": -1 + 1, "60000": 1})
    assert histogram.total == 1 and histogram.as_state() == {"60000": 1}


def test_the_cli_says_a_run_was_partitioned_and_names_its_failed_objects() -> None:
    run = {
        "view": "v",
        "run_id": "r",
        "status": "failed",
        "error": "1 of 3 source object(s) failed",
        "objects_read": 2,
        "objects_skipped": 0,
        "rows_read": 10,
        "rows_rejected": 0,
        "rows_outside_window": 0,
        "entities": 5,
        "items_written": 5,
        "items_unchanged": 0,
        "write_requests": 5,
        "read_requests": 0,
        "duration_ms": 10,
        "partitioned": True,
        "failed_objects": [{"object_key": "c.csv", "error": "column visits is missing"}],
    }
    lines = run_lines(run)
    assert lines[1].startswith("  partitioned:")
    assert lines[-1] == "  failed object c.csv: column visits is missing"
