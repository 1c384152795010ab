"""The model console on the local stack, driven by a real headless browser (Debian's
chromium): `mlops up --demo`, then every page of the console at /_local/console/ renders with
no console errors and nothing fetched from elsewhere, the run-comparison page lists every
candidate of the demo run with its metrics, and a screenshot of each page is saved.

``MLOPS_SCREENSHOT_DIR`` (optional) receives every screenshot; ``MLOPS_UPDATE_SCREENSHOTS=1``
rewrites the README's picture (docs/images/console-run.png) from this run's run page.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import time
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.demo_stack import local_stack, state_dir  # noqa: F401 - module fixtures (a trained demo)
from tests.support import ROOT

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium")
MODEL = "breast-cancer"
README_PICTURE = ROOT / "docs" / "images" / "console-run.png"
WINDOW = (1280, 1400)


def _flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # Anything but the local stack (loopback: never proxied) is unreachable: a page fetching
        # from elsewhere would log it. (The console's Content-Security-Policy forbids it too.)
        "--proxy-server=127.0.0.1:9",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
    ]


def _render(url: str, screenshot: Path, profile: Path) -> str:
    """The DOM chromium built from ``url`` (after asserting no console message and no failed
    load), with a screenshot of it saved."""
    assert CHROMIUM is not None
    dom = subprocess.run(
        [CHROMIUM, *_flags(profile), "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shot = subprocess.run(
        [CHROMIUM, *_flags(profile), f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    failed = [line for line in dom.stderr.splitlines() if "net::ERR" in line]
    assert failed == [], failed
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("MLOPS_SCREENSHOT_DIR")
    if target:
        shutil.copy(screenshot, Path(target) / screenshot.name)
    return dom.stdout


def _png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


@pytest.fixture(scope="module")
def demo_run(local_stack: dict[str, Any]) -> dict[str, Any]:  # noqa: F811 - the imported fixture
    """The demo's training run (with its candidates), as the training API answers it."""
    runs = requests.get(f"{local_stack['api']}/models/{MODEL}/runs", timeout=30)
    assert runs.status_code == 200, runs.text
    (run,) = runs.json()["runs"]
    detail = requests.get(f"{local_stack['api']}/runs/{run['run_id']}", timeout=30)
    assert detail.status_code == 200, detail.text
    return dict(detail.json())


@pytest.fixture(scope="module")
def drift_run(local_stack: dict[str, Any]) -> str:  # noqa: F811 - the imported fixture
    """Monitoring configured and one on-demand drift run recorded (through the drift API)."""
    api = local_stack["api"]
    assert requests.put(f"{api}/models/{MODEL}/monitoring", json={}, timeout=30).status_code == 200
    started = requests.post(f"{api}/models/{MODEL}/drift-runs", timeout=30)
    assert started.status_code == 202, started.text
    run_id = str(started.json()["run_id"])
    for _ in range(120):
        status = requests.get(f"{api}/models/{MODEL}/drift-runs/{run_id}", timeout=30).json()["run"]["status"]
        if status != "running":
            return run_id
        time.sleep(0.5)  # polling the run, as `mlops drift run --wait` does
    pytest.fail(f"drift run {run_id} still running")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_every_console_page_renders_in_headless_chromium_without_console_errors(
    local_stack: dict[str, Any],  # noqa: F811 - the imported fixture
    demo_run: dict[str, Any],
    drift_run: str,
    tmp_path: Path,
) -> None:
    base = f"{local_stack['api']}/_local/console/"
    run_id = demo_run["run_id"]
    pages = {
        "models": ("", ["Models", MODEL, "production → v1"]),
        "model": (f"?page=model&model={MODEL}", ["Versions", "Aliases", "Model card: v1", run_id]),
        "runs": (f"?page=runs&model={MODEL}", [run_id, "SUCCEEDED", "roc_auc"]),
        "run": (
            f"?page=run&run={run_id}",
            ["Steps", "Dataset", "Metric comparison", "4 of 4 candidates trained"],
        ),
        "routing": (f"?page=routing&model={MODEL}", ["single: alias production", "posterior mean"]),
        "drift": (f"?page=drift&model={MODEL}", [drift_run, "Drift report: breast-cancer"]),
        "batch": (f"?page=batch&model={MODEL}", ["Batch jobs of breast-cancer"]),
    }
    doms = {}
    for name, (query, expected) in pages.items():
        dom = _render(base + query, tmp_path / f"console-{name}.png", tmp_path / "profile")
        text = unescape(re.sub(r"<[^>]+>", " ", dom))
        for fragment in expected:
            assert fragment in text, (name, fragment)
        assert "<script" not in dom
        assert "<svg" in dom or name in {"models", "batch"}, name
        doms[name] = dom

    # The run comparison: every candidate of the demo run, each with its validation metrics.
    candidates = demo_run["candidates"]
    assert len(candidates) == 4
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r"<tr[^>]*>\s*<td>(c\d{3})[\s\S]*?</tr>", doms["run"])
    }
    assert set(rows) == {c["candidate_id"] for c in candidates}
    for candidate in candidates:
        for value in candidate["validation_metrics"].values():
            assert f">{value:.4g}<" in rows[candidate["candidate_id"]], (candidate["candidate_id"], value)

    # The README's picture is the run page as this suite renders it.
    fresh = tmp_path / "console-run.png"
    if os.environ.get("MLOPS_UPDATE_SCREENSHOTS") == "1":
        shutil.copy(fresh, README_PICTURE)
    assert README_PICTURE.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", "run with MLOPS_UPDATE_SCREENSHOTS=1"
    assert _png_size(README_PICTURE) == _png_size(fresh) == WINDOW
    assert "docs/images/console-run.png" in (ROOT / "README.md").read_text()


def test_the_banner_links_the_console_next_to_swagger_ui(local_stack: dict[str, Any]) -> None:  # noqa: F811
    # Rich folds long log lines and puts the source location at the right of each.
    banner = re.sub(r"\s+", " ", re.sub(r"\s+[a-z_]+\.py:\d+", "", local_stack["output"]))

    assert f"Swagger UI: {local_stack['api']}/_local/docs/" in banner
    assert f"model console: {local_stack['api']}/_local/console/" in banner


def test_the_console_only_reads(local_stack: dict[str, Any]) -> None:  # noqa: F811
    answer = requests.post(f"{local_stack['api']}/_local/console/", timeout=30)

    assert answer.status_code == 405
    page = requests.get(f"{local_stack['api']}/_local/console/?page=model&model=no-such-model", timeout=30)
    assert page.status_code == 404
    assert "model &#x27;no-such-model&#x27; not found" in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
