"""Batch scoring throughput: rows per second per core of the scoring function's inner loop
against the usual approach (pandas + joblib + scikit-learn ``predict_proba``), same model,
same rows, same run.

For each object (CSV bytes, a header and 10 numeric features), both sides go from the
object's bytes to the bytes of its predictions CSV (line, prediction, one probability per
class, model version):

- **ours**: ``mlops_core.batch.scoring.score_object`` (what ``functions/batch/score.py``
  runs per Map item): a clean object checked with one ``bytes.translate`` and parsed by one
  ``np.loadtxt`` call (the per-line checked path only when a row is bad), the version's ONNX
  session (onnxruntime, one thread) in chunks of 8,192 rows, the CSV written per chunk with
  numpy (``mlops_core.batch.csv_output``, what ``%`` formatting writes, byte for byte);
  malformed rows would be reported by line (none here).
- **peer**: ``pd.read_csv`` -> ``estimator.predict_proba`` on the feature columns ->
  a ``DataFrame`` of the same columns -> ``to_csv(index=False)``; the estimator loaded
  once with ``joblib.load`` (not per object: in the peer's favour). It checks nothing.

Both run in this process on one thread (threadpoolctl limits BLAS/OpenMP to 1; the ONNX
session is built with one thread). The time is the process's CPU time (``time.process_time``)
so that other work on the machine counts less; ``--repeats`` pairs of passes over every
object (ours, then the peer's) are run, and the ratio is the median of the pairs' ratios (a
pair runs under about the same load). Goal: ours >= 3x the peer's rows/s per core.

    make benchmark-batch                       # full run, rewrites the results in docs/benchmarks.md
    .venv/bin/python benchmarks/batch.py --quick   # 20,000 rows, docs untouched
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    BenchmarkError,
    OtherLoad,
    cpu_busy_percent,
    ensure_import_paths,
    git_revision,
    machine_info,
    markdown_table,
    replace_section,
    text_table,
)

ensure_import_paths()

import numpy as np  # noqa: E402

from mlops_core.batch.rows import parse_rows  # noqa: E402
from mlops_core.batch.scoring import CHUNK_ROWS, score_object, score_rows  # noqa: E402
from mlops_core.registry.entities import ModelVersion  # noqa: E402
from mlops_core.serving.sessions import LoadedModel, load_session  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- BEGIN BATCH RESULTS (written by benchmarks/batch.py) -->"
END = "<!-- END BATCH RESULTS -->"
GOAL = 3.0
FAMILIES = ("logistic_regression", "random_forest", "hist_gradient_boosting")


def _estimator(family: str) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        # The demo's candidates (infra/local/demo.py).
        "logistic_regression": lambda: make_pipeline(
            StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)
        ),
        "random_forest": lambda: RandomForestClassifier(n_estimators=100, max_depth=8, random_state=0),
        "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(
            max_iter=100, learning_rate=0.1, random_state=0
        ),
    }[family]()


def _data() -> tuple[np.ndarray, np.ndarray, list[str]]:
    from sklearn.datasets import load_breast_cancer

    from infra.local.sample_data import N_FEATURES

    data = load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names[:N_FEATURES]]
    return data.data[:, :N_FEATURES], data.target, names


def _objects(x: np.ndarray, names: list[str], rows: int, objects: int, seed: int) -> list[bytes]:
    """``objects`` CSVs of the sample's rows with 2 % noise, 6 significant digits."""
    rng = np.random.default_rng(seed)
    per_object = rows // objects
    out = []
    for _ in range(objects):
        values = x[rng.integers(0, len(x), per_object)] * rng.normal(1.0, 0.02, (per_object, x.shape[1]))
        body = "\n".join(",".join(f"{v:.6g}" for v in row) for row in values)
        out.append((",".join(names) + "\n" + body + "\n").encode())
    return out


def _loaded(family: str, estimator: Any, names: list[str]) -> LoadedModel:
    from mlops_core.training.export import export_sklearn

    onnx, signature = export_sklearn(estimator, names, target="benign")
    version = ModelVersion.model_construct(model_name="bench", version=1, signature=signature)
    return LoadedModel(
        version=version,
        session=load_session(onnx, signature),
        output_names=[
            signature.label_output,
            *([signature.probabilities_output] if signature.probabilities_output else []),
        ],
    )


def _peer(model_path: str, names: list[str]) -> Any:
    import joblib
    import pandas as pd

    estimator = joblib.load(model_path)  # once, not per object (in the peer's favour)

    def score(data: bytes) -> bytes:
        frame = pd.read_csv(io.BytesIO(data))
        probabilities = estimator.predict_proba(frame[names].to_numpy())
        out = pd.DataFrame({"line": np.arange(2, len(frame) + 2)})
        out["prediction"] = estimator.classes_[probabilities.argmax(axis=1)]
        for i, label in enumerate(estimator.classes_):
            out[f"probability_{label}"] = probabilities[:, i]
        out["model_version"] = 1
        return out.to_csv(index=False).encode()

    return score


def _cpu_seconds(run: Any, objects: list[bytes]) -> float:
    start = time.process_time()
    for data in objects:
        run(data)
    return time.process_time() - start


def _paired_passes(
    ours: Any, peer: Any, objects: list[bytes], repeats: int
) -> tuple[list[float], list[float]]:
    """``repeats`` pairs of passes over every object, ours then the peer's in each pair, so
    that a change of load on the shared machine weighs on both sides of a pair alike."""
    ours_runs, peer_runs = [], []
    for _ in range(repeats):
        ours_runs.append(_cpu_seconds(ours, objects))
        peer_runs.append(_cpu_seconds(peer, objects))
    return ours_runs, peer_runs


def _min_cpu(step: Any, items: list[Any], passes: int) -> float:
    times = []
    for _ in range(passes):
        start = time.process_time()
        for item in items:
            step(item)
        times.append(time.process_time() - start)
    return min(times)


def _stages(model: LoadedModel, estimator: Any, names: list[str], inputs: list[bytes]) -> dict[str, Any]:
    """Where each side's CPU time goes (the fastest of 3 passes per stage): reading the CSV,
    the model, writing the output (ours: the checks of the outputs and the formatting)."""
    import pandas as pd

    signature = model.version.signature
    parsed = [parse_rows(data, signature, "csv") for data in inputs]
    chunks = [
        p.matrix[start : start + CHUNK_ROWS] for p in parsed for start in range(0, len(p.matrix), CHUNK_ROWS)
    ]
    frames = [pd.read_csv(io.BytesIO(data)) for data in inputs]
    matrices = [frame[names].to_numpy() for frame in frames]

    def peer_write(item: tuple[Any, np.ndarray]) -> bytes:
        frame, probabilities = item
        out = pd.DataFrame({"line": np.arange(2, len(frame) + 2)})
        out["prediction"] = estimator.classes_[probabilities.argmax(axis=1)]
        for i, label in enumerate(estimator.classes_):
            out[f"probability_{label}"] = probabilities[:, i]
        out["model_version"] = 1
        return bytes(out.to_csv(index=False).encode())

    ours_model = _min_cpu(model.outputs, chunks, 3)
    peer_model = _min_cpu(estimator.predict_proba, matrices, 3)
    probabilities = [estimator.predict_proba(m) for m in matrices]
    return {
        "ours": {
            "read": _min_cpu(lambda data: parse_rows(data, signature, "csv"), inputs, 3),
            "model": ours_model,
            "write": max(0.0, _min_cpu(lambda p: score_rows(model, p), parsed, 3) - ours_model),
        },
        "peer": {
            "read": _min_cpu(lambda data: pd.read_csv(io.BytesIO(data)), inputs, 3),
            "model": peer_model,
            "write": _min_cpu(peer_write, list(zip(frames, probabilities, strict=True)), 3),
        },
    }


def run(rows: int, objects: int, repeats: int, families: list[str], seed: int) -> dict[str, Any]:
    try:
        import joblib
        import pandas  # noqa: F401  (the peer)
        from threadpoolctl import threadpool_limits
    except ImportError as error:
        raise BenchmarkError(
            f"{error.name} is missing: `make benchmark-batch` installs the bench extra"
        ) from None
    x, y, names = _data()
    inputs = _objects(x, names, rows, objects, seed)
    total_rows = sum(data.count(b"\n") - 1 for data in inputs)
    results: dict[str, Any] = {
        "rows": total_rows,
        "objects": objects,
        "bytes": sum(map(len, inputs)),
        "repeats": repeats,
        "families": {},
    }
    with tempfile.TemporaryDirectory() as folder, threadpool_limits(1):
        for family in families:
            estimator = _estimator(family).fit(x, y)
            if hasattr(estimator, "n_jobs"):
                estimator.n_jobs = 1
            path = str(Path(folder) / f"{family}.joblib")
            joblib.dump(estimator, path)
            model = _loaded(family, estimator, names)
            peer = _peer(path, names)
            ours_check = score_object(model, inputs[0], "csv")
            if ours_check.scored != inputs[0].count(b"\n") - 1 or ours_check.bad:
                raise BenchmarkError(
                    f"{family}: our scoring refused rows of clean data: {ours_check.bad[:3]}"
                )
            agreement = _agreement(ours_check.predictions, peer(inputs[0]))
            ours_runs, peer_runs = _paired_passes(
                lambda data, m=model: score_object(m, data, "csv"), peer, inputs, repeats
            )
            ours, theirs = statistics.median(ours_runs), statistics.median(peer_runs)
            pair_ratios = [t / o for o, t in zip(ours_runs, peer_runs, strict=True)]
            results["families"][family] = {
                "ours_seconds": ours,
                "peer_seconds": theirs,
                "ours_rows_per_second": total_rows / ours,
                "peer_rows_per_second": total_rows / theirs,
                # The median of the pairs' ratios (each pair under about the same load).
                "ratio": statistics.median(pair_ratios),
                "ratio_range": [min(pair_ratios), max(pair_ratios)],
                "ours_runs": ours_runs,
                "peer_runs": peer_runs,
                "label_agreement": agreement,
                "stages": _stages(model, joblib.load(path), names, inputs),
            }
    return results


def _agreement(ours: bytes, theirs: bytes) -> float:
    """Share of rows where both sides predict the same label (ONNX float32 vs scikit-learn float64)."""
    import csv

    a = [r["prediction"] for r in csv.DictReader(io.StringIO(ours.decode()))]
    b = [r["prediction"] for r in csv.DictReader(io.StringIO(theirs.decode()))]
    return sum(p == q for p, q in zip(a, b, strict=True)) / len(a)


def _rows(results: dict[str, Any]) -> list[list[str]]:
    table = []
    for family, r in results["families"].items():
        table.append(
            [
                family,
                f"{r['ours_rows_per_second']:,.0f}",
                f"{r['peer_rows_per_second']:,.0f}",
                f"{r['ratio']:.2f}x ({r['ratio_range'][0]:.2f}-{r['ratio_range'][1]:.2f})",
                "met" if r["ratio"] >= GOAL else "not met",
                f"{r['ours_seconds']:.3f} / {r['peer_seconds']:.3f}",
                f"{r['label_agreement']:.4f}",
            ]
        )
    return table


STAGES_HEADER = [
    "model",
    "ours: read / model / write",
    "peer: read / model / write",
    "bound",
]


def _stage_rows(results: dict[str, Any]) -> list[list[str]]:
    """CPU seconds per stage, and the bound: the peer's time over our model's alone (the
    ratio if reading and writing cost nothing)."""
    table = []
    for family, r in results["families"].items():
        ours, peer = r["stages"]["ours"], r["stages"]["peer"]
        table.append(
            [
                family,
                " / ".join(f"{ours[k]:.3f}" for k in ("read", "model", "write")),
                " / ".join(f"{peer[k]:.3f}" for k in ("read", "model", "write")),
                f"{r['peer_seconds'] / ours['model']:.1f}x",
            ]
        )
    return table


HEADER = [
    "model",
    "ours rows/s/core",
    "peer rows/s/core",
    "ours vs peer (range)",
    f">= {GOAL:.0f}x",
    "CPU s (ours / peer)",
    "same label",
]


def write_docs(results: dict[str, Any], info: dict[str, str], command: str) -> None:
    lines = [
        f"Command: `{command}` · revision {git_revision()} · {time.strftime('%Y-%m-%d')}",
        "",
        f"{results['rows']:,} rows in {results['objects']} objects ({results['bytes'] / 1e6:.1f} MB of CSV), "
        f"{results['repeats']} pairs of passes over all objects (ours, then the peer's); CPU s are "
        "the medians of the passes, the ratio the median of the pairs' ratios (their range in "
        "brackets).",
        "",
        markdown_table(HEADER, _rows(results), align_right_from=2),
        "",
        "Where the CPU time goes, in seconds for all objects (the fastest of 3 passes of each "
        "stage alone; ours' write is the output checks and the formatting), and the bound: the "
        "peer's time over our model's alone, the ratio if reading and writing cost nothing.",
        "",
        markdown_table(STAGES_HEADER, _stage_rows(results), align_right_from=1),
        "",
        "#### Machine",
        "",
        markdown_table(["", ""], [[k, v] for k, v in info.items()], align_right_from=2),
    ]
    replace_section(DOCS, BEGIN, END, "\n".join(lines), "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--family", action="append", choices=FAMILIES, help="(repeatable; default: all three)"
    )
    parser.add_argument("--seed", type=int, default=20_261_201)
    parser.add_argument("--quick", action="store_true", help="20,000 rows, 2 repeats; docs untouched")
    parser.add_argument("--write-docs", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeats = 20_000, 2
    write = (not args.quick) if args.write_docs is None else args.write_docs
    busy = cpu_busy_percent()
    load = OtherLoad()
    try:
        results = run(args.rows, args.objects, args.repeats, args.family or list(FAMILIES), args.seed)
    except BenchmarkError as error:
        print(f"benchmark could not run: {error}", file=sys.stderr)
        return 2
    info = machine_info(["numpy", "onnxruntime", "pandas", "scikit-learn", "joblib"])
    info["CPU busy before the run (1 s sample, all cores)"] = "?" if busy is None else f"{busy:.0f} %"
    info["other processes' CPU meanwhile"] = load.report() or "?"
    print(text_table(HEADER, _rows(results)))
    print()
    print(text_table(STAGES_HEADER, _stage_rows(results)))
    if args.json:
        args.json.write_text(json.dumps(results | {"machine": info}, indent=2))
    if write:
        write_docs(results, info, " ".join(["python benchmarks/batch.py", *sys.argv[1:]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
