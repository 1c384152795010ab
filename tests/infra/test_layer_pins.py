"""The layers' requirements pin the same versions as pyproject.toml and uv.lock.

The unit tests run against the locked environment; the layers are what runs on Lambda.
A pin that drifts in one place only would deploy code that was never tested.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from infra.cdk.bundling import RUNTIME_PROVIDED_DISTRIBUTIONS, canonical_name

pytestmark = pytest.mark.infra

REPO_ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Which pyproject dependency list each layer mirrors.
LAYER_SOURCES = {
    "core": PYPROJECT["project"]["dependencies"],
    "serving": PYPROJECT["project"]["optional-dependencies"]["serving"],
    "science": PYPROJECT["project"]["optional-dependencies"]["science"],
    "parquet": PYPROJECT["project"]["optional-dependencies"]["parquet"],
}
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9._-]+)(?P<extras>\[[^\]]*\])?==(?P<version>[^\s;#]+)$")


def _pins(lines: list[str]) -> dict[str, tuple[str, str]]:
    """canonical name -> (extras, version); every requirement must be an exact pin."""
    pins = {}
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = _PIN.match(line)
        assert match, f"not an exact pin: {raw!r}"
        pins[canonical_name(match["name"])] = (match["extras"] or "", match["version"])
    return pins


def _layer_pins(layer: str) -> dict[str, tuple[str, str]]:
    return _pins((REPO_ROOT / "layers" / layer / "requirements.txt").read_text(encoding="utf-8").splitlines())


@pytest.mark.parametrize("layer", sorted(LAYER_SOURCES))
def test_layer_requirements_match_pyproject(layer: str) -> None:
    expected = {
        name: pin
        for name, pin in _pins(LAYER_SOURCES[layer]).items()
        # The runtime provides the AWS SDK; pyproject pins it only for local runs and tests.
        if name not in RUNTIME_PROVIDED_DISTRIBUTIONS
    }

    assert _layer_pins(layer) == expected


@pytest.mark.parametrize("layer", sorted(LAYER_SOURCES))
def test_layer_requirements_match_uv_lock(layer: str) -> None:
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    locked_versions: dict[str, set[str]] = {}
    for package in lock["package"]:
        locked_versions.setdefault(canonical_name(package["name"]), set()).add(package.get("version", ""))

    mismatches = {
        name: (version, sorted(locked_versions.get(name, set())))
        for name, (_, version) in _layer_pins(layer).items()
        if locked_versions.get(name) != {version}
    }
    assert mismatches == {}
