"""What the moto emulator's CPU per written item depends on: the shape of the online item.

The first materialization's wall time on moto is bounded by the emulator's own CPU (docs/
benchmarks.md, "Features"). This writes the same 100,000-entity x 10-feature rows as
BatchWriteItem calls of 25 items (8 in flight, as the materializer) in several item shapes
to one moto server process, and reports the moto process's CPU seconds per 1,000 items
(``/proc``), so the shapes compare on the same emulator in the same run:

- ``ours``: the stored shape (pk, t, c, ver, v = the values as one JSON string, w, expires_at);
- ``packed``: pk, t, expires_at and v holding everything else (ver, c, w and the values);
- ``packed-binary``: as ``packed`` with v a binary attribute (the JSON as bytes);
- ``minimal``: pk and v only (not a usable shape: no TTL, no condition; the floor);
- ``feast``: Feast's shape (entity key, a map of 10 binary values, timestamps as strings).

Also: conditional PutItem (one per item, the partitioned materialization's writes) and
BatchGetItem of the stored shape, per 1,000 items. ``--in-process`` instead runs moto in this
process (``mock_aws``) and splits the cost: CPU inside moto's DynamoDB ``batch_write_item``
handler (its item model: validation, sizes) against the whole request (client and moto).

    PYTHONPATH=layers/core .venv/bin/python benchmarks/feature_item_shapes.py [--items 20000]
    PYTHONPATH=layers/core .venv/bin/python benchmarks/feature_item_shapes.py --in-process
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._common import cpu_busy_percent, free_port
from benchmarks.features import process_cpu_s, start_moto

Item = dict[str, dict[str, Any]]


def values(rng: random.Random) -> dict[str, float]:
    return {f"f{i}": rng.random() for i in range(10)}


def shape_ours(i: int, rng: random.Random) -> Item:
    return {
        "pk": {"S": f"bench#{i}"},
        "t": {"N": str(1764547200000 + i)},
        "c": {"N": str(1764547200000 + i)},
        "ver": {"N": "1"},
        "v": {"S": json.dumps(values(rng), separators=(",", ":"))},
        "w": {"N": str(1764633600000)},
        "expires_at": {"N": str(1767139200 + i // 1000)},
    }


def _packed(i: int, rng: random.Random) -> str:
    return json.dumps(
        {"ver": 1, "c": 1764547200000 + i, "w": 1764633600000, "v": values(rng)}, separators=(",", ":")
    )


def shape_packed(i: int, rng: random.Random) -> Item:
    return {
        "pk": {"S": f"bench#{i}"},
        "t": {"N": str(1764547200000 + i)},
        "expires_at": {"N": str(1767139200 + i // 1000)},
        "v": {"S": _packed(i, rng)},
    }


def shape_packed_binary(i: int, rng: random.Random) -> Item:
    return {
        "pk": {"S": f"bench#{i}"},
        "t": {"N": str(1764547200000 + i)},
        "expires_at": {"N": str(1767139200 + i // 1000)},
        "v": {"B": base64.b64encode(_packed(i, rng).encode()).decode()},
    }


def shape_minimal(i: int, rng: random.Random) -> Item:
    return {"pk": {"S": f"bench#{i}"}, "v": {"S": _packed(i, rng)}}


def shape_feast(i: int, rng: random.Random) -> Item:
    return {
        "pk": {"S": f"bench#{i}"},
        "entity_id": {"S": f"entity_id={i}"},
        "event_ts": {"S": "2026-12-01 00:00:00+00:00"},
        "created_ts": {"S": "2026-12-01 00:00:00+00:00"},
        "values": {
            "M": {
                name: {"B": base64.b64encode(f"\x11{value:.17g}".encode()).decode()}
                for name, value in values(rng).items()
            }
        },
    }


SHAPES: dict[str, Callable[[int, random.Random], Item]] = {
    "ours": shape_ours,
    "packed": shape_packed,
    "packed-binary": shape_packed_binary,
    "minimal": shape_minimal,
    "feast": shape_feast,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--in-process", action="store_true", help="split moto's handler from the request")
    args = parser.parse_args()
    if args.in_process:
        in_process(args.items, args.repeats)
        return
    busy = cpu_busy_percent()
    port = free_port()
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    moto = start_moto(port)
    import boto3

    ddb = boto3.client("dynamodb", endpoint_url=f"http://127.0.0.1:{port}")
    results: dict[str, list[float]] = {}
    try:
        for repeat in range(args.repeats):
            for name, shape in SHAPES.items():
                table, items = _table_and_items(ddb, f"shape-{name}-{repeat}", shape, args.items)
                chunks = [items[i : i + 25] for i in range(0, len(items), 25)]

                def write(chunk: list[Item], table: str = table) -> None:
                    ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": it}} for it in chunk]})

                before, wall = process_cpu_s(moto.pid), time.perf_counter()
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(write, chunks))
                cpu = process_cpu_s(moto.pid) - before
                results.setdefault(f"BatchWriteItem {name}", []).append(1e6 * cpu / args.items)
                print(
                    f"[{repeat}] {name:14s} emulator {1e6 * cpu / args.items:6.0f} µs/item, "
                    f"wall {time.perf_counter() - wall:5.1f} s",
                    flush=True,
                )
                if name == "ours":
                    conditional = [shape_ours(i, random.Random(i)) for i in range(args.items // 4)]

                    def put(item: Item, table: str = table) -> None:
                        ddb.put_item(
                            TableName=table,
                            Item=item,
                            ConditionExpression="attribute_not_exists(#k) OR #t < :t",
                            ExpressionAttributeNames={"#k": "pk", "#t": "t"},
                            ExpressionAttributeValues={":t": {"N": "1"}},
                        )

                    before = process_cpu_s(moto.pid)
                    with ThreadPoolExecutor(8) as pool:
                        list(pool.map(lambda it: _refused_ok(put, it), conditional))
                    cpu = process_cpu_s(moto.pid) - before
                    results.setdefault("conditional PutItem (ours, stored)", []).append(
                        1e6 * cpu / len(conditional)
                    )
                    keys = [{"pk": {"S": f"bench#{i}"}} for i in range(args.items // 4)]
                    before = process_cpu_s(moto.pid)
                    for i in range(0, len(keys), 100):
                        ddb.batch_get_item(RequestItems={table: {"Keys": keys[i : i + 100]}})
                    cpu = process_cpu_s(moto.pid) - before
                    results.setdefault("BatchGetItem (ours)", []).append(1e6 * cpu / len(keys))
        print(f"\nCPU busy before the run: {busy}%; load average {os.getloadavg()}")
        print("emulator CPU µs per item (each repeat):")
        for name, per_item in results.items():
            print(f"  {name:40s} " + "  ".join(f"{v:6.0f}" for v in per_item))
    finally:
        moto.kill()
        moto.wait(timeout=30)


def _table_and_items(
    ddb: Any, table: str, shape: Callable[[int, random.Random], Item], count: int
) -> tuple[str, list[Item]]:
    """A new table keyed like the features table, and ``count`` items of ``shape`` (seeded)."""
    ddb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    rng = random.Random(7)
    return table, [shape(i, rng) for i in range(count)]


def in_process(count: int, repeats: int) -> None:
    import boto3
    from moto import mock_aws
    from moto.dynamodb.responses import DynamoHandler

    os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    spent = [0.0]
    original = DynamoHandler.batch_write_item

    def timed(self: Any) -> Any:
        started = time.process_time()
        try:
            return original(self)
        finally:
            spent[0] += time.process_time() - started

    with mock_aws():
        DynamoHandler.batch_write_item = timed  # type: ignore[method-assign]
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        for repeat in range(repeats):
            for name, shape in SHAPES.items():
                table, items = _table_and_items(ddb, f"inproc-{name}-{repeat}", shape, count)
                spent[0], started = 0.0, time.process_time()
                for i in range(0, count, 25):
                    ddb.batch_write_item(
                        RequestItems={table: [{"PutRequest": {"Item": it}} for it in items[i : i + 25]]}
                    )
                total = time.process_time() - started
                print(
                    f"[{repeat}] {name:14s} {len(items[0])} attributes: moto's handler "
                    f"{1e6 * spent[0] / count:4.0f} µs/item, "
                    f"the whole request {1e6 * total / count:4.0f} µs/item",
                    flush=True,
                )
        DynamoHandler.batch_write_item = original  # type: ignore[method-assign]


def _refused_ok(put: Callable[[Item], None], item: Item) -> None:
    from botocore.exceptions import ClientError

    try:
        put(item)
    except ClientError as error:
        if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
            raise


if __name__ == "__main__":
    main()
