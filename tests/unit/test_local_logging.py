"""`mlops up`'s log routing (infra/local/logs.py): the stack's own records in the terminal, with
their real origin; moto's and the libraries' warnings in the functions' log."""

from __future__ import annotations

import inspect
import io
import logging
from collections.abc import Iterator

import pytest
from rich.console import Console

from infra.local import logs

# What moto 5.2.5's ASL interpreter logs for a rejected run (EvalComponent._log_failure_event_exception),
# abridged: the component's repr is ~25 lines in a terminal.
MOTO_FAILURE = 'Exception=FailureEventException, Error=ModelRejected, Details={"error": "ModelRejected"}'
MOTO_COMPONENT = "(StateFail| {'state_entered_event_type': <HistoryEventType.FailStateEntered>, ...})"


@pytest.fixture
def routed() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    terminal, functions_log = io.StringIO(), io.StringIO()
    logs.configure(Console(file=terminal, width=250, force_terminal=False), functions_log)
    yield terminal, functions_log
    root.handlers[:], root.level = saved


def test_a_log_line_names_the_module_and_line_that_emitted_it(
    routed: tuple[io.StringIO, io.StringIO],
) -> None:
    terminal, _ = routed
    frame = inspect.currentframe()
    assert frame is not None
    emitted_on = frame.f_lineno + 1
    logging.getLogger("infra.local.stack").info("API on http://127.0.0.1:3000")

    shown = terminal.getvalue()
    assert "API on http://127.0.0.1:3000" in shown
    assert f"test_local_logging.py:{emitted_on}" in shown
    assert "logs.py" not in shown and "main.py" not in shown


def test_a_failed_state_is_one_line_in_the_terminal_and_whole_in_the_functions_log(
    routed: tuple[io.StringIO, io.StringIO],
) -> None:
    terminal, functions_log = routed
    logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").error(
        "%s at '%s'", MOTO_FAILURE, MOTO_COMPONENT
    )

    shown = [line for line in terminal.getvalue().splitlines() if line.strip()]
    assert len(shown) == 1
    assert "Step Functions: a state failed with ModelRejected" in shown[0]
    assert "StateFail" not in terminal.getvalue()
    assert "Error=ModelRejected" in functions_log.getvalue()
    assert "(StateFail|" in functions_log.getvalue()


def test_library_warnings_go_to_the_functions_log_not_the_terminal(
    routed: tuple[io.StringIO, io.StringIO],
) -> None:
    terminal, functions_log = routed
    logging.getLogger("urllib3.connectionpool").warning(
        "Connection pool is full, discarding connection: %s. Connection pool size: %s", "127.0.0.1", 10
    )
    logging.getLogger("werkzeug").info('127.0.0.1 - - "GET /health HTTP/1.1" 200 -')
    logging.getLogger("moto").warning("No Moto CloudFormation support for %s", "AWS::S3::BucketPolicy")

    assert terminal.getvalue() == ""
    written = functions_log.getvalue()
    assert "Connection pool is full" in written
    assert "GET /health" not in written  # request lines are not kept at all
    assert "No Moto CloudFormation support" not in written  # accounted for in dropped_properties


def test_the_local_runtime_sizes_boto3_pools_for_concurrent_requests() -> None:
    from botocore.config import Config

    from infra.local import lambda_runtime

    lambda_runtime.install()

    assert Config().max_pool_connections == lambda_runtime.LOCAL_MAX_POOL_CONNECTIONS
    assert Config(max_pool_connections=3).max_pool_connections == 3
