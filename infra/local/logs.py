"""Where `mlops up` sends log records: the stack's own progress to the terminal, the rest to a file.

The terminal shows the local stack's own records (loggers under ``mlops`` and ``infra``),
each with the file and line that emitted it. Everything else at WARNING or above —
moto's Step Functions interpreter, botocore, urllib3, werkzeug — goes to the functions'
log (``.local-stack/functions.log``), beside the functions' JSON lines, as it would go
to CloudWatch rather than to a developer's terminal.

One exception keeps the terminal informative: moto's interpreter logs a failed state as
~25 lines of its internal objects (``Exception=FailureEventException, Error=ModelRejected,
... at '(StateFail| {...})'``); the terminal gets one line naming the error, and the
file gets the record whole.
"""

from __future__ import annotations

import logging
import re
from typing import TextIO

from rich.console import Console
from rich.logging import RichHandler

#: Loggers whose records are the local stack's own: shown in the terminal.
OWN_LOGGERS = ("mlops", "infra")
#: moto's ASL interpreter (moto.stepfunctions.parser...) logs each failed state at ERROR.
STEP_FUNCTIONS_LOGGER = "moto.stepfunctions"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s (%(filename)s:%(lineno)d) %(message)s"
_ERROR_NAME = re.compile(r"\bError=([^,\s]+)")
_EXCEPTION_NAME = re.compile(r"\bException=([^,\s]+)")
#: moto's CloudFormation warns once per skipped resource and deploy ("moto" logger itself).
_MOTO_SKIPS = "No Moto CloudFormation support for %s"


def _is_own(record: logging.LogRecord) -> bool:
    return any(record.name == name or record.name.startswith(name + ".") for name in OWN_LOGGERS)


def _failed_state_summary(record: logging.LogRecord) -> str | None:
    if not record.name.startswith(STEP_FUNCTIONS_LOGGER) or record.levelno < logging.ERROR:
        return None
    message = record.getMessage()
    match = _ERROR_NAME.search(message) or _EXCEPTION_NAME.search(message)
    error = match.group(1) if match else "an error"
    return f"Step Functions: a state failed with {error} (moto's trace is in the functions' log)"


def _not_a_skip(record: logging.LogRecord) -> bool:
    return record.msg != _MOTO_SKIPS


class _Terminal(RichHandler):
    """The stack's own records, and one line for each failed Step Functions state."""

    def emit(self, record: logging.LogRecord) -> None:
        if _is_own(record):
            super().emit(record)
            return
        summary = _failed_state_summary(record)
        if summary is not None:
            super().emit(logging.makeLogRecord({**record.__dict__, "msg": summary, "args": None}))


def configure(console: Console, functions_log: TextIO) -> None:
    """Route the process's log records for `mlops up` (replaces the root logger's handlers)."""
    terminal = _Terminal(
        console=console, show_level=False, markup=False, rich_tracebacks=False, log_time_format="[%X]"
    )
    terminal.setFormatter(logging.Formatter("%(message)s"))
    to_file = logging.StreamHandler(functions_log)
    to_file.setLevel(logging.WARNING)
    to_file.setFormatter(logging.Formatter(FILE_FORMAT))
    to_file.addFilter(lambda record: not _is_own(record))
    root = logging.getLogger()
    root.handlers[:] = [terminal, to_file]
    root.setLevel(logging.INFO)
    # werkzeug logs every request at INFO: not worth formatting only to drop it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # The types moto's CloudFormation skips are accounted for, with what the local stack does
    # instead, in infra/local/dropped_properties.py (and tested): not worth ~40 lines a start.
    logging.getLogger("moto").addFilter(_not_a_skip)  # once: addFilter ignores a filter it has
