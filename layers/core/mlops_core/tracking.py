"""Training runs: what was trained, on which data, with which code, and what came of it.

Items in the metadata table:

- ``RUN#{run_id} / RUN`` — the run: request, dataset (key, S3 version, sha256), status,
  best candidate, evaluation and gate decision, registered version, error; indexed under
  ``gsi1pk = RUNS#{model}`` (newest first) so a model's runs can be listed.
- ``RUN#{run_id} / CANDIDATE#{id}`` — one trained candidate: family, params, seed,
  metrics, artifact, duration, package versions.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Literal

from mlops_core.dynamo import Item, MetadataTable
from mlops_core.errors import Invalid, NotFound, detail

RunStatus = Literal["RUNNING", "SUCCEEDED", "REJECTED", "FAILED"]
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)
TRACKED_PACKAGES = (
    "numpy",
    "scipy",
    "scikit-learn",
    "skl2onnx",
    "onnx",
    "onnxruntime",
    "aws-lambda-powertools",
)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise Invalid(
            f"invalid run id {run_id!r}",
            details=[detail(["run_id"], f"must match {RUN_ID_PATTERN}", "pattern")],
        )
    return run_id


def package_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model, as installed in this function."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def code_version() -> str:
    """The deployed code's version (set at synth from git), or 'unknown'."""
    return os.environ.get("CODE_VERSION", "unknown")


class RunTracker:
    def __init__(self, table: MetadataTable) -> None:
        self.table = table

    def start(self, run_id: str, model_name: str, request: dict[str, Any]) -> None:
        """Record a run as RUNNING; a retried start rewrites the same item."""
        started = now_iso()
        self.table.put(
            {
                "pk": f"RUN#{run_id}",
                "sk": "RUN",
                "gsi1pk": f"RUNS#{model_name}",
                "gsi1sk": started,
                "run_id": run_id,
                "model_name": model_name,
                "status": "RUNNING",
                "request": request,
                "started_at": started,
                "code_version": code_version(),
            }
        )

    def update(self, run_id: str, **fields: Any) -> None:
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":v{i}": value for i, value in enumerate(fields.values())}
        assignments = ", ".join(f"#f{i} = :v{i}" for i in range(len(fields)))
        self.table.update(
            f"RUN#{run_id}",
            "RUN",
            update=f"SET {assignments}",
            condition="attribute_exists(pk)",
            names=names,
            values=values,
        )

    def finish(self, run_id: str, status: RunStatus, **fields: Any) -> None:
        run = self.get(run_id)
        ended = now_iso()
        started = datetime.fromisoformat(run["started_at"].replace("Z", "+00:00"))
        duration = (datetime.fromisoformat(ended.replace("Z", "+00:00")) - started).total_seconds()
        self.update(run_id, status=status, ended_at=ended, duration_seconds=duration, **fields)

    def record_candidate(self, run_id: str, candidate: dict[str, Any]) -> None:
        self.table.put({"pk": f"RUN#{run_id}", "sk": f"CANDIDATE#{candidate['candidate_id']}", **candidate})

    def get(self, run_id: str) -> Item:
        check_run_id(run_id)
        item = self.table.get(f"RUN#{run_id}", "RUN", consistent=True)
        if item is None:
            raise NotFound(f"run '{run_id}' not found")
        return _public(item)

    def get_with_candidates(self, run_id: str) -> Item:
        run = self.get(run_id)
        run["candidates"] = [_public(c) for c in self.table.query(f"RUN#{run_id}", sk_prefix="CANDIDATE#")]
        return run

    def list_for_model(self, model_name: str, *, limit: int = 50) -> list[Item]:
        items = self.table.query(f"RUNS#{model_name}", index="gsi1", newest_first=True, limit=limit)
        return [_public(i) for i in items]


def _public(item: Item) -> Item:
    return {k: v for k, v in item.items() if k not in {"pk", "sk", "gsi1pk", "gsi1sk"}}
