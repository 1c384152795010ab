"""Helpers of the CLI's inference-by-entity commands: `mlops predict M --entity VIEW=ID`,
`mlops models register M --feature-view VIEW` and `mlops models feature-policy set|show`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


class EntityUsageError(ValueError):
    """A malformed option value (the CLI shows it as a usage error)."""


def entity_rows(options: Sequence[str]) -> list[dict[str, str | int]]:
    """``["tumour_measurements=1", "patient_id=2,other_view=x"]`` -> one row per option: each
    ``KEY=ID`` pair (comma-separated) names a view or an entity key and its id; digits are sent
    as numbers."""
    rows: list[dict[str, str | int]] = []
    for option in options:
        row: dict[str, str | int] = {}
        for pair in filter(None, (part.strip() for part in option.split(","))):
            key, sep, value = pair.partition("=")
            if not sep or not key.strip() or not value.strip():
                raise EntityUsageError(f"expected VIEW=ID (or ENTITY_KEY=ID), got {pair!r}")
            text = value.strip()
            row[key.strip()] = int(text) if text.lstrip("-").isdigit() else text
        if not row:
            raise EntityUsageError(f"expected VIEW=ID, got {option!r}")
        rows.append(row)
    return rows


def signature_with_view(signature: dict[str, Any], view: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``signature`` with a ``feature_views`` entry reading from ``view`` (a view definition)
    every signature input of the same name; the inputs it feeds. Raises when it feeds none."""
    names = {f["name"] for f in view["features"]}
    fed = [f["name"] for f in signature["features"] if f["name"] in names]
    if not fed:
        raise EntityUsageError(f"view {view['name']} has none of the signature's features")
    others = [v for v in signature.get("feature_views") or [] if v["view"] != view["name"]]
    taken = {i if isinstance(i, str) else i.get("input") or i["name"] for v in others for i in v["features"]}
    fed = [name for name in fed if name not in taken]
    return {**signature, "feature_views": [*others, {"view": view["name"], "features": fed}]}, fed


def parse_defaults(options: Sequence[str]) -> dict[str, float | int | bool]:
    """``["mean_radius=14.1", "flag=true"]`` -> {input: value} (JSON numbers or booleans)."""
    defaults: dict[str, float | int | bool] = {}
    for option in options:
        name, sep, raw = option.partition("=")
        try:
            value = json.loads(raw.strip()) if sep else None
        except ValueError:
            value = None
        if not name.strip() or isinstance(value, str) or not isinstance(value, int | float | bool):
            raise EntityUsageError(f"expected INPUT=NUMBER (or true/false), got {option!r}")
        defaults[name.strip()] = value
    return defaults


def describe_policy(policy: dict[str, Any]) -> list[str]:
    lines = [f"missing: {policy['missing']}", f"stale:   {policy['stale']}"]
    if policy.get("defaults"):
        lines.append("defaults: " + ", ".join(f"{k}={v}" for k, v in sorted(policy["defaults"].items())))
    else:
        lines.append("defaults: none")
    return lines
