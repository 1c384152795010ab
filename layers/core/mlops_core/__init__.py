"""Shared core of the serverless MLOps platform.

Domain logic and data access used by every Lambda function. Nothing here knows about
Lambda events: handlers in ``functions/`` parse the event, call into this package and
map its exceptions to HTTP (``mlops_core.api_errors``).
"""

__version__ = "0.1.0"
