"""Run the project's Lambda handlers in-process, inside moto (no Docker).

moto runs Lambda code in Docker containers; the local stack and the tests replace that
one step (``LambdaFunction._invoke_lambda``) with an import of the handler module from
``functions/`` and a direct call, with a proper context object. Everything around it is
moto's own: ``lambda:Invoke``, Step Functions' Task and Map states, Retry and Catch.

Which folder a function's code comes from is read from its ``mlops:source`` tag, which
``infra/`` puts on every function (for example ``functions/training``); the handler
string names the module in it (``validate_data.lambda_handler``).

This touches moto internals: ``check_moto_internals`` fails loudly if they change, and a
test calls it. moto is pinned in pyproject.toml.
"""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE_TAG = "mlops:source"
PINNED_MOTO = "5.2.5"
#: HTTP connections each boto3 client keeps per host in this process (botocore's default is 10).
#: On Lambda a container serves one request at a time, so 10 is plenty; here one process
#: plays every warm container of every function and N concurrent requests share each
#: process-wide client (mlops_core.aws), so past 10 urllib3 closes the extra connections
#: ("Connection pool is full, discarding connection") and opens new ones on the next burst.
LOCAL_MAX_POOL_CONNECTIONS = 64
_lock = threading.Lock()
_installed = threading.Event()
_dynamodb_lock = threading.Lock()


@dataclass
class LocalLambdaContext:
    """What Lambda passes as ``context``: enough for Powertools and our handlers."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: float
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class HandlerNotFound(Exception):
    """A function's handler could not be imported from its source folder."""


def handler_module(source: str, handler: str) -> tuple[str, str]:
    """``("functions/training", "validate_data.lambda_handler")`` -> module and attribute."""
    module, attribute = handler.rsplit(".", 1)
    return f"{source.strip('/').replace('/', '.')}.{module}", attribute


def load_handler(source: str, handler: str, environment: dict[str, str] | None = None) -> Any:
    """Import a handler (once per process, like a warm container) and return the callable.

    Handlers read their settings (table names, Powertools service name...) when they are
    imported, so the function's own environment is laid over the process's for the
    import and taken off again: functions of the stack keep their own settings although
    they share one process.
    """
    module_name, attribute = handler_module(source, handler)
    with _lock:
        # Handlers are imported as functions.<name>.<module> from this checkout.
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        module = sys.modules.get(module_name)
        if module is None:
            with _environment(environment or {}):
                try:
                    module = importlib.import_module(module_name)
                except ImportError as error:
                    raise HandlerNotFound(f"cannot import {module_name}: {error}") from error
    return getattr(module, attribute)


@contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    """Lay ``variables`` over the process environment; put back the values they replaced.

    Variables the process did not have stay set afterwards: deleting one while another
    thread iterates ``os.environ`` (urllib's proxy lookup when a Step Functions Map
    iteration creates a boto3 client, say) raises ``KeyError`` in that thread. Settings
    ignore variables they do not name, so a leftover one changes nothing.
    """
    saved = {name: os.environ[name] for name in variables if name in os.environ}
    os.environ.update(variables)
    try:
        yield
    finally:
        os.environ.update(saved)


def invoke_handler(function: Any, event: Any) -> tuple[str, bool, str]:
    """Call the function's handler; the return shape is what moto's ``_invoke_lambda`` gives."""
    tags = function.tags or {}
    source = tags.get(SOURCE_TAG)
    if not source:
        error = {
            "errorType": "HandlerNotFound",
            "errorMessage": f"{function.function_name} has no {SOURCE_TAG} tag",
        }
        return json.dumps(error), True, ""
    context = LocalLambdaContext(
        function_name=function.function_name,
        invoked_function_arn=function.function_arn,
        memory_limit_in_mb=int(function.memory_size or 128),
        timeout_seconds=float(function.timeout or 3),
    )
    payload = json.loads(event) if isinstance(event, str | bytes) and event else (event or {})
    try:
        fn = load_handler(source, function.handler, dict(function.environment_vars or {}))
        result = fn(payload, context)
        return json.dumps(result), False, ""
    except Exception as error:
        # Lambda's error payload: Step Functions reads errorType as the error name, so
        # Retry and Catch match on the Python exception's class name, as on AWS.
        failure = {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "stackTrace": traceback.format_tb(error.__traceback__),
        }
        return json.dumps(failure), True, ""


#: Runs an ``Event`` (asynchronous) invocation: ``(function name, payload)``. The local stack
#: registers one that runs the function as its other triggers do (one request at a time per
#: function); without one (tests on ``mock_aws``) it runs on a thread of its own.
AsyncInvoke = Callable[[str, Any], None]
_async_invokers: list[AsyncInvoke] = []
#: Asynchronous invocations still running on their own threads (tests wait for them).
_async_threads: list[threading.Thread] = []


def run_asynchronous_invocations_with(invoke: AsyncInvoke | None) -> None:
    """Route ``InvocationType=Event`` invocations through ``invoke`` (None: threads again)."""
    _async_invokers[:] = [invoke] if invoke is not None else []


def wait_for_asynchronous_invocations(timeout: float = 30.0) -> None:
    """Join the threads of asynchronous invocations started so far (tests)."""
    until = time.monotonic() + timeout
    while _async_threads:
        _async_threads.pop().join(timeout=max(0.0, until - time.monotonic()))


def _invoke(function: Any, body: Any, request_headers: Any, response_headers: Any) -> str | bytes:
    """moto's ``LambdaFunction.invoke``, except that an ``Event`` invocation returns at once
    (202, as Lambda does) and runs afterwards: moto would run it inside the caller's request."""
    invocation_type = {k.lower(): v for k, v in dict(request_headers or {}).items()}.get(
        "x-amz-invocation-type", "RequestResponse"
    )
    if invocation_type != "Event":
        answer: str | bytes = _original_invoke[0](function, body, request_headers, response_headers)
        return answer
    payload = json.loads(body) if isinstance(body, str | bytes) and body else (body or {})
    if _async_invokers:
        _async_invokers[0](function.function_name, payload)
        return ""

    def run() -> None:
        _, errored, _ = invoke_handler(function, payload)
        if errored:  # Lambda would retry twice, then drop it; here it is logged
            logging.getLogger(__name__).error("asynchronous invocation of %s failed", function.function_name)

    thread = threading.Thread(target=run, name=f"async-{function.function_name}", daemon=True)
    _async_threads.append(thread)
    thread.start()
    return ""


_original_invoke: list[Any] = []


def check_moto_internals() -> None:
    """Fail loudly if the moto internals this module replaces have changed."""
    import moto
    from moto.awslambda.models import LambdaFunction
    from moto.stepfunctions.models import StateMachine
    from moto.stepfunctions.responses import get_backend

    problems = []
    if moto.__version__ != PINNED_MOTO:
        problems.append(f"moto is {moto.__version__}, the patches were written for {PINNED_MOTO}")
    invoke = getattr(LambdaFunction, "_invoke_lambda", None)
    if invoke is None or list(inspect.signature(invoke).parameters) != ["self", "event"]:
        problems.append("moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) changed")
    public_invoke = _original_invoke[0] if _original_invoke else LambdaFunction.invoke
    if list(inspect.signature(public_invoke).parameters) != [
        "self",
        "body",
        "request_headers",
        "response_headers",
    ]:
        problems.append(
            "moto.awslambda.models.LambdaFunction.invoke(self, body, request_headers, ...) changed"
        )
    for name in (
        "create_from_cloudformation_json",
        "delete_from_cloudformation_json",
        "update_from_cloudformation_json",
    ):
        if not hasattr(StateMachine, name):
            problems.append(f"moto.stepfunctions.models.StateMachine.{name} is gone")
    from moto.dynamodb.responses import DynamoHandler

    if list(inspect.signature(DynamoHandler.call_action).parameters) != ["self"]:
        problems.append("moto.dynamodb.responses.DynamoHandler.call_action(self) changed")
    if list(inspect.signature(get_backend).parameters) != ["account", "region"]:
        problems.append("moto.stepfunctions.responses.get_backend(account_id, region) changed")
    from botocore.config import Config
    from moto.cloudformation.parsing import clean_json

    if "max_pool_connections" not in Config.OPTION_DEFAULTS:
        problems.append("botocore.config.Config.OPTION_DEFAULTS has no max_pool_connections")
    # infra/local/dropped_properties.py resolves template values with moto's own resolver.
    if list(inspect.signature(clean_json).parameters) != ["resource_json", "resources_map"]:
        problems.append("moto.cloudformation.parsing.clean_json(resource_json, resources_map) changed")
    from infra.local import distributed_map, moto_dynamodb, persistence

    problems.extend(distributed_map.check_moto_internals())
    problems.extend(persistence.check_moto_internals())
    problems.extend(moto_dynamodb.check_moto_internals())
    if problems:
        raise RuntimeError("the local Lambda runtime no longer fits moto: " + "; ".join(problems))


def _state_machine_from_cloudformation(  # moto calls it by keyword, with its own signature
    cls: Any,  # noqa: ARG001
    resource_name: str,
    cloudformation_json: dict[str, Any],
    account_id: str,
    region_name: str,
    **_: Any,
) -> Any:
    from moto.stepfunctions.responses import get_backend
    from moto.stepfunctions.utils import cfn_to_api_tags

    properties = cloudformation_json["Properties"]
    return get_backend(account_id, region_name).create_state_machine(
        properties.get("StateMachineName", resource_name),
        properties.get("DefinitionString", ""),
        properties.get("RoleArn", ""),
        tags=cfn_to_api_tags(properties.get("Tags", [])),
    )


def _delete_state_machine(  # moto calls it by keyword, with its own signature
    cls: Any,  # noqa: ARG001
    resource_name: str,
    cloudformation_json: dict[str, Any],  # noqa: ARG001
    account_id: str,
    region_name: str,
) -> None:
    from moto.stepfunctions.responses import get_backend

    get_backend(account_id, region_name).delete_state_machine(resource_name)


@contextmanager
def dynamodb_requests_held() -> Iterator[None]:
    """No DynamoDB request runs while the block does (``install`` makes each one atomic under
    this lock): the local stream poller reads a stream between two requests, never during one."""
    with _dynamodb_lock:
        yield


def _atomic(call_action: Any) -> Any:
    def call_action_atomically(self: Any) -> Any:
        with _dynamodb_lock:
            return call_action(self)

    return call_action_atomically


def install() -> None:
    """Patch moto (idempotent): in-process Lambda (``Event`` invocations asynchronous, as on
    AWS), CloudFormation state machines that execute, and DynamoDB requests that are atomic;
    and size boto3's connection pools for the many concurrent "containers" this one process
    plays (``LOCAL_MAX_POOL_CONNECTIONS``).

    With execution on, moto's Step Functions API reads its executing ("parser") backend,
    but CloudFormation writes state machines to the plain one; routing CloudFormation
    through the API's backend makes template-created state machines runnable.

    DynamoDB applies each request atomically; moto's in-memory tables are not safe when
    two threads write at once (a transaction copies a table another thread is changing).
    Serializing DynamoDB requests restores the service's guarantee without hiding any
    race between requests, which is what conditional writes must handle. moto's
    transactions copy each table once rather than once per operation (``moto_dynamodb``).
    """
    with _lock:
        if _installed.is_set():
            return
        check_moto_internals()
        from botocore.config import Config
        from moto.awslambda.models import LambdaFunction
        from moto.core.config import default_user_config
        from moto.dynamodb.responses import DynamoHandler
        from moto.stepfunctions.models import StateMachine

        DynamoHandler.call_action = _atomic(DynamoHandler.call_action)  # type: ignore[method-assign]
        from infra.local import moto_dynamodb

        moto_dynamodb.install()
        from infra.local import distributed_map

        distributed_map.install()  # Distributed Map as Step Functions runs it (see the module)
        LambdaFunction._invoke_lambda = lambda self, event=None: invoke_handler(self, event)  # type: ignore[method-assign]
        _original_invoke[:] = [LambdaFunction.invoke]
        LambdaFunction.invoke = _invoke  # type: ignore[method-assign,assignment]
        StateMachine.create_from_cloudformation_json = classmethod(_state_machine_from_cloudformation)  # type: ignore[assignment]
        StateMachine.delete_from_cloudformation_json = classmethod(_delete_state_machine)  # type: ignore[assignment]
        default_user_config["stepfunctions"]["execute_state_machine"] = True
        # Every client created from now on without its own max_pool_connections.
        Config.OPTION_DEFAULTS["max_pool_connections"] = LOCAL_MAX_POOL_CONNECTIONS
        _installed.set()
