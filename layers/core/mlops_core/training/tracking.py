"""Training runs: what was trained, on which data, with which code, and what came of it.

Items in the metadata table:

Keys from ``mlops_core.storage.keys``:

- ``RUN#{run_id} / RUN`` — the run: request, dataset (key, S3 version, sha256), status,
  best candidate, evaluation and gate decision, registered version, error, and
  ``triggered_by`` (drift run and event) when the retraining loop started it; indexed under
  ``gsi1pk = RUNS#{model}`` (newest first) so a model's runs can be listed.
- ``RUN#{run_id} / CANDIDATE#{id}`` — one trained candidate: family, params, seed,
  metrics, artifact, duration, package versions.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any, Literal

from mlops_core.clock import now_iso, parse_iso
from mlops_core.errors import Invalid, NotFound, detail
from mlops_core.storage import keys
from mlops_core.storage.dynamo import Item, MetadataTable

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


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id):
        raise Invalid(
            f"invalid run id {run_id!r}",
            details=[detail(["run_id"], f"must match {RUN_ID_PATTERN}", "pattern")],
        )
    return run_id


def new_run_id(model_name: str) -> str:
    """A readable, unique run id (also the Step Functions execution's name)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"{model_name[:40].replace('.', '-')}-{stamp}-{secrets.token_hex(3)}"


def status_before_record(execution_status: str) -> RunStatus | Literal["PENDING"]:
    """A run's status while it has no record yet: started (ValidateData has not written
    it) or ended before it could (failed or stopped)."""
    return "PENDING" if execution_status == "RUNNING" else "FAILED"


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

    def start(
        self,
        run_id: str,
        model_name: str,
        request: dict[str, Any],
        *,
        triggered_by: dict[str, Any] | None = None,
    ) -> None:
        """Record a run as RUNNING; a retried start rewrites the same item. ``triggered_by``:
        the drift run and event that started it (the retraining loop), when one did."""
        started = now_iso()
        lineage = {"triggered_by": triggered_by} if triggered_by else {}
        self.table.put(
            {
                **lineage,
                keys.PARTITION_KEY: keys.run_pk(run_id),
                keys.SORT_KEY: keys.RUN_SK,
                keys.LIST_INDEX_PARTITION_KEY: keys.model_runs(model_name),
                keys.LIST_INDEX_SORT_KEY: started,
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
            keys.run_pk(run_id),
            keys.RUN_SK,
            update=f"SET {assignments}",
            condition="attribute_exists(pk)",
            names=names,
            values=values,
        )

    def finish(self, run_id: str, status: RunStatus, **fields: Any) -> None:
        run = self.get(run_id)
        ended = now_iso()
        duration = (parse_iso(ended) - parse_iso(run["started_at"])).total_seconds()
        self.update(run_id, status=status, ended_at=ended, duration_seconds=duration, **fields)

    def record_candidate(self, run_id: str, candidate: dict[str, Any]) -> None:
        self.table.put(
            {
                keys.PARTITION_KEY: keys.run_pk(run_id),
                keys.SORT_KEY: keys.candidate_sk(candidate["candidate_id"]),
                **candidate,
            }
        )

    def get(self, run_id: str) -> Item:
        check_run_id(run_id)
        item = self.table.get(keys.run_pk(run_id), keys.RUN_SK, consistent=True)
        if item is None:
            raise NotFound(f"run '{run_id}' not found")
        return _public(item)

    def get_with_candidates(self, run_id: str) -> Item:
        run = self.get(run_id)
        run["candidates"] = [
            _public(c) for c in self.table.query(keys.run_pk(run_id), sk_prefix=keys.CANDIDATE_PREFIX)
        ]
        return run

    def list_for_model(
        self, model_name: str, *, limit: int = 50, attributes: Sequence[str] | None = None
    ) -> list[Item]:
        """A model's runs, newest first; with ``attributes``, only those fields of each."""
        items = self.table.query(
            keys.model_runs(model_name),
            index=keys.LIST_INDEX,
            newest_first=True,
            limit=limit,
            attributes=attributes,
        )
        return [_public(i) for i in items]


def _public(item: Item) -> Item:
    return {k: v for k, v in item.items() if k not in keys.KEY_ATTRIBUTES}
