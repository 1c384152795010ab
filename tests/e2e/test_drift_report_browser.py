"""A real drift report, as the drift function writes it, rendered by headless Chromium with the
network off: no console errors, every plot drawn, a screenshot taken.

The report comes from a run of the drift function against moto (a breast-cancer window with
three features shifted by 2 sd), read back from the bucket as the API serves it.
``MLOPS_SCREENSHOT_DIR`` (optional) receives a copy of the screenshot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import boto3
import pytest

from tests.integration.drift_support import capture, monitored_model, shifted, training_rows
from tests.support import BUCKET, REGION, FakeLambdaContext

pytestmark = pytest.mark.e2e
CHROMIUM = shutil.which("chromium")


@pytest.fixture
def report_html(aws: None, tmp_path: Path) -> Path:
    from functions.drift import handler
    from functions.registry import handler as registry

    monitored_model(registry.registry)
    capture(shifted(training_rows(800, seed=7), [0, 1, 4], sd=2.0))

    class Context(FakeLambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 900_000

    answer = handler.lambda_handler({"model_name": "breast-cancer"}, Context())
    assert answer["status"] == "drift", answer
    s3 = boto3.client("s3", region_name=REGION)
    (key,) = [
        item["Key"]
        for item in s3.list_objects_v2(Bucket=BUCKET, Prefix="drift-reports/")["Contents"]
        if item["Key"].endswith(".html")
    ]
    path = tmp_path / "report.html"
    path.write_bytes(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    return path


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_the_drift_report_renders_offline_in_headless_chromium(report_html: Path, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        # No network at all: anything the page tried to fetch would fail (and be logged).
        "--proxy-server=127.0.0.1:9",
        "--proxy-bypass-list=<-loopback>",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,2400",
    ]
    url = report_html.as_uri()
    screenshot = tmp_path / "drift-report.png"
    dom = subprocess.run(
        [CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=False
    )
    shot = subprocess.run(
        [CHROMIUM, *flags, f"--screenshot={screenshot}", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    failed_loads = [line for line in dom.stderr.splitlines() if "net::ERR" in line]
    assert failed_loads == [], failed_loads
    # Parsed and laid out by the browser: the table and the plots of the drifted features.
    assert "Drift report: breast-cancer" in dom.stdout
    assert len(re.findall(r"<svg", dom.stdout)) >= 2 * 10  # histogram + CDF per numeric feature
    for feature in ("mean_radius", "mean_texture", "mean_smoothness"):
        assert feature in dom.stdout
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 60_000  # a blank 1280x2400 page is a few KB
    target = os.environ.get("MLOPS_SCREENSHOT_DIR")
    if target:
        shutil.copy(screenshot, Path(target) / "drift-report.png")
