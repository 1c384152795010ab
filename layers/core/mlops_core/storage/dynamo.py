"""The metadata table adapter: a thin, typed layer over DynamoDB's low-level client.

Items go in and come out as plain Python values (floats in, floats out); numbers are
stored as DynamoDB numbers via ``Decimal`` so they round-trip exactly.
"""

from __future__ import annotations

import numbers
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import (
    Clamped,
    Context,
    Decimal,
    DecimalException,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
)
from typing import Any, TypeVar

from mlops_core.errors import Conflict, Invalid, Unavailable
from mlops_core.storage import deadline, keys
from mlops_core.storage.clients import client, reader, translate_errors

Item = dict[str, Any]
# BatchWriteItem takes at most 25 requests.
_BATCH_WRITE_LIMIT = 25


# DynamoDB attribute values, written here rather than taken from boto3.dynamodb.types:
# importing that module imports boto3 and botocore (~200 ms), which the inference
# function's cold path never loads. tests/unit/test_dynamo_values.py checks both agree.
def _serialize_value(value: Any) -> dict[str, Any]:  # noqa: PLR0911, PLR0912 (a branch per type, in order)
    # Fast paths for the exact built-in types (no ABC checks): materialization serializes
    # hundreds of thousands of attributes. Same results as the general branches below.
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        return {"N": str(value)}
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, numbers.Number):
        return {"N": _number(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray):
        return {"B": bytes(value)}
    if isinstance(value, Mapping):
        if any(str(k) == "" for k in value):
            raise Invalid("a map with an empty key cannot be stored")
        return {"M": {str(k): _serialize_value(v) for k, v in value.items()}}
    if isinstance(value, list | tuple):
        return {"L": [_serialize_value(v) for v in value]}
    if isinstance(value, set | frozenset) and value:
        if all(isinstance(v, str) for v in value):
            return {"SS": sorted(value)}
        if all(isinstance(v, numbers.Number) and not isinstance(v, bool) for v in value):
            return {"NS": [_number(v) for v in value]}
        if all(isinstance(v, bytes | bytearray) for v in value):
            return {"BS": [bytes(v) for v in value]}
    raise Invalid(f"a {type(value).__name__} value cannot be stored: {value!r:.80}")


#: Integers below this magnitude have at most 38 digits: DynamoDB stores them exactly.
_INT_LIMIT = 10**38

# DynamoDB numbers: up to 38 significant digits, magnitudes from 1E-130 to
# 9.9999999999999999999999999999999999999E+125 (what DynamoDB accepts; boto3's own
# context, Emin=-128 / Emax=126, lets numbers through that DynamoDB then refuses).
_DYNAMODB_NUMBERS = Context(
    Emin=-130,
    Emax=125,
    prec=38,
    traps=[Clamped, Overflow, Inexact, Rounded, Underflow, Subnormal, InvalidOperation],
)


def _number(value: Any) -> str:
    """A number as DynamoDB stores it; numpy scalars and other ``numbers`` types included."""
    if isinstance(value, numbers.Integral):
        number = Decimal(int(value))
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, numbers.Real):
        number = Decimal(repr(float(value)))  # shortest repr: 0.1 is stored as 0.1
    else:
        raise Invalid(f"a {type(value).__name__} number cannot be stored: {value!r:.80}")
    if not number.is_finite():
        raise Invalid(f"non-finite number {value!r} cannot be stored")
    try:
        return str(_DYNAMODB_NUMBERS.create_decimal(number))
    except DecimalException as error:
        raise Invalid(
            f"number {value!r:.60} cannot be stored: DynamoDB keeps 38 significant digits "
            "and magnitudes between 1E-130 and 1E+126"
        ) from error


def _deserialize_value(value: Mapping[str, Any]) -> Any:
    ((kind, inner),) = value.items()
    decode = _DECODERS.get(kind)
    if decode is None:
        raise ValueError(f"unknown DynamoDB attribute type {kind!r}")
    return decode(inner)


def _from_number(text: str) -> int | float:
    # Integral numbers written without a decimal point come back as int, others as float.
    number = Decimal(text)
    return int(number) if number == number.to_integral_value() and "." not in str(number) else float(number)


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "S": str,
    "BOOL": bool,
    "NULL": lambda _: None,
    "N": _from_number,
    "B": bytes,
    "M": lambda inner: {k: _deserialize_value(v) for k, v in inner.items()},
    "L": lambda inner: [_deserialize_value(v) for v in inner],
    "SS": set,
    "NS": lambda inner: {_from_number(v) for v in inner},
    "BS": lambda inner: {bytes(v) for v in inner},
}


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serialize_value(v) for k, v in item.items()}


def deserialize(raw: Mapping[str, Any]) -> Item:
    return {k: _deserialize_value(v) for k, v in raw.items()}


def key(pk: str, sk: str) -> dict[str, Any]:
    return {keys.PARTITION_KEY: {"S": pk}, keys.SORT_KEY: {"S": sk}}


class MetadataTable:
    """A table of the project with ``pk``/``sk`` keys: the single metadata table (and its one
    index), or the prediction log (keys: ``mlops_core.storage.keys``)."""

    def __init__(self, table_name: str, *, what: str = "metadata table") -> None:
        self.table_name = table_name
        #: How errors name this table to callers (never by its name).
        self.what = what

    @property
    def _client(self) -> Any:
        return client("dynamodb")

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> Item | None:
        with translate_errors(self.what):
            response = reader("dynamodb").get_item(
                TableName=self.table_name, Key=key(pk, sk), ConsistentRead=consistent
            )
        raw = response.get("Item")
        return deserialize(raw) if raw else None

    def query(
        self,
        pk: str,
        *,
        sk_prefix: str | None = None,
        index: str | None = None,
        newest_first: bool = False,
        limit: int | None = None,
        attributes: Sequence[str] | None = None,
    ) -> Iterator[Item]:
        """Items of one partition in sort-key order, following pagination lazily; with
        ``attributes``, only those attributes of each item (a ProjectionExpression)."""
        pk_name, sk_name = (
            (keys.LIST_INDEX_PARTITION_KEY, keys.LIST_INDEX_SORT_KEY)
            if index
            else (keys.PARTITION_KEY, keys.SORT_KEY)
        )
        condition = "#pk = :pk"
        names = {"#pk": pk_name}
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_prefix is not None:
            condition += " AND begins_with(#sk, :prefix)"
            names["#sk"] = sk_name
            values[":prefix"] = {"S": sk_prefix}
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
        }
        if index:
            request["IndexName"] = index
        if attributes:
            projected = {f"#a{i}": name for i, name in enumerate(attributes)}
            names.update(projected)
            request["ProjectionExpression"] = ", ".join(projected)
        returned = 0
        while True:
            if limit is not None:
                request["Limit"] = limit - returned
            with translate_errors(self.what):
                response = self._client.query(**request)
            for raw in response.get("Items", []):
                yield deserialize(raw)
                returned += 1
            last = response.get("LastEvaluatedKey")
            if not last or (limit is not None and returned >= limit):
                return
            request["ExclusiveStartKey"] = last

    def put(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        request = self.put_op(item, condition=condition, names=names, values=values)["Put"]
        with translate_errors(self.what):
            self._client.put_item(**request)

    def update(
        self,
        pk: str,
        sk: str,
        *,
        update: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        request = self.update_op(pk, sk, update=update, condition=condition, names=names, values=values)[
            "Update"
        ]
        with translate_errors(self.what):
            self._client.update_item(**request)

    def batch_put(self, items: Sequence[Mapping[str, Any]], *, max_rounds: int = 8) -> None:
        """Put ``items`` (no conditions) 25 at a time, retrying what DynamoDB leaves
        unprocessed with back-off; ``Unavailable`` if some remain after ``max_rounds``."""
        for start in range(0, len(items), _BATCH_WRITE_LIMIT):
            pending = [
                {"PutRequest": {"Item": serialize(i)}} for i in items[start : start + _BATCH_WRITE_LIMIT]
            ]
            for round_ in range(max_rounds):
                with translate_errors(self.what):
                    response = self._client.batch_write_item(RequestItems={self.table_name: pending})
                pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
                if not pending:
                    break
                time.sleep(min(2.0, 0.05 * 2**round_))
            else:
                raise Unavailable(
                    f"{self.what} left {len(pending)} item(s) unprocessed", retry_after_seconds=2
                )

    def transact(self, operations: Sequence[Mapping[str, Any]]) -> None:
        """All-or-nothing write of several items (see ``put_op``/``update_op``/``check_op``)."""
        with translate_errors(self.what):
            self._client.transact_write_items(TransactItems=list(operations))

    # Builders for ``transact``: each returns one TransactItems entry.
    def put_op(
        self,
        item: Mapping[str, Any],
        *,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self.table_name, "Item": serialize(item)}
        _add_condition(op, condition, names, values)
        return {"Put": op}

    def update_op(
        self,
        pk: str,
        sk: str,
        *,
        update: str,
        condition: str | None = None,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self.table_name, "Key": key(pk, sk), "UpdateExpression": update}
        _add_condition(op, condition, names, values)
        return {"Update": op}

    def check_op(
        self,
        pk: str,
        sk: str,
        *,
        condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self.table_name, "Key": key(pk, sk)}
        _add_condition(op, condition, names, values)
        return {"ConditionCheck": op}


def _add_condition(
    request: dict[str, Any],
    condition: str | None,
    names: Mapping[str, str] | None,
    values: Mapping[str, Any] | None,
) -> None:
    if condition:
        request["ConditionExpression"] = condition
    if names:
        request["ExpressionAttributeNames"] = dict(names)
    if values:
        request["ExpressionAttributeValues"] = serialize(values)


# BatchGetItem reads at most 100 keys.
_BATCH_GET_LIMIT = 100


class KeyedTable:
    """A table keyed by ``pk`` alone (the features table): batch reads and writes of many
    items, with DynamoDB's unprocessed keys and items retried, and conditional puts.

    Reads go through ``reader`` (the signed reader where the environment allows: no boto3 on
    a cold path); writes through boto3. ``read_requests`` and ``write_requests`` count the
    calls sent (benchmarks and materialization records report them).
    """

    def __init__(self, table_name: str, *, what: str = "features table") -> None:
        self.table_name = table_name
        self.what = what
        self.read_requests = 0
        self.write_requests = 0
        self._counts = threading.Lock()

    def batch_get(
        self,
        keys: Sequence[str],
        *,
        attributes: Sequence[str] | None = None,
        workers: int = 1,
        max_rounds: int = 8,
    ) -> dict[str, Item]:
        """The items at ``keys`` (absent keys are left out), by key: 100 keys a call, ``workers``
        calls at a time, unprocessed keys sent again with back-off; ``Unavailable`` if some
        remain after ``max_rounds``."""
        unique = list(dict.fromkeys(keys))  # BatchGetItem refuses a key twice
        chunks = [unique[i : i + _BATCH_GET_LIMIT] for i in range(0, len(unique), _BATCH_GET_LIMIT)]
        request: dict[str, Any] = {}
        if attributes:
            names = {f"#a{i}": name for i, name in enumerate(dict.fromkeys([keys_attribute(), *attributes]))}
            request = {"ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": names}
        found: dict[str, Item] = {}
        for part in _in_parallel(lambda chunk: self._get_chunk(chunk, request, max_rounds), chunks, workers):
            found.update(part)
        return found

    def _get_chunk(self, chunk: list[str], request: dict[str, Any], max_rounds: int) -> dict[str, Item]:
        found: dict[str, Item] = {}
        pending: list[dict[str, Any]] = [{keys_attribute(): {"S": k}} for k in chunk]
        for round_ in range(max_rounds):
            with translate_errors(self.what):
                response = reader("dynamodb").batch_get_item(
                    RequestItems={self.table_name: {"Keys": pending, **request}}
                )
            self._count(read=1)
            for raw in response.get("Responses", {}).get(self.table_name, []):
                item = deserialize(raw)
                found[str(item[keys_attribute()])] = item
            pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
            if not pending:
                return found
            # Within a request, the back-off fits its deadline (mlops_core.storage.deadline).
            pause = min(2.0, 0.05 * 2**round_)
            deadline.check(self.what, needed=pause)
            time.sleep(pause)
        raise Unavailable(f"{self.what} left {len(pending)} key(s) unread", retry_after_seconds=2)

    def batch_put(self, items: Sequence[Mapping[str, Any]], *, workers: int = 1, max_rounds: int = 8) -> None:
        """Put ``items`` (no conditions) 25 a call, ``workers`` calls at a time, retrying what
        DynamoDB leaves unprocessed with back-off; ``Unavailable`` if some remain after
        ``max_rounds`` (the items written before stay written)."""
        chunks = [
            [{"PutRequest": {"Item": serialize(i)}} for i in items[start : start + _BATCH_WRITE_LIMIT]]
            for start in range(0, len(items), _BATCH_WRITE_LIMIT)
        ]
        list(_in_parallel(lambda chunk: self._put_chunk(chunk, max_rounds), chunks, workers))

    def _put_chunk(self, pending: list[dict[str, Any]], max_rounds: int) -> None:
        for round_ in range(max_rounds):
            with translate_errors(self.what):
                # The signed client where the environment allows (no botocore request building,
                # ~1-3 ms of CPU a call), else boto3's: the same arguments and answer.
                response = reader("dynamodb").batch_write_item(RequestItems={self.table_name: pending})
            self._count(write=1)
            pending = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if not pending:
                return
            time.sleep(min(2.0, 0.05 * 2**round_))
        raise Unavailable(f"{self.what} left {len(pending)} item(s) unprocessed", retry_after_seconds=2)

    def put_if(
        self,
        item: Mapping[str, Any],
        *,
        condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> bool:
        """Put ``item`` if ``condition`` holds for the stored one; False if it did not."""
        return self.put_if_replacing(item, condition=condition, names=names, values=values)[0]

    def put_if_replacing(
        self,
        item: Mapping[str, Any],
        *,
        condition: str,
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> tuple[bool, Item | None]:
        """``put_if``, also answering the item the put replaced (``ReturnValues=ALL_OLD``; None
        when there was none or the put was refused)."""
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "Item": serialize(item),
            "ReturnValues": "ALL_OLD",
        }
        _add_condition(request, condition, names, values)
        try:
            with translate_errors(self.what):
                response = client("dynamodb").put_item(**request)
        except Conflict:
            return False, None
        finally:
            self._count(write=1)
        old = response.get("Attributes")
        return True, deserialize(old) if old else None

    def get(self, key_value: str, *, consistent: bool = False) -> Item | None:
        with translate_errors(self.what):
            response = reader("dynamodb").get_item(
                TableName=self.table_name, Key={keys_attribute(): {"S": key_value}}, ConsistentRead=consistent
            )
        self._count(read=1)
        raw = response.get("Item")
        return deserialize(raw) if raw else None

    def _count(self, *, read: int = 0, write: int = 0) -> None:
        with self._counts:
            self.read_requests += read
            self.write_requests += write


def keys_attribute() -> str:
    return keys.FEATURE_KEY


T = TypeVar("T")
R = TypeVar("R")


def _in_parallel(work: Callable[[T], R], chunks: Sequence[T], workers: int) -> Iterator[R]:
    """``work`` on each chunk, ``workers`` at a time (in order of completion); the first
    failure is raised once the chunks already started have finished."""
    if workers <= 1 or len(chunks) <= 1:
        for chunk in chunks:
            yield work(chunk)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
        yield from pool.map(work, chunks)
