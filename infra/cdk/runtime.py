"""Environment variables every Lambda function of the stack gets, whatever it does.

Kept apart from the constructs (no CDK import) so that the benchmarks start our handler
with the environment it has when deployed.
"""

from __future__ import annotations

FUNCTION_ENVIRONMENT: dict[str, str] = {
    "LOG_LEVEL": "INFO",
    # No pydantic plugin is used. Looking for them scans the entry points of every
    # installed distribution when the first model is defined: ~30 ms of each cold start.
    "PYDANTIC_DISABLE_PLUGINS": "__all__",
    # Traces record timings and metadata, never payloads: a captured response would copy
    # feature values and predictions into X-Ray, which the logs deliberately leave out.
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
}
