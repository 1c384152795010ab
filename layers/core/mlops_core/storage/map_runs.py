"""A Distributed Map run's results as its ResultWriter leaves them in S3: a manifest naming
result files of succeeded, failed and pending child executions (each file a JSON list of
entries: Name, Input, Output or Error and Cause, Status). Read by the steps that close a
batch scoring job and a partitioned materialization."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mlops_core.storage.s3 import ArtifactStore


@dataclass
class MapRunResults:
    succeeded: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    #: Items the Map never ran (it stopped first): failures of what they stood for.
    pending: list[dict[str, Any]] = field(default_factory=list)


def read_map_run(store: ArtifactStore, manifest_key: str) -> MapRunResults:
    manifest = json.loads(store.get(manifest_key).data)
    files = manifest.get("ResultFiles", {})
    return MapRunResults(
        succeeded=_entries(store, files.get("SUCCEEDED", [])),
        failed=_entries(store, files.get("FAILED", [])),
        pending=_entries(store, files.get("PENDING", [])),
    )


def _entries(store: ArtifactStore, files: list[dict[str, Any]]) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for file in files:
        entries.extend(json.loads(store.get(str(file["Key"])).data))
    return entries


def entry_input(entry: dict[str, Any]) -> dict[str, Any]:
    """The child execution's input (``{}`` when it is not a JSON object)."""
    try:
        value = json.loads(entry.get("Input") or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def readable_cause(cause: str) -> str:
    """A Lambda error's cause is its error payload as JSON: keep the message, drop the trace."""
    try:
        payload = json.loads(cause)
    except ValueError:
        return cause
    if isinstance(payload, dict) and "errorMessage" in payload:
        return str(payload["errorMessage"])
    return cause
