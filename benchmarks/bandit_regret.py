"""Bandit quality and decision latency, ours against MABWiser's Thompson sampling, in one run.

Ours: ``mlops_core.routing.bandit`` (``choose`` per round, ``update`` per arm and batch),
plain and discounted. Peer: MABWiser's ``MAB(arms, LearningPolicy.ThompsonSampling())``,
``fit`` once on nothing (its Beta(1, 1) prior), then ``predict`` for a batch of rounds and
``partial_fit`` on their rewards. Both use a Beta(1, 1) prior.

1. Regret, stationary: 3 arms with Bernoulli rates [0.05, 0.06, 0.08], 20,000 rounds,
   updates in batches of 100 (100 rounds decided with the current posterior, then their
   rewards applied), over N seeds. Every arm's reward for every round is drawn before the
   run from the seed, and every policy reads the same streams. Reported: mean cumulative
   pseudo-regret (sum over rounds of best rate - chosen arm's rate) and the ratio of the
   means, ours / MABWiser's, with a paired bootstrap 95 % interval over seeds.
2. Regret, switching: the same, but at round 10,000 the rates are reversed
   ([0.08, 0.06, 0.05]: the best arm becomes the worst). Discounted Thompson sampling
   against plain (ours) and MABWiser's.
3. Latency of one decision with 3 arms: ours (``bandit.choose`` and ``router.route``)
   against MABWiser's ``predict()`` one call at a time and ``predict`` of a batch of 100;
   and, for the record of why ``choose`` draws scalars, the same decision drawn with one
   vectorized numpy call and with the standard library's ``random.betavariate``.

The seeds run in worker processes (``--workers``, default: the CPU count); the latency is
measured in this process once they are done.

Usage: .venv/bin/python benchmarks/bandit_regret.py [--seeds N] [--quick]
       (``make benchmark-bandit``); a full run rewrites the bandit results section of
       docs/benchmarks.md, ``--quick`` is a smoke test that leaves it alone.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import statistics
import sys
import time
import timeit
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from _common import (
    BUSY_KEY,
    ROOT,
    BenchmarkError,
    OtherLoad,
    ensure_import_paths,
    git_revision,
    machine_info,
    markdown_table,
    replace_section,
    source_digest,
    text_table,
)

ensure_import_paths()

from mlops_core.routing import bandit, router  # noqa: E402 (needs the import paths above)
from mlops_core.routing.bandit import Arm  # noqa: E402
from mlops_core.routing.policy import BanditPolicy  # noqa: E402

DOCS = ROOT / "docs" / "benchmarks.md"
BEGIN = "<!-- BEGIN BANDIT RESULTS (written by benchmarks/bandit_regret.py) -->"
END = "<!-- END BANDIT RESULTS -->"
RATES = (0.05, 0.06, 0.08)
SWITCHED_RATES = (0.08, 0.06, 0.05)  # from the switch on: the best arm is the worst
# Chosen on a pilot of 60 other seeds (10,000-10,059), switching environment: regret 212,
# 172, 145, 142, 143, 143, 164 for gamma 0.998, 0.999, 0.9995, 0.9997, 0.9998, 0.99985,
# 0.9999 (plain: 252). 0.9998 also costs least in the stationary environment among the flat ones.
DEFAULT_DISCOUNT = 0.9998
# Seeds of the reward streams and of the policies' generators: [purpose, seed].
STREAM_SEED, OURS_SEED, BOOTSTRAP_SEED = 11, 12, 13
BOOTSTRAP_RESAMPLES = 10_000
RATIO_GOAL = 1.10  # ours / MABWiser's, stationary mean regret
LATENCY_GOAL_US = 10.0
PACKAGES = ("mabwiser", "numpy", "pandas", "scikit-learn", "pydantic")
POLICIES = ("ours", "ours_discounted", "mabwiser")
LABELS = {
    "ours": "ours, Thompson sampling",
    "ours_discounted": "ours, discounted Thompson sampling (gamma = {discount})",
    "mabwiser": "MABWiser ThompsonSampling",
}


@dataclass(frozen=True)
class Config:
    seeds: int
    rounds: int
    batch: int
    switch_at: int
    discount: float
    workers: int


# ---- simulation (worker processes) --------------------------------------------------


def rate_schedule(config: Config, switching: bool) -> np.ndarray:
    """(rounds, arms) expected reward of every arm at every round."""
    rates = np.tile(np.array(RATES), (config.rounds, 1))
    if switching:
        rates[config.switch_at :] = SWITCHED_RATES
    return rates


def reward_streams(config: Config, seed: int, rates: np.ndarray) -> np.ndarray:
    """Every arm's 0/1 reward at every round, drawn up front: all policies read these."""
    uniforms = np.random.default_rng([STREAM_SEED, seed]).random(rates.shape)
    return (uniforms < rates).astype(np.float64)


def run_ours(config: Config, rewards: np.ndarray, seed: int, discount: float | None, tag: int) -> np.ndarray:
    """Arm index chosen at every round by ours (versions 1..K stand for arms 0..K-1)."""
    rng = np.random.default_rng([OURS_SEED, seed, tag])
    versions = list(range(1, rewards.shape[1] + 1))
    arms: tuple[Arm, ...] = tuple(Arm(v) for v in versions)
    chosen = np.empty(config.rounds, dtype=np.int64)
    rows = rewards.tolist()
    choose = bandit.choose
    for start in range(0, config.rounds, config.batch):
        picks = [choose(arms, rng) for _ in range(min(config.batch, config.rounds - start))]
        earned: dict[int, list[float]] = {v: [] for v in versions}
        for offset, version in enumerate(picks):
            earned[version].append(rows[start + offset][version - 1])
        for version in versions:  # one batch of rewards per arm, as the rewards function applies them
            if earned[version]:
                arms = bandit.update(arms, version, earned[version], discount=discount)
        chosen[start : start + len(picks)] = np.asarray(picks) - 1
    return chosen


def run_mabwiser(config: Config, rewards: np.ndarray, seed: int) -> np.ndarray:
    from mabwiser.mab import MAB, LearningPolicy

    arms = list(range(rewards.shape[1]))
    mab = MAB(arms=arms, learning_policy=LearningPolicy.ThompsonSampling(), seed=seed)
    mab.fit(decisions=np.array([], dtype=np.int64), rewards=np.array([], dtype=np.float64))
    chosen = np.empty(config.rounds, dtype=np.int64)
    for start in range(0, config.rounds, config.batch):
        size = min(config.batch, config.rounds - start)
        # A non-contextual MAB draws one sample per arm and row of `contexts`: a batch of decisions.
        picks = np.asarray(mab.predict(np.zeros((size, 1))) if size > 1 else [mab.predict()], dtype=np.int64)
        mab.partial_fit(decisions=picks, rewards=rewards[np.arange(start, start + size), picks])
        chosen[start : start + size] = picks
    return chosen


def pseudo_regret(rates: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """Cumulative pseudo-regret at every round."""
    per_round = rates.max(axis=1) - rates[np.arange(len(chosen)), chosen]
    return np.cumsum(per_round)


def run_seed(args: tuple[Config, int]) -> dict[str, Any]:
    config, seed = args
    result: dict[str, Any] = {"seed": seed}
    for env, switching in (("stationary", False), ("switching", True)):
        rates = rate_schedule(config, switching)
        rewards = reward_streams(config, seed, rates)
        chosen = {
            "ours": run_ours(config, rewards, seed, None, 0),
            "ours_discounted": run_ours(config, rewards, seed, config.discount, 1),
            "mabwiser": run_mabwiser(config, rewards, seed),
        }
        for policy, picks in chosen.items():
            regret = pseudo_regret(rates, picks)
            result[f"{env}/{policy}"] = float(regret[-1])
            result[f"{env}/{policy}/first"] = float(regret[config.switch_at - 1])
            result[f"{env}/{policy}/best_share"] = float(np.mean(picks == rates.argmax(axis=1)))
    return result


# ---- statistics -----------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float


def mean_interval(values: np.ndarray) -> Interval:
    mean = float(values.mean())
    half = 1.96 * float(values.std(ddof=1)) / math.sqrt(len(values)) if len(values) > 1 else math.nan
    return Interval(mean, mean - half, mean + half)


def ratio_interval(ours: np.ndarray, peer: np.ndarray) -> Interval:
    """Ratio of the means, with a paired bootstrap 95 % interval (seeds resampled together)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    index = rng.integers(0, len(ours), size=(BOOTSTRAP_RESAMPLES, len(ours)))
    ratios = ours[index].mean(axis=1) / peer[index].mean(axis=1)
    low, high = np.quantile(ratios, [0.025, 0.975])
    return Interval(float(ours.mean() / peer.mean()), float(low), float(high))


# ---- latency (this process) ------------------------------------------------------------


def per_call_us(fn: Callable[[], object], calls: int, repeat: int, per: int = 1) -> tuple[float, float]:
    """(median, min) over ``repeat`` timings of ``calls`` calls, in µs per decision."""
    fn()  # warm-up
    times = [t / calls / per * 1e6 for t in timeit.repeat(fn, number=calls, repeat=repeat)]
    return statistics.median(times), min(times)


def choose_vectorized(
    arms: Sequence[Arm], rng: np.random.Generator, alpha0: float = 1.0, beta0: float = 1.0
) -> int:
    """``bandit.choose`` as one vectorized draw (the arrays built from the arms it is given)."""
    alpha = np.array([alpha0 + arm.successes for arm in arms])
    beta = np.array([beta0 + arm.failures for arm in arms])
    return arms[int(np.argmax(rng.beta(alpha, beta)))].version


def choose_stdlib(arms: Sequence[Arm], rng: random.Random, alpha0: float = 1.0, beta0: float = 1.0) -> int:
    """``bandit.choose`` with the standard library's ``random.betavariate``."""
    betavariate = rng.betavariate
    best_version, best = arms[0].version, -1.0
    for version, successes, failures in arms:
        sample = betavariate(alpha0 + successes, beta0 + failures)
        if sample > best:
            best_version, best = version, sample
    return best_version


def measure_latency(calls: int, repeat: int) -> dict[str, tuple[float, float]]:
    from mabwiser.mab import MAB, LearningPolicy

    warm = (Arm(1, 60.0, 940.0), Arm(2, 70.0, 1100.0), Arm(3, 600.0, 6900.0))  # a run in progress
    rng = np.random.default_rng(0)
    policy = BanditPolicy(versions=(1, 2, 3))
    explore = BanditPolicy(versions=(1, 2, 3), discount=0.999, min_exploration=0.05)
    mab = MAB(arms=[0, 1, 2], learning_policy=LearningPolicy.ThompsonSampling(), seed=0)
    # The same posteriors on both sides: MABWiser fitted on the rewards that make ours' counts.
    decisions = np.repeat([0, 1, 2], [int(a.successes + a.failures) for a in warm])
    rewards = np.concatenate([np.repeat([1.0, 0.0], [int(a.successes), int(a.failures)]) for a in warm])
    mab.fit(decisions=decisions, rewards=rewards)
    contexts = np.zeros((100, 1))
    python_rng = random.Random(0)
    wide = tuple(Arm(v, 10.0 * v, 1000.0) for v in range(1, 11))
    alpha, beta_ = (np.array([1 + a.successes for a in warm]), np.array([1 + a.failures for a in warm]))
    wide_alpha, wide_beta = (
        np.array([1 + a.successes for a in wide]),
        np.array([1 + a.failures for a in wide]),
    )
    batch_calls = max(1, calls // 100)
    return {
        "ours_choose": per_call_us(lambda: bandit.choose(warm, rng), calls, repeat),
        "ours_route": per_call_us(
            lambda: router.route(policy, model_name="m", rng=rng, arms=warm), calls, repeat
        ),
        "ours_route_explore": per_call_us(
            lambda: router.route(explore, model_name="m", rng=rng, arms=warm), calls, repeat
        ),
        "ours_loop": per_call_us(
            lambda: [bandit.choose(warm, rng) for _ in range(100)], batch_calls, repeat, 100
        ),
        "ours_batch": per_call_us(lambda: bandit.choose_many(warm, rng, 100), batch_calls, repeat, 100),
        "mabwiser_single": per_call_us(mab.predict, batch_calls * 10, repeat),
        "mabwiser_batch": per_call_us(lambda: mab.predict(contexts), batch_calls, repeat, 100),
        "ours_choose_10": per_call_us(lambda: bandit.choose(wide, rng), calls, repeat),
        "vectorized": per_call_us(lambda: choose_vectorized(warm, rng), calls, repeat),
        "vectorized_10": per_call_us(lambda: choose_vectorized(wide, rng), calls, repeat),
        "vectorized_prebuilt": per_call_us(lambda: int(np.argmax(rng.beta(alpha, beta_))), calls, repeat),
        "vectorized_prebuilt_10": per_call_us(
            lambda: int(np.argmax(rng.beta(wide_alpha, wide_beta))), calls, repeat
        ),
        "stdlib": per_call_us(lambda: choose_stdlib(warm, python_rng), calls, repeat),
        "stdlib_10": per_call_us(lambda: choose_stdlib(wide, python_rng), calls, repeat),
        "draw_numpy": per_call_us(lambda: rng.beta(61.0, 941.0), calls, repeat),
        "draw_stdlib": per_call_us(lambda: python_rng.betavariate(61.0, 941.0), calls, repeat),
    }


# ---- report ---------------------------------------------------------------------------


def fmt_interval(interval: Interval, digits: int = 1) -> str:
    return f"{interval.value:.{digits}f} [{interval.low:.{digits}f}, {interval.high:.{digits}f}]"


def summarize(config: Config, results: list[dict[str, Any]]) -> dict[str, Any]:
    def column(key: str) -> np.ndarray:
        return np.array([r[key] for r in results])

    summary: dict[str, Any] = {}
    for env in ("stationary", "switching"):
        peer = column(f"{env}/mabwiser")
        plain = column(f"{env}/ours")
        for policy in POLICIES:
            values = column(f"{env}/{policy}")
            first = column(f"{env}/{policy}/first")
            summary[f"{env}/{policy}"] = {
                "regret": mean_interval(values),
                "first_half": float(first.mean()),
                "second_half": float((values - first).mean()),
                "best_share": float(column(f"{env}/{policy}/best_share").mean()),
                "vs_mabwiser": ratio_interval(values, peer),
                "vs_ours_plain": ratio_interval(values, plain),
            }
    return summary


def goal_checks(
    summary: dict[str, Any], latency: dict[str, tuple[float, float]]
) -> list[tuple[str, str, str, str]]:
    stationary: Interval = summary["stationary/ours"]["vs_mabwiser"]
    vs_plain: Interval = summary["switching/ours_discounted"]["vs_ours_plain"]
    vs_peer: Interval = summary["switching/ours_discounted"]["vs_mabwiser"]
    decision = latency["ours_route"][0]
    return [
        (
            "stationary regret, ours / MABWiser (95 % CI)",
            fmt_interval(stationary, 3),
            f"<= {RATIO_GOAL:.2f}",
            "met"
            if stationary.high <= RATIO_GOAL
            else ("met (point)" if stationary.value <= RATIO_GOAL else "NOT met"),
        ),
        (
            "switching regret, discounted / ours plain (95 % CI)",
            fmt_interval(vs_plain, 3),
            "< 1",
            "met" if vs_plain.high < 1 else "NOT met",
        ),
        (
            "switching regret, discounted / MABWiser (95 % CI)",
            fmt_interval(vs_peer, 3),
            "< 1",
            "met" if vs_peer.high < 1 else "NOT met",
        ),
        (
            "one routing decision, 3 arms (route, median µs)",
            f"{decision:.2f}",
            f"<= {LATENCY_GOAL_US:.0f}",
            "met" if decision <= LATENCY_GOAL_US else "NOT met",
        ),
    ]


def regret_rows(config: Config, summary: dict[str, Any], env: str) -> list[list[str]]:
    rows = []
    for policy in POLICIES:
        entry = summary[f"{env}/{policy}"]
        label = LABELS[policy].format(discount=config.discount)
        rows.append(
            [
                label,
                fmt_interval(entry["regret"]),
                f"{entry['first_half']:.1f}",
                f"{entry['second_half']:.1f}",
                f"{100 * entry['best_share']:.1f}%",
                fmt_interval(entry["vs_mabwiser"], 3),
                fmt_interval(entry["vs_ours_plain"], 3),
            ]
        )
    return rows


REGRET_HEADER = [
    "policy",
    "mean regret [95 % CI]",
    "rounds 1-{switch}",
    "rest",
    "best arm chosen",
    "/ MABWiser [95 % CI]",
    "/ ours plain [95 % CI]",
]


def latency_rows(latency: dict[str, tuple[float, float]]) -> list[list[str]]:
    def cell(key: str) -> str:
        median, minimum = latency[key]
        return f"{median:.2f} ({minimum:.2f})"

    ours_single, peer_single = latency["ours_route"][0], latency["mabwiser_single"][0]
    ours_batch, peer_batch = latency["ours_batch"][0], latency["mabwiser_batch"][0]
    return [
        [
            "one decision per call (ours: router.route)",
            cell("ours_route"),
            cell("mabwiser_single"),
            f"{ours_single / peer_single:.2f}",
        ],
        [
            "batch of 100 (ours: bandit.choose_many)",
            cell("ours_batch"),
            cell("mabwiser_batch"),
            f"{ours_batch / peer_batch:.2f}",
        ],
        [
            "batch of 100 (ours: 100 calls of bandit.choose)",
            cell("ours_loop"),
            cell("mabwiser_batch"),
            f"{latency['ours_loop'][0] / peer_batch:.2f}",
        ],
    ]


def path_rows(latency: dict[str, tuple[float, float]]) -> list[list[str]]:
    def cell(key: str) -> str:
        median, minimum = latency[key]
        return f"{median:.2f} ({minimum:.2f})"

    return [
        [
            "bandit.choose: Generator.beta per arm on scalars (ours)",
            cell("ours_choose"),
            cell("ours_choose_10"),
        ],
        [
            "the same with one vectorized Generator.beta(alpha, beta)",
            cell("vectorized"),
            cell("vectorized_10"),
        ],
        [
            "  only the vectorized draw and argmax (arrays prebuilt)",
            cell("vectorized_prebuilt"),
            cell("vectorized_prebuilt_10"),
        ],
        ["the same with random.betavariate (standard library)", cell("stdlib"), cell("stdlib_10")],
        ["one draw alone: Generator.beta(61.0, 941.0)", cell("draw_numpy"), "-"],
        ["one draw alone: random.betavariate(61.0, 941.0)", cell("draw_stdlib"), "-"],
        ["router.route, discounted, min_exploration 0.05", cell("ours_route_explore"), "-"],
    ]


def render_markdown(
    config: Config,
    summary: dict[str, Any],
    latency: dict[str, tuple[float, float]],
    machine: dict[str, str],
    command: str,
    started: datetime,
    elapsed: float,
) -> str:
    header = [h.replace("{switch}", f"{config.switch_at:,}") for h in REGRET_HEADER]
    lines = [
        "### Results",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC: `{command}` ({config.seeds} seeds, {config.rounds:,} rounds, "
        f"batches of {config.batch}, switch at round {config.switch_at:,}; {elapsed:.0f} s on "
        f"{config.workers} worker processes).",
        "",
        "#### Machine",
        "",
        markdown_table(["", ""], [[k, f"`{v}`" if v.startswith("(") else v] for k, v in machine.items()]),
        "",
        "#### Goals",
        "",
        markdown_table(["", "measured", "goal", ""], goal_checks(summary, latency)),
        "",
        f"#### Stationary: rates {list(RATES)} (pseudo-regret, mean over seeds)",
        "",
        markdown_table(header, regret_rows(config, summary, "stationary")),
        "",
        f"#### Switching: rates {list(RATES)}, then {list(SWITCHED_RATES)} "
        f"from round {config.switch_at + 1:,}",
        "",
        markdown_table(header, regret_rows(config, summary, "switching")),
        "",
        "#### Decision latency, 3 arms (µs per decision: median of the repeats (fastest))",
        "",
        markdown_table(["", "ours", "MABWiser", "ours/MABWiser"], latency_rows(latency)),
        "",
        "How ours draws (µs per decision, median (fastest)):",
        "",
        markdown_table(["", "3 arms", "10 arms"], path_rows(latency)),
    ]
    return "\n".join(lines)


def print_report(config: Config, summary: dict[str, Any], latency: dict[str, tuple[float, float]]) -> None:
    header = [h.replace("{switch}", f"{config.switch_at:,}") for h in REGRET_HEADER]
    print("\nGoals")
    print(text_table(["", "measured", "goal", ""], goal_checks(summary, latency)))
    for env in ("stationary", "switching"):
        print(f"\n{env} (mean cumulative pseudo-regret over {config.seeds} seeds)")
        print(text_table(header, regret_rows(config, summary, env)))
    print("\nlatency, 3 arms (µs per decision, median (fastest))")
    print(text_table(["", "ours", "MABWiser", "ours/MABWiser"], latency_rows(latency)))
    print(text_table(["", "3 arms", "10 arms"], path_rows(latency)))


def to_json(
    summary: dict[str, Any],
    latency: dict[str, tuple[float, float]],
    config: Config,
    results: list[dict[str, Any]],
) -> dict[str, Any]:
    def plain(value: Any) -> Any:
        if isinstance(value, Interval):
            return asdict(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    return {"config": asdict(config), "regret": plain(summary), "latency_us": latency, "per_seed": results}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=int, default=1000, help="seeds (reward streams) per policy (default 1000)"
    )
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="rounds decided before their rewards apply")
    parser.add_argument("--discount", type=float, default=DEFAULT_DISCOUNT, help="of the discounted variant")
    parser.add_argument("--workers", type=int, default=multiprocessing.cpu_count() or 1)
    parser.add_argument("--calls", type=int, default=20_000, help="timed decisions per latency repeat")
    parser.add_argument("--quick", action="store_true", help="20 seeds, fewer timed calls, docs left alone")
    parser.add_argument("--write-docs", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--json", type=Path, help="write a machine-readable summary here")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.calls = 20, 2_000
    if args.write_docs is None:
        args.write_docs = not args.quick
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import mabwiser.mab  # noqa: F401 (imported before the workers fork, once)
    except ImportError:
        print("MABWiser is not installed: `make benchmark-bandit` installs the bench extra", file=sys.stderr)
        return 2
    if args.seeds < 2 or args.rounds < 2 or args.batch < 1:
        raise BenchmarkError("--seeds and --rounds must be at least 2, --batch at least 1")
    config = Config(
        seeds=args.seeds,
        rounds=args.rounds,
        batch=args.batch,
        switch_at=args.rounds // 2,
        discount=args.discount,
        workers=max(1, args.workers),
    )
    started = datetime.now(UTC)
    digest = source_digest(ROOT / "layers" / "core" / "mlops_core" / "routing")
    machine = machine_info(PACKAGES)
    machine["code (git)"] = git_revision()
    busy = machine.get(BUSY_KEY, "0%").rstrip("%")
    if busy.replace(".", "").isdigit() and float(busy) > 25:
        print(
            f"warning: the CPUs were {busy}% busy before the run; the latency numbers will be noisy",
            file=sys.stderr,
        )
    load = OtherLoad()
    t0 = time.monotonic()
    print(f"{config.seeds} seeds x 2 environments x 3 policies on {config.workers} workers ...", flush=True)
    jobs = [(config, seed) for seed in range(config.seeds)]
    if config.workers > 1:
        with multiprocessing.get_context("fork").Pool(config.workers) as pool:
            results = list(pool.imap_unordered(run_seed, jobs, chunksize=4))
    else:
        results = [run_seed(job) for job in jobs]
    results.sort(key=lambda r: r["seed"])
    regret_seconds = time.monotonic() - t0
    print(f"regret: {regret_seconds:.0f} s; latency ...", flush=True)
    latency = measure_latency(args.calls, repeat=7)
    elapsed = time.monotonic() - t0
    summary = summarize(config, results)
    others = load.report()
    if others:
        machine["CPU used by other processes during the run"] = others
    print_report(config, summary, latency)
    if args.json:
        args.json.write_text(json.dumps(to_json(summary, latency, config, results), indent=2))
    if args.write_docs:
        if source_digest(ROOT / "layers" / "core" / "mlops_core" / "routing") != digest:
            raise BenchmarkError("mlops_core/routing changed during the run: results not written")
        command = ".venv/bin/python benchmarks/bandit_regret.py " + " ".join(
            argv if argv is not None else sys.argv[1:]
        )
        content = render_markdown(config, summary, latency, machine, command.strip(), started, elapsed)
        replace_section(DOCS, BEGIN, END, content, template=f"# Benchmarks\n\n{BEGIN}\n{END}\n")
        print(f"\nwrote {DOCS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchmarkError as error:
        print(f"benchmark could not run: {error}", file=sys.stderr)
        sys.exit(2)
