"""`mlops routing`: building a routing policy from command-line options, and showing what
each variant of a model has served and earned."""

from __future__ import annotations

from typing import Any

from infra.cli.tables import Rows


class PolicyOptionError(ValueError):
    """Options that do not make one policy; ``option`` names the one to fix."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


def policy_from_options(
    *,
    split: str | None,
    bandit: str | None,
    alias: str | None,
    version: int | None,
    shadow: int | None,
    discount: float | None,
    min_exploration: float | None,
) -> dict[str, Any]:
    """The policy document of exactly one of ``--split``, ``--bandit``, ``--alias``, ``--version``
    (the server validates it further: weights summing to 1, known versions, ...)."""
    given = [
        name
        for name, value in (
            ("--split", split),
            ("--bandit", bandit),
            ("--alias", alias),
            ("--version", version),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise PolicyOptionError(
            "give exactly one of --split, --bandit, --alias, --version"
            + (f" (got {', '.join(given)})" if given else ""),
            given[1] if len(given) > 1 else "--split",
        )
    if bandit is None and (discount is not None or min_exploration is not None):
        raise PolicyOptionError("--discount and --min-exploration apply to --bandit only", "--discount")
    policy: dict[str, Any]
    if split is not None:
        policy = {"type": "split", "weights": [_weighted(part) for part in _parts(split, "--split")]}
    elif bandit is not None:
        policy = {
            "type": "bandit",
            "versions": [_version(part, "--bandit") for part in _parts(bandit, "--bandit")],
        }
        if discount is not None:
            policy["discount"] = discount
        if min_exploration is not None:
            policy["min_exploration"] = min_exploration
    elif alias is not None:
        policy = {"type": "single", "alias": alias}
    else:
        policy = {"type": "single", "version": version}
    if shadow is not None:
        policy["shadow"] = shadow
    return policy


def _parts(text: str, option: str) -> list[str]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise PolicyOptionError("expected a comma-separated list", option)
    return parts


def _version(text: str, option: str) -> int:
    try:
        return int(text.removeprefix("v"))
    except ValueError:
        raise PolicyOptionError(f"{text!r} is not a version number", option) from None


def _weighted(text: str) -> dict[str, Any]:
    version, sep, weight = text.partition("=")
    if not sep:
        raise PolicyOptionError(f"{text!r}: expected VERSION=WEIGHT, e.g. 3=0.9,4=0.1", "--split")
    try:
        share = float(weight)
    except ValueError:
        raise PolicyOptionError(f"{weight!r} is not a weight (a number in [0, 1])", "--split") from None
    return {"version": _version(version, "--split"), "weight": share}


def describe_policy(policy: dict[str, Any]) -> str:
    kind = policy["type"]
    if kind == "split":
        text = "split " + ", ".join(f"v{w['version']} {w['weight']:.0%}" for w in policy["weights"])
    elif kind == "bandit":
        text = "bandit over " + ", ".join(f"v{v}" for v in policy["versions"])
        if policy.get("discount") is not None:
            text += f", discount {policy['discount']}"
        if policy.get("min_exploration"):
            text += f", exploration {policy['min_exploration']:.0%}"
    elif policy.get("alias") is not None:
        text = f"single: alias {policy['alias']}"
    else:
        text = f"single: v{policy['version']}"
    if policy.get("shadow") is not None:
        text += f"; shadow v{policy['shadow']}"
    return text


def summary_table(summary: dict[str, Any]) -> Rows:
    table = Rows(
        "version",
        "role",
        "weight",
        "requests",
        "errors",
        "p99 ms",
        "feedback",
        "reward",
        "posterior mean [95% CI]",
        "P(best)",
    )
    for variant in summary["variants"]:
        totals, posterior = variant["totals"], variant["posterior"]
        rate = variant.get("reward_rate")
        table.add_row(
            f"v{variant['version']}",
            variant["role"],
            "" if variant.get("weight") is None else f"{variant['weight']:.0%}",
            str(totals["requests"])
            + (f" (+{totals['shadow_requests']} shadow)" if totals["shadow_requests"] else ""),
            "" if variant.get("error_rate") is None else f"{variant['error_rate']:.2%} of {totals['calls']}",
            "" if variant.get("p99_ms") is None else f"<= {variant['p99_ms']:g}",
            str(totals["feedback"]),
            "" if rate is None else f"{rate:.4f} of {totals['rewarded']}",
            f"{posterior['mean']:.4f} [{posterior['lower']:.4f}, {posterior['upper']:.4f}]",
            f"{posterior['p_best']:.3f}",
        )
    return table


def history_table(history: list[dict[str, Any]]) -> Rows:
    table = Rows("at", "revision", "policy", "actor", "reason", ids=("actor",))
    for record in history:
        table.add_row(
            record["at"],
            str(record["revision"]),
            describe_policy(record["routing"]) if record.get("routing") else "",
            record.get("actor") or "",
            record.get("reason") or "",
        )
    return table
