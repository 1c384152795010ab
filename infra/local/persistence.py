"""`mlops up --state DIR`: the registry, runs and artifacts kept across restarts of the local stack.

moto keeps everything in memory and has no persistence of its own. With a state
directory the local stack saves, and on the next start restores:

* the **physical names** of the template's buckets, tables, functions, queues, log
  groups, roles, rules and state machine: the next deploy passes them as the resources'
  names, so every name and ARN (an execution's, a function's) is the same again;
* every **DynamoDB item** of the template's tables (models, versions, aliases, audit,
  runs), read with Scan and written back with BatchWriteItem;
* every **S3 object version** of the template's buckets, in order, with its *version id*
  (registered versions pin ``s3_version_id``, and every artifact read names it), its
  metadata and last-modified time, and delete markers; the bytes are kept once per
  content in ``DIR/blobs/<sha256>``;
* every **Step Functions execution** of the template's state machines, with its input,
  output, error and history (``GET /runs/{id}`` reads it). An execution that was still
  running when the stack stopped comes back ABORTED (error ``LocalStackStopped``): moto
  cannot resume it;
* the **API key**, so `curl` commands and scripts keep working.

Not kept: SQS messages, EventBridge archive contents, CloudWatch log streams.

When: right after the stack is created (so the names and key are recorded at once),
every ``interval`` seconds while it runs (only when something changed), and on a clean
stop after the gateway has stopped taking requests. ``snapshot.json`` is replaced
atomically (written aside, then renamed) after the blobs it names are on disk, so a crash
or a kill leaves the previous complete snapshot: what was written since it (at most
``interval`` seconds of work) is lost, and nothing is half-restored. Tables are read before
buckets, so a registered version never names an object version the snapshot lacks.

moto has no API to choose an S3 version id, nor to create a finished execution: those two
steps touch moto's models (checked by ``check_moto_internals``; moto is pinned).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger("mlops.local")
FORMAT = 1
SNAPSHOT = "snapshot.json"
BLOBS = "blobs"
DEFAULT_INTERVAL_S = 10.0
STOPPED_ERROR = "LocalStackStopped"

#: Resource types whose names are kept, and the property that names them.
NAME_PROPERTIES = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Events::Rule": "Name",
}


class StateDoesNotFit(Exception):
    """The state directory was written by a stack this template cannot take back."""


def _name_of(physical_id: str) -> str:
    """A resource's name from its physical id (a queue's is its URL, a state machine's its ARN)."""
    if physical_id.startswith("https://"):
        return physical_id.rsplit("/", 1)[-1]
    if physical_id.startswith("arn:"):
        return physical_id.rsplit(":", 1)[-1]
    return physical_id


def with_names(template: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The template with each resource that has a kept name named so (and none other changed)."""
    named = json.loads(json.dumps(template))
    for logical_id, name in names.items():
        resource = named["Resources"].get(logical_id)
        if resource is None:
            continue
        prop = NAME_PROPERTIES.get(resource["Type"])
        if prop is not None:
            resource.setdefault("Properties", {}).setdefault(prop, name)
    return named


# ---- JSON for values boto3 returns (datetimes, bytes) ---------------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return {"__datetime__": value.isoformat()}
    if isinstance(value, bytes | bytearray):
        return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__datetime__"}:
            return datetime.datetime.fromisoformat(value["__datetime__"])
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


# ---- moto's models (no API for these) -------------------------------------------------------
def _account_and_region() -> tuple[str, str]:
    import boto3

    return boto3.client("sts").get_caller_identity()["Account"], boto3.session.Session().region_name


def _s3_bucket(name: str) -> Any:
    from moto.s3.models import s3_backends

    account, _ = _account_and_region()
    return s3_backends[account]["aws"].get_bucket(name)


def _versions_in_order(bucket_name: str) -> list[tuple[str, list[Any]]]:
    """Every key's versions, oldest first, delete markers in place. dict.items and list are
    copied in C under the GIL: a write in another thread cannot change them mid-copy."""
    keys = _s3_bucket(bucket_name).keys
    return [(name, list(versions)) for name, versions in list(dict.items(keys))]


class _RestoredExecution:
    """A finished execution read back from a snapshot, with what moto's Step Functions
    responses read of an execution (describe, list, history, name clashes)."""

    def __init__(self, described: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self.execution_arn = self.exec_arn = described["executionArn"]
        self.name = described["name"]
        self.state_machine_arn = described["stateMachineArn"]
        self.execution_input = described.get("input", "{}")
        self.start_date = described["startDate"]
        self.status = described["status"]
        self.stop_date = described.get("stopDate")
        self.output = described.get("output")
        self.output_details = described.get("outputDetails", {"included": True})
        self.error = described.get("error")
        self.cause = described.get("cause")
        self.exec_worker = None
        self._events = events
        if self.status == "RUNNING":  # moto cannot resume it
            self.status, self.error = "ABORTED", STOPPED_ERROR
            self.cause = "the local stack stopped while this execution was running"
            self.stop_date = self.stop_date or datetime.datetime.now(datetime.UTC)

    def to_history_output(self) -> dict[str, Any]:
        return {"events": self._events}


def _state_machine_model(arn: str) -> Any:
    from moto.stepfunctions.responses import get_backend

    account, region = _account_and_region()
    return get_backend(account, region).describe_state_machine(arn)


def check_moto_internals() -> list[str]:
    """What of moto's models this module relies on and is no longer there (empty: all fits)."""
    from moto.s3.models import FakeDeleteMarker, FakeKey, S3Backend
    from moto.s3.utils import _VersionedKeyStore

    problems = []
    if not issubclass(_VersionedKeyStore, dict):
        problems.append("moto.s3.utils._VersionedKeyStore is no longer a dict of version lists")
    for cls in (FakeKey, FakeDeleteMarker):
        getter = getattr(getattr(cls, "version_id", None), "fget", None)
        if getter is None or "_version_id" not in getter.__code__.co_names:
            problems.append(f"moto.s3.models.{cls.__name__}.version_id no longer reads _version_id")
    for method in ("put_object", "delete_object", "get_bucket"):
        if not hasattr(S3Backend, method):
            problems.append(f"moto.s3.models.S3Backend.{method} is gone")
    return problems


# ---- the snapshot ----------------------------------------------------------------------------
@dataclass
class Snapshot:
    names: dict[str, str] = field(default_factory=dict)  # logical id -> physical name
    api_key: str | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # logical id -> items
    buckets: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # logical id -> versions
    executions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # logical id -> executions

    def to_json(self) -> str:
        body = {"format": FORMAT, **{k: getattr(self, k) for k in self.__dataclass_fields__}}
        return json.dumps(_encode(body), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        body = _decode(json.loads(text))
        if body.pop("format", None) != FORMAT:
            raise StateDoesNotFit(f"the state was written in another format (expected {FORMAT})")
        return cls(**body)


def _resources(template: dict[str, Any], kind: str) -> Iterator[str]:
    return (k for k, v in template["Resources"].items() if v["Type"] == kind)


class LocalState:
    """One state directory: loads, saves and restores the local stack's data."""

    def __init__(self, directory: Path, *, interval: float = DEFAULT_INTERVAL_S) -> None:
        self.directory = directory
        self.interval = interval
        self.previous = self._load()
        self._saved_json = self.previous.to_json() if self.previous else None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._template: dict[str, Any] = {}
        self._physical: dict[str, str] = {}
        self._api_key: str | None = None

    def _load(self) -> Snapshot | None:
        path = self.directory / SNAPSHOT
        return Snapshot.from_json(path.read_text()) if path.exists() else None

    @property
    def names(self) -> dict[str, str]:
        return dict(self.previous.names) if self.previous else {}

    @property
    def api_key(self) -> str | None:
        return self.previous.api_key if self.previous else None

    # -- restore ---------------------------------------------------------------------------
    def restore(self, template: dict[str, Any], physical: dict[str, str], api_key: str) -> None:
        """Put the previous snapshot's data into the freshly deployed stack (``template`` as
        deployed, its physical ids), and keep ``api_key`` from now on."""
        self._template, self._physical, self._api_key = template, physical, api_key
        if self.previous is None:
            return
        from botocore.exceptions import ClientError

        for logical_id, items in self.previous.tables.items():
            try:
                self._restore_items(self._physical_of(logical_id), items)
            except ClientError as error:  # e.g. the table's keys changed since the snapshot
                raise StateDoesNotFit(
                    f"the items of {logical_id} in {self.directory} do not fit: {error}"
                ) from None
        for logical_id, versions in self.previous.buckets.items():
            self._restore_objects(self._physical_of(logical_id), versions)
        for logical_id, executions in self.previous.executions.items():
            machine = _state_machine_model(self._physical_of(logical_id))
            machine.executions.extend(_RestoredExecution(e["described"], e["events"]) for e in executions)
        LOGGER.info(
            "restored %d items, %d object versions and %d executions from %s",
            sum(map(len, self.previous.tables.values())),
            sum(map(len, self.previous.buckets.values())),
            sum(map(len, self.previous.executions.values())),
            self.directory,
        )

    def _physical_of(self, logical_id: str) -> str:
        if logical_id not in self._physical:
            raise StateDoesNotFit(f"{self.directory} holds data of {logical_id}, which this template lacks")
        return self._physical[logical_id]

    @staticmethod
    def _restore_items(table: str, items: list[dict[str, Any]]) -> None:
        import boto3

        dynamodb = boto3.client("dynamodb")
        for start in range(0, len(items), 25):
            pending: dict[str, Any] = {
                table: [{"PutRequest": {"Item": i}} for i in items[start : start + 25]]
            }
            while pending:
                pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    def _restore_objects(self, bucket_name: str, versions: list[dict[str, Any]]) -> None:
        from moto.s3.models import s3_backends

        account, _ = _account_and_region()
        backend = s3_backends[account]["aws"]
        bucket = backend.get_bucket(bucket_name)
        for entry in versions:
            if entry.get("delete_marker"):
                backend.delete_object(bucket_name, entry["key"])
            else:
                data = (self.directory / BLOBS / entry["sha256"]).read_bytes()
                backend.put_object(bucket_name, entry["key"], data).set_metadata(entry["metadata"])
            restored = bucket.keys.getlist(entry["key"])[-1]
            restored._version_id = entry["version_id"]
            restored.last_modified = entry["last_modified"]

    # -- save ------------------------------------------------------------------------------
    def capture(self) -> Snapshot:
        """The stack's data now. Tables first: an item never names an object version the
        snapshot lacks (objects are written before the items that name them)."""
        import boto3

        template, physical = self._template, self._physical
        snapshot = Snapshot(
            names={
                logical_id: _name_of(physical[logical_id])
                for logical_id, resource in template["Resources"].items()
                if resource["Type"] in NAME_PROPERTIES and physical.get(logical_id)
            },
            api_key=self._api_key,
        )
        dynamodb = boto3.client("dynamodb")
        for logical_id in _resources(template, "AWS::DynamoDB::Table"):
            pages = dynamodb.get_paginator("scan").paginate(
                TableName=physical[logical_id], ConsistentRead=True
            )
            snapshot.tables[logical_id] = [item for page in pages for item in page["Items"]]
        for logical_id in _resources(template, "AWS::S3::Bucket"):
            snapshot.buckets[logical_id] = self._capture_objects(logical_id, physical[logical_id])
        for logical_id in _resources(template, "AWS::StepFunctions::StateMachine"):
            snapshot.executions[logical_id] = self._capture_executions(logical_id, physical[logical_id])
        return snapshot

    def _capture_objects(self, logical_id: str, bucket_name: str) -> list[dict[str, Any]]:
        from moto.s3.models import FakeDeleteMarker

        # An object version never changes: one already in the last snapshot is not read again
        # ("null", the version of an unversioned bucket's object, is overwritten in place).
        kept = {
            (v["key"], v["version_id"]): v
            for v in (self.previous.buckets.get(logical_id, []) if self.previous else [])
            if v["version_id"] != "null"
        }
        captured = []
        for key, versions in _versions_in_order(bucket_name):
            for version in versions:
                if (key, version.version_id) in kept:
                    captured.append(kept[(key, version.version_id)])
                    continue
                entry: dict[str, Any] = {
                    "key": key,
                    "version_id": version.version_id,
                    "last_modified": version.last_modified,
                }
                if isinstance(version, FakeDeleteMarker):
                    entry["delete_marker"] = True
                else:
                    data = version.value
                    entry["sha256"] = self._keep_blob(data)
                    entry["metadata"] = dict(version.metadata)
                captured.append(entry)
        return captured

    def _keep_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self.directory / BLOBS / digest
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            aside = path.with_suffix(".partial")
            aside.write_bytes(data)
            os.replace(aside, path)
        return digest

    def _capture_executions(self, logical_id: str, machine_arn: str) -> list[dict[str, Any]]:
        import boto3

        sfn = boto3.client("stepfunctions")
        finished = {
            e["described"]["executionArn"]: e
            for e in (self.previous.executions.get(logical_id, []) if self.previous else [])
            if e["described"]["status"] != "RUNNING"
        }
        captured = []
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn):
            for listed in page["executions"]:
                arn = listed["executionArn"]
                if arn in finished:  # a finished execution never changes
                    captured.append(finished[arn])
                    continue
                described = sfn.describe_execution(executionArn=arn)
                described.pop("ResponseMetadata", None)
                events = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
                captured.append({"described": described, "events": events})
        return sorted(captured, key=lambda e: e["described"]["startDate"])

    def save(self) -> bool:
        """Write a snapshot if the data changed since the last one; True if one was written."""
        with self._lock:
            snapshot = self.capture()
            text = snapshot.to_json()
            if text == self._saved_json:
                return False
            self.directory.mkdir(parents=True, exist_ok=True)
            aside = self.directory / (SNAPSHOT + ".partial")
            aside.write_text(text)
            os.replace(aside, self.directory / SNAPSHOT)
            self._saved_json, self.previous = text, Snapshot.from_json(text)
            kept = {v["sha256"] for vs in snapshot.buckets.values() for v in vs if "sha256" in v}
            for blob in (self.directory / BLOBS).glob("*"):
                if blob.name not in kept:
                    blob.unlink()
            return True

    # -- while running ---------------------------------------------------------------------
    def start_saving(self) -> None:
        """Save now, then every ``interval`` seconds in a background thread."""
        self.save()
        self._thread = threading.Thread(target=self._save_periodically, name="local-state", daemon=True)
        self._thread.start()

    def _save_periodically(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save()
            except Exception:
                LOGGER.exception("saving the local stack's state to %s failed", self.directory)

    def stop_saving(self) -> None:
        """Stop the periodic saves and write the final snapshot."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.save()
