"""Streaming inference throughput against the real-time path, in one run.

Ours: the stream inference function (``functions.stream_inference.handler.lambda_handler``)
given Kinesis events of 100 records (what its event source mapping delivers), each record
``{"model", "features"}``: parse, route, score, one PutRecords to the output stream, capture
lines. Peer ("the real-time path"): the inference function
(``functions.inference.handler.lambda_handler``) given one API Gateway proxy event per record,
``POST /models/{name}/predict`` with one instance, as a producer that calls the API for each
event would. Both warm, in one process, against moto in this process (``mock_aws``), the
same model (logistic regression on the breast-cancer sample, registered as production), and
the same rows; rounds alternate between the two. Both handlers' log lines go to /dev/null.

Reported: records per second per core (the median round) and their ratio. Network time to
API Gateway or to Kinesis is not in either number: this compares the functions' own work
per record (on AWS, the real-time path also pays one request per record).

Usage: .venv/bin/python benchmarks/stream_throughput.py [--rounds N] [--quick]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import statistics
import sys
import time
from typing import Any

from _common import ROOT, cpu_model, ensure_import_paths, ratio

ensure_import_paths()
sys.path.insert(0, str(ROOT))

BATCH = 100


def _environment() -> None:
    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "ARTIFACTS_BUCKET": "mlops-artifacts-test",
            "METADATA_TABLE": "mlops-metadata-test",
            "PREDICTIONS_TABLE": "mlops-predictions-test",
            "OUTPUT_STREAM": "bench-output",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "POWERTOOLS_METRICS_NAMESPACE": "ServerlessMLOps",
            "POWERTOOLS_SERVICE_NAME": "bench",
            "MLOPS_SIGNED_READS": "false",  # mock_aws intercepts boto3 only
            "LOG_LEVEL": "WARNING",
        }
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)


def _kinesis_event(rows: list[list[float]], start: int) -> dict[str, Any]:
    records = []
    for i, row in enumerate(rows):
        n = start + i
        data = json.dumps({"model": "breast-cancer", "features": row}).encode()
        sequence = f"{n:056d}"
        records.append(
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": f"key-{n % 8}",
                    "sequenceNumber": sequence,
                    "data": base64.b64encode(data).decode(),
                    "approximateArrivalTimestamp": time.time(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{sequence}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/bench-input",
            }
        )
    return {"Records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--quick", action="store_true", help="3 rounds: a smoke test")
    args = parser.parse_args()
    rounds = 3 if args.quick else args.rounds
    _environment()

    from moto import mock_aws

    with mock_aws():
        import boto3

        from tests.support import ROW0, create_resources, load_event, trained_model, upload

        create_resources()
        boto3.client("kinesis").create_stream(StreamName="bench-output", ShardCount=2)
        from functions.inference import handler as inference
        from functions.registry import handler as registry_function
        from functions.stream_inference import handler as stream
        from mlops_core.registry.entities import RegisterVersionRequest
        from tests.support import FakeLambdaContext

        _, data, signature = trained_model("logistic_regression")
        upload("uploads/breast-cancer/model.onnx", data)
        registry = registry_function.registry
        version = registry.register_version(
            "breast-cancer",
            RegisterVersionRequest(artifact_key="uploads/breast-cancer/model.onnx", signature=signature),
        )
        registry.set_alias("breast-cancer", "production", version.version)

        rows = [[value * (0.8 + 0.004 * (i % 100)) for value in ROW0] for i in range(BATCH)]
        predict_events = [load_event("inference/predict.json", body={"instances": [row]}) for row in rows]
        context = FakeLambdaContext()
        counter = [0]

        def ours() -> float:
            event = _kinesis_event(rows, counter[0])
            counter[0] += BATCH
            started = time.perf_counter()
            answer = stream.lambda_handler(event, context)
            elapsed = time.perf_counter() - started
            assert answer == {"batchItemFailures": []}, answer
            return BATCH / elapsed

        def peer() -> float:
            started = time.perf_counter()
            for event in predict_events:
                answer = inference.lambda_handler(event, context)
                assert answer["statusCode"] == 200, answer
            return BATCH / (time.perf_counter() - started)

        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            ours(), peer()  # warm: the model loaded and the routing read by both
            samples: dict[str, list[float]] = {"ours": [], "peer": []}
            for i in range(rounds):
                for name, run in (
                    (("ours", ours), ("peer", peer)) if i % 2 == 0 else (("peer", peer), ("ours", ours))
                ):
                    samples[name].append(run())
    ours_rate, peer_rate = statistics.median(samples["ours"]), statistics.median(samples["peer"])
    print(f"machine: {cpu_model()}, {rounds} rounds of {BATCH} records, alternating")
    print(f"stream inference (100-record Kinesis batches): {ours_rate:,.0f} records/s")
    print(f"real-time path (one POST /predict per record):  {peer_rate:,.0f} records/s")
    print(f"ratio: {ratio(ours_rate, peer_rate):.1f}x")


if __name__ == "__main__":
    main()
