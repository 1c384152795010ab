"""Model console page times on the local stack with 50 training runs and 20 versions, against
the JSON API routes that read the same data, in one run.

The stack is the embedded local stack (`mlops up`, in this process). The world: the demo's
real training run (`mlops up --demo`: four candidates trained by the state machine, v1
registered and promoted), 49 more runs recorded through ``RunTracker`` with the demo run's
own record and candidates (as the workflow's steps record them), 19 more versions
registered over HTTP from the demo's artifact (each naming one of those runs), a split
routing policy over v19/v20 with counted traffic, a day of its routing history (288
five-minute buckets, both versions' traffic and feedback and a posterior snapshot in each:
what the routing page charts by default), and an on-demand drift run.

Timed: ``--calls`` sequential GETs per page of ``/_local/console/`` (after ``--warmup``), over
HTTP from this process, as a browser would ask; the peers are the JSON routes reading the
same items: ``GET /models/{name}/versions`` (20 versions), ``GET /models/{name}/runs`` (50
runs), ``GET /runs/{id}`` (a run with its candidates), ``GET /models/{name}/routing``
and ``GET /models/{name}/drift``; ``GET /models/{name}/routing/history`` (the 288 buckets) is
timed against ``GET /models/{name}/routing``. Ratios are page / peer.

Usage: .venv/bin/python benchmarks/console.py [--calls 30] [--quick] [--no-write-docs]
A full run rewrites the console section of docs/benchmarks.md; --quick leaves it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import Any

from _common import (
    ROOT,
    BenchmarkError,
    OtherLoad,
    ensure_import_paths,
    free_port,
    git_revision,
    machine_info,
    markdown_table,
    ratio,
    replace_section,
    summarize,
)

ensure_import_paths()
# The embedded stack writes its endpoint file under MLOPS_STATE_DIR: not the user's.
os.environ.setdefault("MLOPS_STATE_DIR", tempfile.mkdtemp(prefix="console-bench-"))

import requests  # noqa: E402
from rich.console import Console  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- BEGIN CONSOLE RESULTS (written by benchmarks/console.py) -->"
END = "<!-- END CONSOLE RESULTS -->"
MODEL = "breast-cancer"
RUNS, VERSIONS = 50, 20
HISTORY_BUCKETS = 288  # a day of 5-minute buckets: the routing page's default window
BUDGET_MS = 300.0


def build_world(api: str, description: Any) -> dict[str, Any]:
    """The demo, then runs and versions up to RUNS and VERSIONS; returns the run ids."""
    from infra.cli.client import ApiClient, Target
    from infra.local.demo import run_demo
    from mlops_core.storage.dynamo import MetadataTable
    from mlops_core.training.tracking import RunTracker

    client = ApiClient(Target(api_url=api, api_key=description.api_key, region=description.region))
    demo = run_demo(description, client, Console(file=sys.stderr))
    tracker = RunTracker(MetadataTable(description.metadata_table))
    record = tracker.get_with_candidates(demo.run_id)
    candidates = record.pop("candidates")
    runs = [demo.run_id]
    for i in range(1, RUNS):
        run_id = f"{MODEL}-bench-{i:03d}"
        tracker.start(run_id, MODEL, record["request"])
        fields = {
            k: v
            for k, v in record.items()
            if k in {"dataset", "target_metric", "best_candidate", "evaluation"}
        }
        tracker.update(run_id, **fields)
        for candidate in candidates:
            tracker.record_candidate(run_id, candidate)
        tracker.finish(run_id, "SUCCEEDED" if i < VERSIONS else "REJECTED")
        runs.append(run_id)
    version = client.call("GET", f"/models/{MODEL}/versions/{demo.version}")
    for i in range(1, VERSIONS):
        body = {
            "artifact_key": version["artifact"]["key"],
            "signature": version["signature"],
            "metrics": {"roc_auc": 0.95 + i / 1000},
            "run_id": runs[i],
        }
        client.call("POST", f"/models/{MODEL}/versions", body)
    client.set_routing(
        MODEL,
        {
            "type": "split",
            "weights": [{"version": VERSIONS - 1, "weight": 0.5}, {"version": VERSIONS, "weight": 0.5}],
        },
    )
    write_routing_history(MetadataTable(description.metadata_table))
    started = client.start_drift_run(MODEL)
    deadline = time.monotonic() + 60
    while client.drift_run(MODEL, started["run_id"])["run"]["status"] == "running":
        if time.monotonic() > deadline:
            raise BenchmarkError("the drift run did not finish within 60 s")
        time.sleep(0.2)
    listed = client.runs(MODEL, limit=RUNS)
    if len(listed) != RUNS or len(client.versions(MODEL)) != VERSIONS:
        raise BenchmarkError(
            f"world not as asked: {len(listed)} runs, {len(client.versions(MODEL))} versions"
        )
    return {"runs": runs, "demo_run": demo.run_id}


def write_routing_history(table: Any) -> None:
    """HISTORY_BUCKETS buckets ending now, as the capture and rewards functions write them."""
    from mlops_core.routing import bandit, history
    from mlops_core.routing.repository import RoutingRepository

    repository = RoutingRepository(table)
    seconds = history.BUCKET_SECONDS
    first = history.bucket_start(time.time(), seconds) - (HISTORY_BUCKETS - 1) * seconds
    arms: tuple[bandit.Arm, ...] = ()
    for i in range(HISTORY_BUCKETS):
        a, b = VERSIONS - 1, VERSIONS
        arms = bandit.update(arms, a, [float(k % 3 == 0) for k in range(10)])
        arms = bandit.update(arms, b, [float(k % 2 == 0) for k in range(10)])
        counts = {
            a: {"requests": 50 + i % 7, "calls": 50, "errors": i % 2, "feedback": 10, "rewarded": 10},
            b: {"requests": 50 - i % 7, "calls": 50, "feedback": 10, "rewarded": 10, "reward_sum": 5.0},
        }
        start = first + i * seconds
        table.transact(
            [
                repository.add_to_history_op(
                    MODEL,
                    start,
                    seconds,
                    counts,
                    posterior=history.snapshot(arms),
                    posterior_at=history.bucket_label(start + seconds - 1),
                )
            ]
        )


def timed(session: requests.Session, url: str, *, calls: int, warmup: int, expect: int = 200) -> list[float]:
    for _ in range(warmup):
        session.get(url, timeout=30)
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        answer = session.get(url, timeout=30)
        elapsed = (time.perf_counter() - started) * 1000
        if answer.status_code != expect:
            raise BenchmarkError(f"GET {url}: {answer.status_code} {answer.text[:300]}")
        samples.append(elapsed)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="5 calls per page; docs left alone")
    parser.add_argument("--no-write-docs", action="store_true")
    parser.add_argument("--json", help="write the results to this file too")
    args = parser.parse_args()
    calls = 5 if args.quick else args.calls

    from infra.local.stack import EmbeddedStack

    load = OtherLoad()
    stack = EmbeddedStack(api_port=free_port(), moto_port=free_port())
    description = stack.start()
    try:
        api = description.api_url
        world = build_world(api, description)
        run = world["demo_run"]
        console = f"{api}/_local/console/"
        pairs = [
            ("models", console, f"{api}/models"),
            (
                f"model ({VERSIONS} versions + card)",
                f"{console}?page=model&model={MODEL}",
                f"{api}/models/{MODEL}/versions",
            ),
            (
                f"runs ({RUNS} runs)",
                f"{console}?page=runs&model={MODEL}",
                f"{api}/models/{MODEL}/runs?limit={RUNS}",
            ),
            ("run (4 candidates)", f"{console}?page=run&run={run}", f"{api}/runs/{run}"),
            (
                f"routing ({HISTORY_BUCKETS} history buckets)",
                f"{console}?page=routing&model={MODEL}",
                f"{api}/models/{MODEL}/routing",
            ),
            (
                f"`GET …/routing/history` ({HISTORY_BUCKETS} buckets, JSON)",
                f"{api}/models/{MODEL}/routing/history",
                f"{api}/models/{MODEL}/routing",
            ),
            (
                "drift (history + report)",
                f"{console}?page=drift&model={MODEL}",
                f"{api}/models/{MODEL}/drift",
            ),
        ]
        session = requests.Session()
        results = []
        for name, page_url, peer_url in pairs:
            page = summarize(timed(session, page_url, calls=calls, warmup=args.warmup))
            peer = summarize(timed(session, peer_url, calls=calls, warmup=args.warmup))
            results.append(
                {"page": name, "page_ms": page, "peer_url": peer_url.removeprefix(api), "peer_ms": peer}
            )
            print(
                f"{name:32s} page median {page.median:7.1f} ms p95 {page.p95:7.1f} | "
                f"peer median {peer.median:7.1f} ms  ratio {ratio(page.median, peer.median):.2f}"
            )
    finally:
        stack.stop()
    other = load.report()
    rows = [
        [
            r["page"],
            f"{r['page_ms'].median:.0f}",
            f"{r['page_ms'].p95:.0f}",
            f"`GET {r['peer_url']}`",
            f"{r['peer_ms'].median:.0f}",
            f"{ratio(r['page_ms'].median, r['peer_ms'].median):.2f}",
            "yes" if r["page_ms"].p95 < BUDGET_MS else "**no**",
        ]
        for r in results
    ]
    table = markdown_table(
        [
            "page",
            "median ms",
            "p95 ms",
            "peer (JSON API, same data)",
            "peer median ms",
            "page / peer",
            f"p95 < {BUDGET_MS:.0f} ms",
        ],
        rows,
    )
    info = machine_info(["moto", "aws-lambda-powertools"])
    lines = [
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {git_revision()}, "
        f"{calls} calls per page after {args.warmup} warm-up, local stack with {RUNS} runs and "
        f"{VERSIONS} versions of {MODEL}.",
        "",
        table,
        "",
        "Machine: "
        + ", ".join(f"{k} {v}" for k, v in info.items())
        + (f"; other load meanwhile: {other}" if other else ""),
    ]
    print("\n".join(lines))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                [{**r, "page_ms": r["page_ms"].__dict__, "peer_ms": r["peer_ms"].__dict__} for r in results],
                out,
                indent=2,
            )
    if not args.quick and not args.no_write_docs:
        replace_section(DOCS, BEGIN, END, "\n".join(lines), "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n")


if __name__ == "__main__":
    try:
        main()
    except BenchmarkError as error:
        sys.exit(f"benchmark failed: {error}")
