"""Drift detection, ours against Evidently 0.7's DataDriftPreset and a scipy ``ks_2samp``
loop, and our concept-drift detectors against river's ADWIN, in one run.

1. Numeric: reference and window of ``--rows`` rows x ``--features`` normal features, the
   first ``--shifted`` shifted by ``--shift`` standard deviations in the window. Ours:
   the reference profile is built once (as training does) and stored as JSON; timed is
   reading that file, validating it and ``detect_drift`` on the window's columns (defaults:
   BH at 0.05, normalized Wasserstein >= 0.05). scipy: ``ks_2samp`` per feature on the raw
   reference and window (decisions: p < 0.05 raw, and after BH). Evidently:
   ``Report([DataDriftPreset()]).run(window, reference)`` on pandas frames built beforehand.
2. Categorical: ``--cat-features`` features of 5 categories, 2 of them shifted by moving
   mass between categories (total variation 0.06 and 0.08); the same three sides (scipy:
   ``chi2_contingency`` per feature).
3. Concept: error streams (1 = wrong) with rate 0.10 that rises to 0.20 at 2,000, 6,000
   observations, 400 seeds. river's ``ADWIN()`` (defaults) gives a false-alarm rate (share
   of streams with an alarm before the change) and a delay (first alarm at or after the
   change). Our Page-Hinkley's threshold is the smallest whose false-alarm rate on 2,000
   other streams is at most river's on 200 of them; then all run on the evaluation seeds.
   Our ADWIN (same delta) is reported beside them.

Usage: make benchmark-drift  (or .venv/bin/python benchmarks/drift.py [--quick] [--no-evidently])
A full run rewrites the drift section of docs/benchmarks.md; --quick leaves it alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    ROOT,
    BenchmarkError,
    OtherLoad,
    ensure_import_paths,
    git_revision,
    machine_info,
    markdown_table,
    replace_section,
)

ensure_import_paths()

from mlops_core.data.profiles import ReferenceProfile, profile_column  # noqa: E402
from mlops_core.monitoring.categorical import benjamini_hochberg  # noqa: E402
from mlops_core.monitoring.concept import Adwin, PageHinkley  # noqa: E402
from mlops_core.monitoring.detect import detect_drift  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- BEGIN DRIFT RESULTS (written by benchmarks/drift.py) -->"
END = "<!-- END DRIFT RESULTS -->"
SPEED_GOALS = {"Evidently DataDriftPreset": 25.0, "scipy ks_2samp loop": 2.0}


def _timed(run: Any, repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def _ours(profile_path: Path, window: dict[str, np.ndarray]) -> set[str]:
    profile = ReferenceProfile.model_validate_json(profile_path.read_bytes())
    return {f.feature for f in detect_drift(profile, window).features if f.drifted}


def _evidently(reference: Any, window: Any) -> set[str]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(window, reference).dict()
    drifted = set()
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config.get("type", "").endswith("ValueDrift"):
            method, value, threshold = config["method"], metric["value"], config["threshold"]
            p_value_method = "p_value" in method or "test" in method.lower()
            if (value < threshold) if p_value_method else (value >= threshold):
                drifted.add(config["column"])
    return drifted


def numeric_case(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    names = [f"x{i:02d}" for i in range(args.features)]
    shifted = set(names[: args.shifted])
    reference = rng.normal(size=(args.rows, args.features))
    current = rng.normal(size=(args.rows, args.features))
    current[:, : args.shifted] += args.shift
    started = time.perf_counter()
    profile = ReferenceProfile(
        format=2,
        rows=args.rows,
        features={n: profile_column(reference[:, i], categorical=False) for i, n in enumerate(names)},
    )
    profile_path = tmp / "numeric_profile.json"
    profile_path.write_text(profile.model_dump_json(exclude_none=True))
    build_seconds = time.perf_counter() - started
    window = {n: np.ascontiguousarray(current[:, i]) for i, n in enumerate(names)}
    return _run_sides(
        args,
        shifted,
        names,
        ours=lambda: _ours(profile_path, window),
        scipy_run=lambda: _scipy_ks_loop(reference, current, names),
        frames=lambda: _frames(reference, current, names),
        extra={
            "profile build (s, once at training)": build_seconds,
            "profile JSON (bytes)": profile_path.stat().st_size,
        },
    )


def _scipy_ks_loop(reference: np.ndarray, current: np.ndarray, names: list[str]) -> tuple[set[str], set[str]]:
    from scipy.stats import ks_2samp

    p = np.asarray([ks_2samp(reference[:, i], current[:, i]).pvalue for i in range(len(names))])
    return {n for n, v in zip(names, p, strict=True) if v < 0.05}, {
        n for n, v in zip(names, benjamini_hochberg(p), strict=True) if v < 0.05
    }


def _frames(reference: np.ndarray, current: np.ndarray, names: list[str]) -> tuple[Any, Any]:
    import pandas as pd

    return pd.DataFrame(reference, columns=names), pd.DataFrame(current, columns=names)


def categorical_case(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed + 1)
    names = [f"c{i}" for i in range(args.cat_features)]
    base = np.asarray([0.35, 0.25, 0.2, 0.12, 0.08])
    moves = {names[0]: 0.06, names[1]: 0.08}  # total variation of each shifted feature
    reference = np.column_stack([rng.choice(5, args.rows, p=base) for _ in names]).astype(float)
    columns = []
    for n in names:
        p = base.copy()
        if n in moves:
            p[0] -= moves[n]
            p[3] += moves[n]
        columns.append(rng.choice(5, args.rows, p=p))
    current = np.column_stack(columns).astype(float)
    profile = ReferenceProfile(
        format=2,
        rows=args.rows,
        features={n: profile_column(reference[:, i], categorical=True) for i, n in enumerate(names)},
    )
    profile_path = tmp / "categorical_profile.json"
    profile_path.write_text(profile.model_dump_json(exclude_none=True))
    window = {n: np.ascontiguousarray(current[:, i]) for i, n in enumerate(names)}
    return _run_sides(
        args,
        set(moves),
        names,
        ours=lambda: _ours(profile_path, window),
        scipy_run=lambda: _scipy_chi2_loop(reference, current, names),
        frames=lambda: _frames(reference.astype(int), current.astype(int), names),
        extra={},
    )


def _scipy_chi2_loop(
    reference: np.ndarray, current: np.ndarray, names: list[str]
) -> tuple[set[str], set[str]]:
    from scipy.stats import chi2_contingency

    p = []
    for i in range(len(names)):
        table = np.vstack(
            [
                np.bincount(reference[:, i].astype(int), minlength=5),
                np.bincount(current[:, i].astype(int), minlength=5),
            ]
        )
        p.append(chi2_contingency(table, correction=False).pvalue)
    values = np.asarray(p)
    return {n for n, v in zip(names, values, strict=True) if v < 0.05}, {
        n for n, v in zip(names, benjamini_hochberg(values), strict=True) if v < 0.05
    }


def _run_sides(
    args: argparse.Namespace,
    shifted: set[str],
    names: list[str],
    *,
    ours: Any,
    scipy_run: Any,
    frames: Any,
    extra: dict[str, Any],
) -> dict[str, Any]:
    def decisions(found: set[str]) -> dict[str, int]:
        return {"found": len(found & shifted), "of": len(shifted), "false alarms": len(found - shifted)}

    ours_seconds, ours_found = _timed(ours, args.repeats)
    scipy_seconds, (raw, corrected) = _timed(scipy_run, args.repeats)
    sides: dict[str, Any] = {
        "ours": {"seconds": ours_seconds, **decisions(ours_found)},
        "scipy loop, p < 0.05": {"seconds": scipy_seconds, **decisions(raw)},
        "scipy loop, BH < 0.05": {"seconds": scipy_seconds, **decisions(corrected)},
    }
    if not args.no_evidently:
        reference_frame, window_frame = frames()
        evidently_seconds, found = _timed(
            lambda: _evidently(reference_frame, window_frame), args.evidently_repeats
        )
        sides["Evidently DataDriftPreset"] = {"seconds": evidently_seconds, **decisions(found)}
    return {"sides": sides, **extra}


def concept_case(args: argparse.Namespace) -> dict[str, Any]:
    from river.drift import ADWIN

    change, length = 2_000, 6_000

    def stream(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return np.r_[rng.random(change) < 0.10, rng.random(length - change) < 0.20].astype(float)

    def first_alarms(make: Any, seeds: range) -> list[int | None]:
        out: list[int | None] = []
        for seed in seeds:
            detector = make()
            out.append(next((i for i, e in enumerate(stream(seed)) if _fires(detector, float(e))), None))
        return out

    calibration, evaluation = range(50_000, 50_000 + args.concept_seeds // 2), range(args.concept_seeds)
    river_rate = _false_alarm_rate(first_alarms(ADWIN, calibration), change)
    # Our threshold from 10x as many streams (the statistic is vectorized): a rate of 0 on
    # few streams would otherwise pick a threshold that alarms falsely on the next ones.
    many = range(60_000, 60_000 + 10 * len(calibration))
    threshold = _calibrate_page_hinkley([stream(s) for s in many], change, river_rate)
    rows = {}
    for name, make in (
        ("river ADWIN (defaults)", ADWIN),
        (f"ours Page-Hinkley (threshold {threshold:g})", lambda: PageHinkley(threshold=threshold)),
        ("ours ADWIN (delta 0.002)", Adwin),
    ):
        alarms = first_alarms(make, evaluation)
        delays = [a - change for a in alarms if a is not None and a >= change]
        rows[name] = {
            "false-alarm rate": _false_alarm_rate(alarms, change),
            "mean delay": statistics.fmean(delays) if delays else None,
            "median delay": statistics.median(delays) if delays else None,
            "missed": sum(1 for a in alarms if a is None),
        }
    return {"calibration false-alarm rate (river)": river_rate, "detectors": rows, "seeds": len(evaluation)}


def _fires(detector: Any, value: float) -> bool:
    if isinstance(detector, PageHinkley | Adwin):
        return detector.update(value)
    detector.update(value)
    return bool(detector.drift_detected)


def _false_alarm_rate(alarms: list[int | None], change: int) -> float:
    return sum(1 for a in alarms if a is not None and a < change) / len(alarms)


def _calibrate_page_hinkley(streams: list[np.ndarray], change: int, target_rate: float) -> float:
    """The smallest threshold (step 0.5) whose false-alarm rate on ``streams`` is <= target:
    the Page-Hinkley statistic before its first alarm, vectorized."""
    detector = PageHinkley()
    peaks = []
    for errors in streams:
        before = errors[:change]
        counts = np.arange(1, before.size + 1)
        means = np.cumsum(before) / counts
        cumulative = np.cumsum(before - means - detector.delta)
        rise = cumulative - np.minimum.accumulate(np.minimum(cumulative, 0.0))
        peaks.append(float(rise[detector.min_samples - 1 :].max()))
    for threshold in np.arange(0.5, 200.5, 0.5):
        if sum(p > threshold for p in peaks) / len(peaks) <= target_rate:
            return float(threshold)
    raise BenchmarkError("no threshold reaches the target false-alarm rate")


def write_docs(results: dict[str, Any], info: dict[str, str], command: str) -> None:
    lines = [
        f"Command: `{command}` · revision {git_revision()} · {time.strftime('%Y-%m-%d')}",
        "",
        "#### Machine",
        "",
    ]
    lines.append(markdown_table(["", ""], [[k, v] for k, v in info.items()], align_right_from=2))
    for case, title in (("numeric", "Numeric"), ("categorical", "Categorical")):
        data = results[case]
        sides = data["sides"]
        lines += ["", f"#### {title}: {results['shape'][case]}", ""]
        rows = []
        for name, side in sides.items():
            ratio = side["seconds"] / sides["ours"]["seconds"]
            rows.append(
                [
                    name,
                    f"{side['seconds']:.3f}",
                    f"{ratio:.1f}x",
                    f"{side['found']}/{side['of']}",
                    str(side["false alarms"]),
                ]
            )
        lines.append(
            markdown_table(["side", "seconds (median)", "time / ours", "shifted found", "false alarms"], rows)
        )
        for key in ("profile build (s, once at training)", "profile JSON (bytes)"):
            if key in data:
                lines.append(
                    f"\n{key}: {data[key]:,.3f}"
                    if isinstance(data[key], float)
                    else f"\n{key}: {data[key]:,}"
                )
    concept = results["concept"]
    lines += [
        "",
        f"#### Concept: error rate 0.10 -> 0.20 at observation 2,000 ({concept['seeds']} seeds)",
        "",
    ]
    lines.append(
        markdown_table(
            ["detector", "false-alarm rate", "mean delay", "median delay", "missed"],
            [
                [
                    n,
                    f"{r['false-alarm rate']:.3f}",
                    f"{r['mean delay']:.0f}" if r["mean delay"] else "-",
                    f"{r['median delay']:.0f}" if r["median delay"] else "-",
                    str(r["missed"]),
                ]
                for n, r in concept["detectors"].items()
            ],
        )
    )
    river_rate = concept["calibration false-alarm rate (river)"]
    lines.append(
        "\nPage-Hinkley's threshold: the smallest with a false-alarm rate on 2,000 other streams "
        f"at most river's on 200 of them ({river_rate:.3f})."
    )
    replace_section(DOCS, BEGIN, END, "\n".join(lines), "# Benchmarks\n\n" + BEGIN + "\n" + END + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--shifted", type=int, default=10)
    parser.add_argument("--shift", type=float, default=0.1)
    parser.add_argument("--cat-features", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--evidently-repeats", type=int, default=1)
    parser.add_argument("--concept-seeds", type=int, default=400)
    parser.add_argument("--seed", type=int, default=20_261_201)
    parser.add_argument("--no-evidently", action="store_true")
    parser.add_argument("--quick", action="store_true", help="10,000 rows, 100 seeds; docs untouched")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.rows, args.concept_seeds = 10_000, 100
    try:
        import river  # noqa: F401

        if not args.no_evidently:
            import evidently  # noqa: F401
    except ImportError as error:
        print(f"the bench extra is missing ({error}): make benchmark-drift installs it", file=sys.stderr)
        return 2
    info = machine_info(["numpy", "scipy", "pandas", "evidently", "river"])
    load = OtherLoad()
    with tempfile.TemporaryDirectory() as folder:
        results = {
            "numeric": numeric_case(args, Path(folder)),
            "categorical": categorical_case(args, Path(folder)),
            "concept": concept_case(args),
            "shape": {
                "numeric": f"{args.rows:,} rows x {args.features} features, "
                f"{args.shifted} shifted by {args.shift} sd",
                "categorical": f"{args.rows:,} rows x {args.cat_features} features, "
                "2 shifted (TV 0.06, 0.08)",
            },
        }
    other = load.report()
    if other:
        info["other processes' CPU during the run"] = other
    print(json.dumps(results, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "machine": info}, indent=2, default=str))
    for name, goal in SPEED_GOALS.items():
        side = results["numeric"]["sides"].get(name)
        if side:
            ratio = side["seconds"] / results["numeric"]["sides"]["ours"]["seconds"]
            print(f"{name}: {ratio:.1f}x ours (goal {goal}x)")
    if not args.quick:
        write_docs(results, info, "make benchmark-drift")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
