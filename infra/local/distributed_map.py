"""Distributed Map as Step Functions runs it, where moto's ASL interpreter (5.2.5) falls short.

moto executes a ``Mode: DISTRIBUTED`` Map with an S3 ItemReader and a ResultWriter, but:

1. **ItemReader ``s3:listObjectsV2``** reads only the first page (1,000 keys) and fails on a
   prefix with no objects. Here: every page, and an empty prefix is an empty Map.
2. **ResultWriter ``s3:putObject``** writes a manifest that lists no result files, and no
   result files. Here: ``SUCCEEDED_0.json`` / ``FAILED_0.json`` as Step Functions writes them
   (one entry per child execution: Name, Input, Output or Error and Cause, Status, dates) and
   a manifest naming them with their sizes (one file per status: Step Functions starts a new
   file every 5 GB).
3. **Tolerated failures** are parsed and ignored: a Map whose items fail always succeeds.
   Here: more failed items than ``ToleratedFailureCount`` or a larger share than
   ``ToleratedFailurePercentage`` (both 0 when neither is declared) fails the Map state with
   ``States.ExceedToleratedFailureThreshold`` (after its results are written, as Step
   Functions does), which Retry and Catch see as on AWS.
4. **``ToleratedFailurePercentage`` as an integer** (``10``, as CDK renders it) is a syntax
   error to moto's grammar, which takes only decimals there; definitions are parsed with it
   written ``10.0`` (the stored definition is the template's, unchanged).

Not filled (the project's definitions do not use them; moto refuses them when a state machine
is created): ``ItemBatcher``, ``ExecutionType: EXPRESS`` child executions, ``ItemReader``
``ReaderConfig.MaxItems`` beyond what moto reads. Child executions are not real executions
(no ``DescribeExecution`` of a child, no Map Run redrive).

``check_moto_internals`` fails loudly if the moto code this replaces changes;
``tests/infra/test_local_fidelity.py`` runs a Distributed Map through it and compares with
the behaviour above.
"""

from __future__ import annotations

import copy
import datetime
import functools
import inspect
import json
import threading
from typing import Any

_installed = threading.Event()
_lock = threading.Lock()
#: Per map run (its record object): the outcome of every item, in completion order.
_RESULTS = "_mlops_item_results"
_ITEM_INPUT = "_mlops_item_input"
_DECLARED = "_mlops_declared_tolerance"


def respell_definition(definition: str) -> str:
    """``"ToleratedFailurePercentage": 10`` -> ``10.0`` (moto's grammar wants a decimal)."""
    try:
        document = json.loads(definition)
    except ValueError:
        return definition
    changed = False

    def walk(node: Any) -> Any:
        nonlocal changed
        if isinstance(node, dict):
            value = node.get("ToleratedFailurePercentage")
            if isinstance(value, int) and not isinstance(value, bool):
                node["ToleratedFailurePercentage"] = float(value)
                changed = True
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)
        return node

    walk(document)
    return json.dumps(document) if changed else definition


def _iso(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _list_all_objects(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    s3 = boto_client_for(
        region=resource_runtime_part.region, service="s3", state_credentials=state_credentials
    )
    parameters = dict(env.stack.pop())
    contents: list[dict[str, Any]] = []
    while True:
        response = s3.list_objects_v2(**parameters)
        for item in response.get("Contents", []):
            entry = dict(item)
            if isinstance(entry.get("LastModified"), datetime.datetime):
                entry["LastModified"] = _iso(entry["LastModified"])
            contents.append(entry)
        token = response.get("NextContinuationToken")
        if not response.get("IsTruncated") or not token:
            break
        parameters["ContinuationToken"] = token
    env.stack.append(contents)


def _write_results(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
    from moto.stepfunctions.parser.asl.utils.boto_client import boto_client_for

    parameters = dict(env.stack.pop())
    env.stack.pop()  # the items' outputs: written from the per-item results instead
    s3 = boto_client_for(
        region=resource_runtime_part.region, service="s3", state_credentials=state_credentials
    )
    record = env.map_run_record_pool_manager.get_all()[-1]
    map_run_id = record.map_run_arn.split(":")[-1]
    prefix = str(parameters.get("Prefix", ""))
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    folder = f"{prefix}{map_run_id}/"
    bucket = parameters["Bucket"]
    results: list[dict[str, Any]] = sorted(getattr(record, _RESULTS, []), key=lambda r: r["_index"])
    files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
    for status in ("SUCCEEDED", "FAILED"):
        entries = [{k: v for k, v in r.items() if k != "_index"} for r in results if r["Status"] == status]
        if not entries:
            continue
        body = json.dumps(entries).encode()
        key = f"{folder}{status}_0.json"
        s3.put_object(Bucket=bucket, Key=key, Body=body)
        files[status].append({"Key": key, "Size": len(body)})
    manifest = {"DestinationBucket": bucket, "MapRunArn": record.map_run_arn, "ResultFiles": files}
    key = f"{folder}manifest.json"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest).encode())
    env.stack.append({"MapRunArn": record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}})


def _record_item_input(original: Any) -> Any:
    @functools.wraps(original)
    def eval_input(self: Any, env_frame: Any) -> None:
        original(self, env_frame)
        setattr(env_frame, _ITEM_INPUT, copy.deepcopy(env_frame.states.get_input()))

    return eval_input


def _record_item_outcome(original: Any) -> Any:
    @functools.wraps(original)
    def eval_job(self: Any, env: Any, job: Any) -> None:
        from moto.stepfunctions.parser.asl.eval.program_state import ProgramError

        started = datetime.datetime.now(datetime.UTC)
        original(self, env, job)
        stopped = datetime.datetime.now(datetime.UTC)
        record = self._map_run_record
        item_input = getattr(env, _ITEM_INPUT, job.job_input)
        entry: dict[str, Any] = {
            "_index": job.job_index,
            "ExecutionArn": f"{record.map_run_arn.replace(':mapRun:', ':execution:')}:{job.job_index}",
            "Name": str(job.job_index),
            "Input": json.dumps(item_input),
            "InputDetails": {"Included": True},
            "StateMachineArn": record.map_run_arn.rsplit("/", 1)[0].replace(":mapRun:", ":stateMachine:"),
            "StartDate": _iso(started),
            "StopDate": _iso(stopped),
            "RedriveCount": 0,
        }
        state = env.program_state()
        if job.job_output is None and isinstance(state, ProgramError):
            details = state.error or {}
            entry |= {
                "Status": "FAILED",
                "Error": details.get("error", "States.Runtime"),
                "Cause": details.get("cause", ""),
            }
        elif job.job_output is None and not _ended(state):
            entry |= {
                "Status": "FAILED",
                "Error": "States.Runtime",
                "Cause": "the child execution did not end",
            }
        else:
            entry |= {
                "Status": "SUCCEEDED",
                "Output": json.dumps(job.job_output),
                "OutputDetails": {"Included": True},
            }
        with _lock:
            if not hasattr(record, _RESULTS):
                setattr(record, _RESULTS, [])
            getattr(record, _RESULTS).append(entry)

    return eval_job


def _ended(state: Any) -> bool:
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramEnded

    return isinstance(state, ProgramEnded)


def _remember_declared_tolerance(original: Any) -> Any:
    @functools.wraps(original)
    def from_state_props(self: Any, state_props: Any) -> None:
        from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
            ToleratedFailureCountDecl,
            ToleratedFailurePercentageDecl,
        )

        original(self, state_props)
        declared = (
            state_props.get(ToleratedFailureCountDecl) is not None,
            state_props.get(ToleratedFailurePercentageDecl) is not None,
        )
        setattr(self, _DECLARED, declared)

    return from_state_props


def exceeds_tolerance(failed: int, total: int, *, count: int | None, percentage: float | None) -> bool:
    """Step Functions' rule: the Map Run fails when the failed items exceed the tolerated count
    or their share exceeds the tolerated percentage (with neither declared, any failure)."""
    if count is None and percentage is None:
        return failed > 0
    over_count = count is not None and failed > count
    over_share = percentage is not None and total > 0 and failed * 100.0 / total > percentage
    return over_count or over_share


def _enforce_tolerance(original: Any) -> Any:
    @functools.wraps(original)
    def eval_execution(self: Any, env: Any) -> None:
        from moto.stepfunctions.parser.api import HistoryEventType, MapRunFailedEventDetails
        from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
            FailureEvent,
            FailureEventException,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
            StatesErrorName,
        )
        from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
            StatesErrorNameType,
        )
        from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

        before = {id(r) for r in env.map_run_record_pool_manager.get_all()}
        original(self, env)
        declared_count, declared_share = getattr(self, _DECLARED, (False, False))
        for record in env.map_run_record_pool_manager.get_all():
            if id(record) in before:
                continue
            counter = record.item_counter
            failed = counter.failed.get() + counter.timed_out.get() + counter.aborted.get()
            if not exceeds_tolerance(
                failed,
                counter.total.get(),
                count=record.tolerated_failure_count if declared_count else None,
                percentage=record.tolerated_failure_percentage if declared_share else None,
            ):
                continue
            error = StatesErrorNameType.StatesExceedToleratedFailureThreshold.to_name()
            cause = "The specified tolerated failure threshold was exceeded"
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold),
                    event_type=HistoryEventType.MapRunFailed,
                    event_details=EventDetails(  # type: ignore[typeddict-item]  # moto builds it so too
                        mapRunFailedEventDetails=MapRunFailedEventDetails(error=error, cause=cause)
                    ),
                )
            )

    return eval_execution


def _respelled_parse(original: Any) -> Any:
    @functools.wraps(original)
    def parse(definition: str) -> Any:
        return original(respell_definition(definition))

    return parse


def _targets() -> dict[str, Any]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval import (
        resource_eval_s3 as reader_s3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3 as writer_s3,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.state_map import StateMap
    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    return {
        "reader": reader_s3.ResourceEvalS3,
        "writer": writer_s3.ResourceEvalS3,
        "worker": worker.DistributedItemProcessorWorker,
        "state_map": StateMap,
        "parser": AmazonStateLanguageParser,
    }


def check_moto_internals() -> list[str]:
    """What changed in the moto code these patches replace (empty when nothing did)."""
    problems: list[str] = []
    try:
        targets = _targets()
    except ImportError as error:
        return [f"moto's Distributed Map modules moved: {error}"]
    expected = {
        ("reader", "_handle_list_objects_v2"): ["env", "resource_runtime_part", "state_credentials"],
        ("writer", "_handle_put_object"): ["env", "resource_runtime_part", "state_credentials"],
        ("worker", "_eval_job"): ["self", "env", "job"],
        ("worker", "_eval_input"): ["self", "env_frame"],
        ("state_map", "from_state_props"): ["self", "state_props"],
        ("state_map", "_eval_execution"): ["self", "env"],
        ("parser", "parse"): ["definition"],
    }
    for (target, name), parameters in expected.items():
        method = getattr(targets[target], name, None)
        if method is None or list(inspect.signature(method).parameters) != parameters:
            problems.append(f"{targets[target].__qualname__}.{name}({', '.join(parameters)}) changed")
    return problems


def install() -> None:
    """Patch moto's interpreter (idempotent; ``lambda_runtime.install`` calls it)."""
    with _lock:
        if _installed.is_set():
            return
        problems = check_moto_internals()
        if problems:
            raise RuntimeError("the local Distributed Map no longer fits moto: " + "; ".join(problems))
        targets = _targets()
        targets["reader"]._handle_list_objects_v2 = staticmethod(_list_all_objects)
        targets["writer"]._handle_put_object = staticmethod(_write_results)
        worker = targets["worker"]
        worker._eval_input = _record_item_input(worker._eval_input)
        worker._eval_job = _record_item_outcome(worker._eval_job)
        state_map = targets["state_map"]
        state_map.from_state_props = _remember_declared_tolerance(state_map.from_state_props)
        state_map._eval_execution = _enforce_tolerance(state_map._eval_execution)
        parser = targets["parser"]
        parser.parse = staticmethod(_respelled_parse(parser.parse))
        _installed.set()
