"""The tree ensembles' model time in batch scoring under onnxruntime's options, against
scikit-learn's own ``predict_proba``: what can and cannot make the trees faster.

For each tree family of ``benchmarks/batch.py`` (same models, same rows: 10,000-row objects),
the CPU time (``time.process_time``, one thread: threadpoolctl limits OpenMP/BLAS to 1) of
running every object's rows through:

- the serving session as built for real-time inference and batch (``load_session``: one
  intra-op and one inter-op thread, onnxruntime's default graph optimizations, all), in the
  batch chunks of 8,192 rows;
- the same graph with other session options: graph optimizations off or basic, the parallel
  execution mode (still one thread), chunks of 1,024 / 4,096 rows or the whole object;
- the graph exported with float64 input (``export_sklearn(input_dtype="float64")``), where
  onnxruntime loads it;
- the label output alone (no probabilities);
- scikit-learn's ``predict_proba`` on the float64 rows (the peer's model, ``n_jobs=1``).

The fastest of ``--repeats`` passes per variant; ms per 10,000 rows. Nothing is written to
the docs: docs/benchmarks.md quotes a run with its command and load.

    .venv/bin/python benchmarks/batch_tree_options.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from _common import ensure_import_paths, text_table

ensure_import_paths()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
from batch import _data, _estimator, _objects  # noqa: E402

from mlops_core.batch.rows import parse_rows  # noqa: E402
from mlops_core.batch.scoring import CHUNK_ROWS  # noqa: E402
from mlops_core.serving.sessions import _session_options, load_session  # noqa: E402
from mlops_core.training.export import export_sklearn  # noqa: E402

TREES = ("random_forest", "hist_gradient_boosting")


def _session(onnx: bytes, configure: Callable[[ort.SessionOptions], None]) -> ort.InferenceSession:
    options = _session_options()
    configure(options)
    return ort.InferenceSession(onnx, sess_options=options, providers=["CPUExecutionProvider"])


def _fastest(step: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return min(times)


def _runner(
    session: ort.InferenceSession, outputs: list[str] | None, matrices: list[np.ndarray], chunk: int
) -> Any:
    def run() -> None:
        for matrix in matrices:
            for start in range(0, len(matrix), chunk):
                session.run(outputs, {"input": matrix[start : start + chunk]})

    return run


def measure(family: str, rows: int, objects: int, repeats: int, seed: int) -> list[list[str]]:
    from threadpoolctl import threadpool_limits

    x, y, names = _data()
    inputs = _objects(x, names, rows, objects, seed)
    with threadpool_limits(1):
        estimator = _estimator(family).fit(x, y)
        if hasattr(estimator, "n_jobs"):
            estimator.n_jobs = 1
        onnx, signature = export_sklearn(estimator, names, target="benign")
        matrices = [parse_rows(data, signature, "csv").matrix for data in inputs]
        doubles = [m.astype(np.float64) for m in matrices]  # the same (float32) values
        serving = load_session(onnx, signature)
        both = [signature.label_output, signature.probabilities_output or signature.label_output]
        level = ort.GraphOptimizationLevel
        variants: list[tuple[str, Callable[[], Any] | str]] = [
            ("serving session, chunks of 8,192 (batch today)", _runner(serving, both, matrices, CHUNK_ROWS)),
            (
                "graph optimizations off",
                _runner(
                    _session(onnx, lambda o: setattr(o, "graph_optimization_level", level.ORT_DISABLE_ALL)),
                    both,
                    matrices,
                    CHUNK_ROWS,
                ),
            ),
            (
                "graph optimizations basic",
                _runner(
                    _session(onnx, lambda o: setattr(o, "graph_optimization_level", level.ORT_ENABLE_BASIC)),
                    both,
                    matrices,
                    CHUNK_ROWS,
                ),
            ),
            (
                "parallel execution mode (1 thread)",
                _runner(
                    _session(onnx, lambda o: setattr(o, "execution_mode", ort.ExecutionMode.ORT_PARALLEL)),
                    both,
                    matrices,
                    CHUNK_ROWS,
                ),
            ),
            ("chunks of 1,024", _runner(serving, both, matrices, 1024)),
            ("chunks of 4,096", _runner(serving, both, matrices, 4096)),
            ("one run per object", _runner(serving, both, matrices, rows)),
            ("label output only", _runner(serving, [signature.label_output], matrices, CHUNK_ROWS)),
        ]
        try:
            onnx64, signature64 = export_sklearn(estimator, names, target="benign", input_dtype="float64")
            variants.append(
                ("float64 input graph", _runner(load_session(onnx64, signature64), both, doubles, CHUNK_ROWS))
            )
        except Exception as error:  # onnxruntime refuses some float64 tree graphs
            reason = str(error.__cause__ or error).splitlines()[0]
            variants.append(("float64 input graph", f"not loadable: {reason[-90:]}"))
        variants.append(
            (
                "scikit-learn predict_proba (the peer's model)",
                lambda: [estimator.predict_proba(m) for m in doubles],
            )
        )
        per_10k = 10_000 / (rows // objects * objects)
        table = []
        for name, run in variants:
            if isinstance(run, str):
                table.append([family, name, run])
            else:
                table.append([family, name, f"{_fastest(run, repeats) * 1000 * per_10k:.1f}"])
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20_261_201)
    args = parser.parse_args()
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    table = []
    for family in TREES:
        table += measure(family, args.rows, args.objects, args.repeats, args.seed)
    print(f"load average at start (1/5/15 min): {load}")
    print(text_table(["model", "variant", "CPU ms per 10,000 rows"], table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
