"""Point-in-time training sets from the CLI: `mlops features training-set` (built here, on this
machine, by the same join BuildTrainingSet runs) and the labels of `mlops train --labels`.

Labels are a local CSV file, or the key of one under ``datasets/`` in the stack's bucket.
Views are the registered ones (``GET /feature-views/{view}``, with their versions), or read
from definition files (``--definitions``); sources are read from the stack's bucket as the
workflow reads them, or from local files (``--source VIEW=FILE``): with both, no stack is
needed at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.cli.tables import Rows
from mlops_core.features.entities import FeatureViewDefinition, StoredFeatureView
from mlops_core.features.point_in_time import TrainingSet, build_training_set, parse_labels
from mlops_core.features.sources import ParsedObject, list_source_objects, parse_object, read_source_object
from mlops_core.storage import keys
from mlops_core.storage.s3 import ArtifactStore


class BadTrainingSetInput(Exception):
    """A labels file, a view or a source that cannot be used (exit 2)."""


@dataclass(frozen=True)
class LabelColumns:
    entity: str | None
    timestamp: str
    label: str


def split_views(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BadTrainingSetInput("name at least one feature view (comma-separated)")
    return names


def parse_sources(pairs: Sequence[str]) -> dict[str, Path]:
    """``VIEW=FILE`` pairs."""
    found: dict[str, Path] = {}
    for pair in pairs:
        view, sep, file = pair.partition("=")
        if not sep or not view or not file:
            raise BadTrainingSetInput(f"--source {pair!r}: write VIEW=FILE")
        found[view.strip()] = Path(file)
    return found


def is_local(labels: str) -> bool:
    return Path(labels).is_file()


def read_labels_bytes(labels: str, store: Callable[[], ArtifactStore]) -> bytes:
    """The labels' bytes: a local file, or an object under datasets/ in the stack's bucket."""
    if is_local(labels):
        return Path(labels).read_bytes()
    if not labels.startswith(keys.DATASETS_PREFIX):
        raise BadTrainingSetInput(
            f"labels {labels!r}: no such file (or an S3 key under {keys.DATASETS_PREFIX})"
        )
    return store().get(labels).data


def labels_upload_key(data: bytes) -> str:
    """Where `mlops train --labels FILE` uploads a local labels file (content-addressed)."""
    return keys.uploaded_labels(hashlib.sha256(data).hexdigest())


def build_offline(
    labels: bytes,
    columns: LabelColumns,
    views: Sequence[tuple[FeatureViewDefinition, int | None]],
    local_sources: dict[str, Path],
    store: Callable[[], ArtifactStore],
) -> TrainingSet:
    """The point-in-time join of ``labels`` with ``views``' sources (local files where given)."""
    unknown = sorted(set(local_sources) - {v.name for v, _ in views})
    if unknown:
        raise BadTrainingSetInput(f"--source names views not joined: {', '.join(unknown)}")
    parsed = parse_labels(
        labels,
        entity=columns.entity or views[0][0].entity.name,
        timestamp=columns.timestamp,
        label=columns.label,
    )
    joined: list[tuple[FeatureViewDefinition, list[ParsedObject], int | None]] = []
    for view, version in views:
        if view.name in local_sources:
            path = local_sources[view.name]
            try:
                data = path.read_bytes()
            except OSError as error:
                raise BadTrainingSetInput(f"--source {view.name}={path}: {error}") from None
            objects = [parse_object(view, path.name, data)]
        else:
            artifacts = store()
            objects = [read_source_object(artifacts, view, o) for o in list_source_objects(artifacts, view)]
        joined.append((view, objects, version))
    return build_training_set(parsed, joined)


def registered(detail: dict[str, Any]) -> tuple[FeatureViewDefinition, int]:
    """A view from ``GET /feature-views/{view}``: its definition in force and version."""
    stored = StoredFeatureView.model_validate(detail["view"])
    return stored.definition, stored.version


def report_lines(training_set: TrainingSet) -> tuple[list[str], Rows]:
    report = training_set.report()
    lines = [
        f"{report.rows} label rows: {report.complete} complete, {report.incomplete} lacking features "
        "(all written, with a status per view)"
    ]
    lines += [
        f"  {v.view}" + (f" v{v.version}" if v.version else "") + f": {v.ok} ok, {v.missing} missing, "
        f"{v.expired} expired (ttl {v.ttl_seconds} s); {v.source_rows} source rows"
        + (f", {v.source_rows_rejected} rejected" if v.source_rows_rejected else "")
        for v in report.views
    ]
    table = Rows("view", "feature", "missing", "expired", "null", ids=("view", "feature"))
    for feature in report.features:
        table.add_row(
            feature.view, feature.feature, str(feature.missing), str(feature.expired), str(feature.null)
        )
    return lines, table
