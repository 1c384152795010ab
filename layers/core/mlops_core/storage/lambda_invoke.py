"""Invoking another function asynchronously (Lambda's ``Event`` invocation type).

Lambda queues the event and answers 202 at once; the function runs later, and Lambda
retries it twice if it raises. A caller that needs the outcome records it somewhere the
function writes (the drift API records a ``running`` run that the drift function finishes).
"""

from __future__ import annotations

import json
from typing import Any

from mlops_core.errors import Unavailable
from mlops_core.storage.clients import client, translate_errors


class AsyncInvoker:
    what = "function invoker"

    def __init__(self, function_name: str) -> None:
        self.function_name = function_name

    def invoke(self, payload: dict[str, Any]) -> None:
        with translate_errors(self.what):
            response = client("lambda").invoke(
                FunctionName=self.function_name, InvocationType="Event", Payload=json.dumps(payload).encode()
            )
        if int(response.get("StatusCode", 0)) != 202:
            raise Unavailable(f"{self.what} did not queue the event (status {response.get('StatusCode')})")
