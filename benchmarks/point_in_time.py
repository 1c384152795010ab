"""Point-in-time join: ours (``mlops_core.features.point_in_time.join_view``, numpy) against
pandas' ``merge_asof`` (direction="backward", by entity, tolerance = TTL) on the same rows,
in the same run, timed in turns. Both start from parsed columns (the parsing of source
objects is the same code for both uses and is left out); pandas' time includes the sorts
``merge_asof`` requires. The answers are compared: a benchmark of a wrong join is worthless.

    .venv/bin/python benchmarks/point_in_time.py [--labels 100000] [--rows 200000] [--repeats 5]

Needs pandas (the dev extra). Prints the medians and the ratio ours / pandas (docs/benchmarks.md,
"Point-in-time joins").
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "layers" / "core")]

from mlops_core.features.entities import FeatureViewDefinition  # noqa: E402
from mlops_core.features.point_in_time import Labels, RowStatus, join_view  # noqa: E402
from mlops_core.features.sources import ParsedObject  # noqa: E402

TTL_S = 86_400
N_FEATURES = 10
VIEW = FeatureViewDefinition(
    name="bench",
    owner="bench",
    entity={"name": "entity_id", "type": "int64"},
    features=[{"name": f"f{i}", "type": "float64"} for i in range(N_FEATURES)],
    source={
        "format": "csv",
        "path": "feature-sources/bench/",
        "event_timestamp": "t",
        "created_timestamp": "c",
    },
    ttl=TTL_S,
)


def data(n_labels: int, n_rows: int, seed: int) -> tuple[list[ParsedObject], Labels, object, object]:
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_entities = max(1, n_rows // 10)
    entities = rng.integers(1, n_entities + 1, n_rows)
    events = rng.integers(0, 30 * 24 * 60, n_rows) * 60_000
    created = events + rng.integers(0, 3, n_rows) * 1000
    values = rng.random((n_rows, N_FEATURES))
    parsed = ParsedObject(
        key="part-0.csv",
        entity_ids=[str(e) for e in entities],
        event_ms=events.tolist(),
        created_ms=created.tolist(),
        lines=list(range(2, n_rows + 2)),
        values={f"f{i}": values[:, i].tolist() for i in range(N_FEATURES)},
        rows_read=n_rows,
    )
    label_entities = rng.integers(1, n_entities + n_entities // 10 + 2, n_labels)
    label_times = rng.integers(-86_400_000, 31 * 86_400_000, n_labels)
    labels = Labels(
        entity_ids=[str(e) for e in label_entities],
        event_ms=label_times.astype(np.int64),
        labels=["0"] * n_labels,
        entity_column="entity_id",
        timestamp_column="t",
        label_column="label",
    )
    right = pd.DataFrame({"entity_id": entities, "t": events, "c": created, "line": np.arange(n_rows)})
    for i in range(N_FEATURES):
        right[f"f{i}"] = values[:, i]
    left = pd.DataFrame({"entity_id": label_entities, "t": label_times, "row": np.arange(n_labels)})
    return [parsed], labels, left, right


def pandas_join(left: object, right: object) -> object:
    import pandas as pd

    ordered_right = right.sort_values(["t", "c", "line"], kind="stable")  # type: ignore[attr-defined]
    ordered_left = left.sort_values("t", kind="stable")  # type: ignore[attr-defined]
    joined = pd.merge_asof(
        ordered_left, ordered_right, on="t", by="entity_id", direction="backward", tolerance=TTL_S * 1000
    )
    return joined.sort_values("row")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=100_000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    objects, labels, left, right = data(args.labels, args.rows, args.seed)

    ours_s, theirs_s = [], []
    for _ in range(args.repeats):  # in turns, so load changes hit both
        started = time.perf_counter()
        ours = join_view(VIEW, objects, labels)
        ours_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        theirs = pandas_join(left, right)
        theirs_s.append(time.perf_counter() - started)

    expected = theirs["f0"].to_numpy()  # type: ignore[index]
    got = ours.values["f0"]
    mismatches = int(np.count_nonzero(~((got == expected) | (np.isnan(got) & np.isnan(expected)))))
    ours_median, theirs_median = statistics.median(ours_s), statistics.median(theirs_s)
    print(
        f"{args.labels:,} label rows x {args.rows:,} source rows ({N_FEATURES} features), "
        f"{args.repeats} runs each, in turns"
    )
    print(f"  ours (numpy lexsort + searchsorted): median {ours_median:.3f} s")
    print(f"  pandas merge_asof (+ its sorts):     median {theirs_median:.3f} s")
    print(f"  ratio ours / pandas: {ours_median / theirs_median:.2f}")
    print(
        f"  ok {ours.count(RowStatus.ok):,}, missing {ours.count(RowStatus.missing):,}, "
        f"expired {ours.count(RowStatus.expired):,}; mismatches against merge_asof: {mismatches}"
    )
    if mismatches:
        raise SystemExit("the joins disagree")


if __name__ == "__main__":
    main()
