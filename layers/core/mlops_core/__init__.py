"""Shared core of the serverless MLOps platform: one package per domain, on a shared base.

Domains (each with entities, a repository for data access, a service with the use cases,
and events, where it has them): ``registry``, ``serving``, ``training``, ``data``.
Below them: ``storage`` (every AWS adapter and every storage key), ``config``
(settings, observability), ``http`` (the one place domain errors become HTTP responses),
``errors`` (the domain exceptions), ``events`` (what domain events share) and ``clock``.

Handlers in ``functions/`` parse the event, call a domain and map its exceptions to HTTP;
they never touch boto3. The layering is checked by import-linter (``make lint``).
"""

__version__ = "0.1.0"
