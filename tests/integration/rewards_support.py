"""Feedback written to the prediction log and its stream read back, for the rewards tests.

Until ``POST /feedback`` lands, feedback is written as the feedback function will write it:
``feedback_item`` put once, conditioned on no feedback being there yet.
"""

from __future__ import annotations

from typing import Any

import boto3

from infra.local.stream_mappings import lambda_record
from mlops_core.errors import Conflict
from mlops_core.feedback.entities import FeedbackRecord
from mlops_core.feedback.prediction_log import feedback_item
from mlops_core.routing.repository import RoutingRepository
from mlops_core.routing.state import ArmsState, VariantTotals
from mlops_core.storage.dynamo import MetadataTable
from tests.support import PREDICTIONS_TABLE, REGION, TABLE

AT_MS = 1_796_115_000_000


def feedback(prediction_id: str, version: int, reward: float | None, *, model: str = "m") -> FeedbackRecord:
    return FeedbackRecord(
        prediction_id=prediction_id,
        model_name=model,
        model_version=version,
        reward=reward,
        label=None if reward is None else int(reward),
        prediction=1,
        at_ms=AT_MS + 1000,
        prediction_at_ms=AT_MS,
    )


def record_feedback(record: FeedbackRecord, table: str = PREDICTIONS_TABLE, **client: Any) -> bool:
    """Write the feedback once: True if this call recorded it, False if one was there already."""
    item = feedback_item(record, expires_at=AT_MS // 1000 + 30 * 86_400)
    if client:  # a local stack's moto, over HTTP
        from mlops_core.storage.dynamo import serialize

        dynamodb = boto3.client("dynamodb", **client)
        try:
            dynamodb.put_item(
                TableName=table, Item=serialize(item), ConditionExpression="attribute_not_exists(pk)"
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return False
        return True
    try:
        MetadataTable(table, what="prediction log").put(item, condition="attribute_not_exists(pk)")
    except Conflict:
        return False
    return True


def stream_records(table: str = PREDICTIONS_TABLE, **client: Any) -> list[dict[str, Any]]:
    """Every record of the table's stream so far, as Lambda delivers them."""
    options = {"region_name": REGION} | client
    dynamodb = boto3.client("dynamodb", **options)
    streams = boto3.client("dynamodbstreams", **options)
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while True:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not page["Records"]:
                break
            records.extend(lambda_record(r, arn, options["region_name"]) for r in page["Records"])
            iterator = page["NextShardIterator"]
    return records


def feedback_inserts(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records the mapping's filter lets through: INSERTs of FEEDBACK items."""
    return [
        r for r in records if r["eventName"] == "INSERT" and r["dynamodb"]["Keys"]["sk"]["S"] == "FEEDBACK"
    ]


def arms(model: str = "m") -> ArmsState:
    return RoutingRepository(MetadataTable(TABLE)).arms(model, consistent=True)


def variants(model: str = "m") -> dict[int, VariantTotals]:
    return {v.version: v for v in RoutingRepository(MetadataTable(TABLE)).variants(model)}


def counted_at(prediction_id: str) -> str | None:
    item = MetadataTable(PREDICTIONS_TABLE).get(f"PREDICTION#{prediction_id}", "FEEDBACK", consistent=True)
    assert item is not None
    return item.get("counted_at")
