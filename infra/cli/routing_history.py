"""`mlops routing history`: a model's routing over time as a table, one row per time bucket
and version (predictions, their share of the bucket, feedback, the posterior at its end)."""

from __future__ import annotations

from typing import Any

from infra.cli.tables import Rows


def timeline_table(history: dict[str, Any]) -> Rows:
    level = history.get("posterior_level", 0.9)
    table = Rows(
        "bucket",
        "version",
        "predictions",
        "share",
        "errors",
        "feedback",
        f"posterior mean [{level:.0%} CI]",
        ids=("bucket",),
    )
    for bucket in history["buckets"]:
        for point in bucket["variants"]:
            posterior = point.get("posterior")
            share = point.get("share")
            table.add_row(
                bucket["start"],
                f"v{point['version']}",
                str(point["requests"])
                + (f" (+{point['shadow_requests']} shadow)" if point["shadow_requests"] else ""),
                "" if share is None else f"{share:.0%}",
                f"{point['errors']} of {point['calls']}" if point["calls"] else "",
                str(point["feedback"]) if point["feedback"] else "",
                ""
                if posterior is None
                else f"{posterior['mean']:.4f} [{posterior['lower']:.4f}, {posterior['upper']:.4f}]",
            )
    return table
