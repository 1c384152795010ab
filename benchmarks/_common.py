"""Helpers shared by the benchmarks: import paths, a local moto server, statistics,
machine description, and the results section of docs/benchmarks.md."""

from __future__ import annotations

import logging
import math
import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY_KEY = "CPU busy before the run (1 s sample, all cores)"
IMPORT_PATHS = [str(ROOT), str(ROOT / "layers" / "core")]


class BenchmarkError(RuntimeError):
    """A benchmark could not run; the message says what failed."""


def ensure_import_paths() -> None:
    """Make the repository and the core layer importable (as pytest's pythonpath does)."""
    for path in reversed(IMPORT_PATHS):
        if path not in sys.path:
            sys.path.insert(0, path)


def child_pythonpath() -> str:
    existing = os.environ.get("PYTHONPATH")
    return os.pathsep.join([*IMPORT_PATHS, *([existing] if existing else [])])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on 127.0.0.1:<free port> in a thread of this process; yields its URL.

    Stopped on exit from the block (and it is a daemon thread, so it never outlives the
    process either).
    """
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request on stderr
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


# ---- statistics -------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    n: int
    median: float
    p95: float
    minimum: float
    maximum: float
    mean: float


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: Sequence[float]) -> Summary:
    if not samples:
        raise BenchmarkError("no samples to summarize")
    return Summary(
        n=len(samples),
        median=statistics.median(samples),
        p95=percentile(samples, 95),
        minimum=min(samples),
        maximum=max(samples),
        mean=statistics.fmean(samples),
    )


def ratio(ours: float, peer: float) -> float:
    return ours / peer if peer else math.inf


# ---- machine ----------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_busy_percent(interval: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``interval`` seconds (/proc/stat): other work on the machine."""

    def sample() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        return sum(fields), idle

    try:
        total_0, idle_0 = sample()
        time.sleep(interval)
        total_1, idle_1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    elapsed = total_1 - total_0
    return 100.0 * (1 - (idle_1 - idle_0) / elapsed) if elapsed else None


class OtherLoad:
    """CPU time that processes other than this one and its children used meanwhile.

    All CPUs' busy time from /proc/stat, minus this process's and its waited-for
    children's (``os.times``): what the machine's other work took while we measured.
    """

    def __init__(self) -> None:
        self.start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except (OSError, ValueError, IndexError):
            return None
        busy = sum(fields[:8]) - fields[3] - fields[4]  # all but idle and iowait (guest is in user)
        own = os.times()
        return (
            busy / os.sysconf("SC_CLK_TCK"),
            own.user + own.system + own.children_user + own.children_system,
            time.monotonic(),
        )

    def report(self) -> str | None:
        end = self._sample()
        if self.start is None or end is None:
            return None
        others = max(0.0, (end[0] - self.start[0]) - (end[1] - self.start[1]))
        elapsed = end[2] - self.start[2]
        return f"{others:.0f} CPU-s over {elapsed:.0f} s ({100 * others / elapsed:.0f}% of one core)"


def source_digest(*folders: Path) -> str:
    """A digest of the Python sources under ``folders`` (to notice edits during a run)."""
    import hashlib

    digest = hashlib.sha256()
    for folder in folders:
        for path in sorted(folder.rglob("*.py")):
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def git_revision() -> str:
    """The checked-out commit, with "+ uncommitted changes" when the tree is dirty."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "functions", "layers"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes in functions/ or layers/" if dirty else "")


def machine_info(packages: Sequence[str]) -> dict[str, str]:
    info = {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": platform.python_version(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE") or "(unset)",
    }
    busy = cpu_busy_percent()
    if busy is not None:
        info[BUSY_KEY] = f"{busy:.0f}%"
    try:
        load = os.getloadavg()
        info["load average at start (1/5/15 min)"] = " / ".join(f"{x:.2f}" for x in load)
    except OSError:
        pass
    for package in packages:
        info[package] = package_version(package)
    return info


# ---- output -----------------------------------------------------------------------


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [f"{first:<{widths[0]}}", *(f"{c:>{w}}" for c, w in zip(rest, widths[1:], strict=True))]
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, align_right_from: int = 1) -> str:
    align = ["---" if i < align_right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(_markdown_cell(str(c)) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _markdown_cell(text: str) -> str:
    """Keep a leading indent (sub-rows) visible and pipes from breaking the row."""
    stripped = text.lstrip(" ")
    indent = "&emsp;" * ((len(text) - len(stripped)) // 2)
    return indent + stripped.replace("|", "\\|")


def replace_section(path: Path, begin: str, end: str, content: str, template: str) -> None:
    """Put ``content`` between the ``begin`` and ``end`` marker lines of ``path``.

    A missing file is created from ``template`` (which holds both markers); a file
    without the markers gets the section appended. Text outside the markers is kept.
    """
    block = f"{begin}\n{content.rstrip()}\n{end}"
    text = path.read_text() if path.exists() else template
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
