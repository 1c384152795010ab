"""The architecture's rules hold: the import contracts (import-linter, as `make lint` runs
them) and one owner for every storage key."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

from tests.support import ROOT

KEYS_MODULE = ROOT / "layers" / "core" / "mlops_core" / "storage" / "keys.py"
# A string literal that spells a key pattern: "MODEL#", f"RUN#{...}", "VERSION#000001", ...
KEY_PATTERN = re.compile(r"""^[rRbBuUfF]*["'][A-Z][A-Z0-9_]*#""")
INDEX_NAME = re.compile(r"""^[rRbBuUfF]*["']gsi\d""")


def _deployed_sources() -> list[Path]:
    return sorted(
        [*(ROOT / "layers" / "core" / "mlops_core").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    )


def _key_literals(path: Path) -> list[str]:
    found = []
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.STRING and (
            KEY_PATTERN.match(token.string) or INDEX_NAME.match(token.string)
        ):
            found.append(f"{path.relative_to(ROOT)}:{token.start[0]}: {token.string}")
    return found


def test_import_contracts_hold() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def test_no_key_pattern_or_index_name_is_spelled_outside_storage_keys() -> None:
    offenders = [hit for path in _deployed_sources() if path != KEYS_MODULE for hit in _key_literals(path)]
    assert offenders == []


def test_the_key_scan_finds_what_it_looks_for() -> None:
    """The scan itself works: storage/keys.py is full of what it forbids elsewhere."""
    hits = _key_literals(KEYS_MODULE)
    assert any('f"MODEL#' in hit for hit in hits)
    assert any('"gsi1"' in hit for hit in hits)
