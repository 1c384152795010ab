"""Detection power of the default drift settings, by kind and size of shift and window size.

A reference profile of 50,000 rows with 8 numeric (normal) and 2 categorical (5 categories:
0.35, 0.25, 0.2, 0.12, 0.08) features. For each scenario one feature is changed in the
window (a mean or scale shift of the first numeric feature, or mass moved from the first
category to the fourth of the first categorical one: total variation = the mass moved);
the others are not. Reported: the share of ``--seeds`` windows in which ``detect_drift``
(defaults: BH at 0.05, normalized Wasserstein >= 0.05, Jensen-Shannon >= 0.05) flags the
changed feature, and in the "none" row the share of windows with any feature flagged
(false alarms). Writes the table into docs/drift.md between its markers.

Usage: .venv/bin/python benchmarks/drift_power.py [--seeds N]   (make drift-power)
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from _common import ROOT, ensure_import_paths, markdown_table, replace_section

ensure_import_paths()

from mlops_core.data.profiles import ReferenceProfile, profile_column  # noqa: E402
from mlops_core.monitoring.detect import detect_drift  # noqa: E402

DOCS = ROOT / "docs" / "drift.md"
BEGIN = "<!-- BEGIN POWER TABLE (written by benchmarks/drift_power.py) -->"
END = "<!-- END POWER TABLE -->"
WINDOWS = (100, 300, 1_000, 5_000, 20_000)
BASE = np.asarray([0.35, 0.25, 0.2, 0.12, 0.08])
NUMERIC, CATEGORICAL = [f"x{i}" for i in range(8)], ["c0", "c1"]
Change = Callable[[np.random.Generator, dict[str, np.ndarray]], None]


def _rows(rng: np.random.Generator, size: int) -> dict[str, np.ndarray]:
    rows = {n: rng.normal(size=size) for n in NUMERIC}
    rows |= {n: rng.choice(5, size, p=BASE).astype(float) for n in CATEGORICAL}
    return rows


def _tilted(mass: float) -> Change:
    def change(rng: np.random.Generator, rows: dict[str, np.ndarray]) -> None:
        p = BASE.copy()
        p[0] -= mass
        p[3] += mass
        rows["c0"] = rng.choice(5, rows["c0"].size, p=p).astype(float)

    return change


def _mean(shift: float) -> Change:
    def change(rng: np.random.Generator, rows: dict[str, np.ndarray]) -> None:
        rows["x0"] = rows["x0"] + shift

    return change


def _scale(factor: float) -> Change:
    def change(rng: np.random.Generator, rows: dict[str, np.ndarray]) -> None:
        rows["x0"] = rows["x0"] * factor

    return change


SCENARIOS: list[tuple[str, str | None, Change | None]] = [
    ("none (false alarms: any feature)", None, None),
    ("mean +0.05 sd", "x0", _mean(0.05)),
    ("mean +0.1 sd", "x0", _mean(0.1)),
    ("mean +0.2 sd", "x0", _mean(0.2)),
    ("mean +0.5 sd", "x0", _mean(0.5)),
    ("scale x1.1", "x0", _scale(1.1)),
    ("scale x1.25", "x0", _scale(1.25)),
    ("scale x1.5", "x0", _scale(1.5)),
    ("categories, TV 0.02", "c0", _tilted(0.02)),
    ("categories, TV 0.05", "c0", _tilted(0.05)),
    ("categories, TV 0.10", "c0", _tilted(0.10)),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--no-write-docs", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    reference_rows = _rows(np.random.default_rng(1), 50_000)
    profile = ReferenceProfile(
        format=2,
        rows=50_000,
        features={n: profile_column(v, categorical=n in CATEGORICAL) for n, v in reference_rows.items()},
    )
    table = []
    for index, (label, feature, change) in enumerate(SCENARIOS):
        cells = [label]
        for window in WINDOWS:
            hits = 0
            for seed in range(args.seeds):
                rng = np.random.default_rng([index, window, seed])
                rows = _rows(rng, window)
                if change is not None:
                    change(rng, rows)
                drifted = {f.feature for f in detect_drift(profile, rows).features if f.drifted}
                hits += bool(drifted) if feature is None else feature in drifted
            cells.append(f"{hits / args.seeds:.2f}")
        table.append(cells)
        print(" | ".join(cells), flush=True)
    text = markdown_table(["change in the window", *(f"{w:,} rows" for w in WINDOWS)], table)
    text += (
        f"\n\nShare of {args.seeds} seeded windows per cell; reference 50,000 rows; "
        f"{time.perf_counter() - started:.0f} s. Command: `make drift-power`."
    )
    if not args.no_write_docs:
        replace_section(DOCS, BEGIN, END, text, "# Drift\n\n" + BEGIN + "\n" + END + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
