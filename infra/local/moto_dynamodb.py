"""What the local stack changes in moto's DynamoDB beyond making each request atomic
(``lambda_runtime.install``), and the internals it relies on.

moto's ``transact_write_items`` keeps a copy of each table it touches to roll back to, but
takes it once per *operation*, all before the first is applied: a transaction of 24
operations on a prediction log of 240 items copied the whole table (its items and its
stream) 24 times, 1.15 s holding every DynamoDB request of the stack. ``install`` makes it
copy each table once per transaction (the copies were identical): 0.065 s.

The stream poller (``stream_mappings``) forgets the shard iterators it used, which moto
keeps otherwise; ``check_moto_internals`` names everything both rely on (moto is pinned).
"""

from __future__ import annotations

import copy
import inspect
import threading
from typing import Any

_transaction = threading.local()


class _TableCopiedOncePerTransaction:
    """Stands in for the ``copy`` module in ``moto.dynamodb.models``: inside a transaction,
    the first deep copy of a table is the one every later request for it gets."""

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        from moto.dynamodb.models.table import Table

        copies: dict[int, Any] | None = getattr(_transaction, "tables", None)
        if copies is None or not isinstance(value, Table):
            return copy.deepcopy(value, memo)
        if id(value) not in copies:
            copies[id(value)] = copy.deepcopy(value, memo)
        return copies[id(value)]


def _copying_each_table_once(transact_write_items: Any) -> Any:
    def transact_copying_each_table_once(self: Any, transact_items: list[dict[str, Any]]) -> Any:
        _transaction.tables = {}
        try:
            return transact_write_items(self, transact_items)
        finally:
            _transaction.tables = None

    transact_copying_each_table_once.replaces = transact_write_items  # type: ignore[attr-defined]
    return transact_copying_each_table_once


def install() -> None:
    """Called once, by ``lambda_runtime.install`` (under its lock)."""
    from moto.dynamodb import models

    models.copy = _TableCopiedOncePerTransaction()  # type: ignore[assignment]
    backend = models.DynamoDBBackend
    backend.transact_write_items = _copying_each_table_once(backend.transact_write_items)  # type: ignore[method-assign]


def check_moto_internals() -> list[str]:
    from moto.dynamodb import models
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    problems = []
    if not (models.copy is copy or isinstance(models.copy, _TableCopiedOncePerTransaction)):
        problems.append("moto.dynamodb.models no longer imports the copy module")
    transact = models.DynamoDBBackend.transact_write_items
    source = inspect.getsource(getattr(transact, "replaces", transact))
    if "original_table_state[table_name] = copy.deepcopy(" not in source:
        problems.append("moto.dynamodb.models.DynamoDBBackend.transact_write_items copies tables differently")
    if not isinstance(
        getattr(DynamoDBStreamsBackend("us-east-1", "123456789012"), "shard_iterators", None), dict
    ):
        problems.append("moto.dynamodbstreams.models.DynamoDBStreamsBackend.shard_iterators is gone")
    return problems
