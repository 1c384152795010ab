"""Inline SVG charts for the console: grouped bars, a line over time, shares, and intervals.

Every chart is a string of SVG with its numbers in ``<title>`` tooltips (CloudWatch shows
titles on hover; no script runs there). Labels are escaped here: they come from user input
(model names, parameter values).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from html import escape

PALETTE = ("#1c7ed6", "#d9480f", "#2b8a3e", "#7048e8", "#e67700", "#0c8599", "#c2255c", "#5c940d")
AXIS = "#adb5bd"


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _fmt(value: float) -> str:
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.4g}"


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    width: int = 640,
    height: int = 220,
    label: str,
) -> str:
    """One group of bars per entry of ``groups`` (a metric), one bar per series (a candidate).

    Each metric is scaled to its own maximum (metrics of different units side by side), so
    the bars compare candidates within a metric; the exact values are in the tooltips."""
    if not groups or not series:
        return '<p class="note">Nothing to plot.</p>'
    left, bottom, top = 8, 36, 10
    plot_w, plot_h = width - left - 8, height - bottom - top
    group_w = plot_w / len(groups)
    names = list(series)
    bar_w = max(2.0, (group_w - 12) / max(1, len(names)))
    parts = [
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 8}" y2="{top + plot_h}" stroke="{AXIS}"/>',
    ]
    for g, group in enumerate(groups):
        values = [series[name][g] for name in names]
        finite = [abs(v) for v in values if v is not None and math.isfinite(v)]
        scale = max(finite) if finite else 0.0
        x0 = left + g * group_w + 6
        for s, value in enumerate(values):
            if value is None or not math.isfinite(value) or scale == 0:
                continue
            h = plot_h * abs(value) / scale
            x = x0 + s * bar_w
            parts.append(
                f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(1.0, bar_w - 2):.1f}" '
                f'height="{h:.1f}" fill="{colour(s)}"><title>{escape(names[s])} · {escape(group)}: '
                f"{_fmt(value)}</title></rect>"
            )
        parts.append(
            f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle">{escape(group[:24])}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key" style="background:{colour(i)}"></span>{escape(name)}'
        for i, name in enumerate(names)
    )
    return "".join(parts) + f'<p class="legend">{legend}</p>'


def line_chart(
    points: Sequence[tuple[str, float]],
    *,
    width: int = 640,
    height: int = 180,
    label: str,
    y_max: float | None = None,
    marks: Sequence[bool] | None = None,
) -> str:
    """A line through ``points`` (x label, value) in order, oldest first; ``marks`` flags
    points drawn in red (a drifted run, a rejected training run)."""
    if not points:
        return '<p class="note">Nothing to plot.</p>'
    left, bottom, top = 44, 30, 10
    plot_w, plot_h = width - left - 10, height - bottom - top
    values = [v for _, v in points if math.isfinite(v)]
    high = y_max if y_max is not None else (max(values) if values else 1.0)
    low = 0.0 if y_max is not None else min(0.0, min(values) if values else 0.0)
    span = (high - low) or 1.0
    step = plot_w / max(1, len(points) - 1)

    def xy(i: int, v: float) -> tuple[float, float]:
        return left + i * step if len(points) > 1 else left + plot_w / 2, top + plot_h * (
            1 - (v - low) / span
        )

    coords = [xy(i, v) for i, (_, v) in enumerate(points) if math.isfinite(v)]
    parts = [
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 10}" y2="{top + plot_h}" stroke="{AXIS}"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="{AXIS}"/>',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">{_fmt(high)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">{_fmt(low)}</text>',
    ]
    if len(coords) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>')
    for i, (name, value) in enumerate(points):
        if not math.isfinite(value):
            continue
        x, y = xy(i, value)
        fill = "#c92a2a" if marks and marks[i] else PALETTE[0]
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{fill}">'
            f"<title>{escape(name)}: {_fmt(value)}</title></circle>"
        )
    parts.append(f'<text x="{left}" y="{height - 8}">{escape(points[0][0][:19])}</text>')
    if len(points) > 1:
        parts.append(
            f'<text x="{width - 10}" y="{height - 8}" text-anchor="end">{escape(points[-1][0][:19])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def share_bar(shares: Sequence[tuple[str, float]], *, width: int = 640, height: int = 28, label: str) -> str:
    """One horizontal bar split into ``shares`` (name, share of 1)."""
    total = sum(s for _, s in shares if s > 0)
    if total <= 0:
        return '<p class="note">No traffic counted yet.</p>'
    parts = [
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    x = 0.0
    for i, (name, share) in enumerate(shares):
        if share <= 0:
            continue
        w = width * share / total
        parts.append(
            f'<rect x="{x:.1f}" y="0" width="{w:.1f}" height="{height}" fill="{colour(i)}">'
            f"<title>{escape(name)}: {share / total:.1%}</title></rect>"
        )
        if w > 60:
            parts.append(
                f'<text x="{x + 6:.1f}" y="{height / 2 + 4:.1f}" class="on-bar">'
                f"{escape(name[:20])} {share / total:.0%}</text>"
            )
        x += w
    parts.append("</svg>")
    return "".join(parts)


def intervals(rows: Sequence[tuple[str, float, float, float]], *, width: int = 640, label: str) -> str:
    """Posterior means with their credible intervals on [0, 1]: (name, mean, lower, upper)."""
    if not rows:
        return '<p class="note">No variants.</p>'
    left, right, row_h = 90, 20, 26
    height = row_h * len(rows) + 24
    plot_w = width - left - right
    parts = [
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = left + plot_w * tick
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height - 18}" stroke="#e9ecef"/>')
        parts.append(f'<text x="{x:.1f}" y="{height - 4}" text-anchor="middle">{tick:g}</text>')
    for i, (name, mean, lower, upper) in enumerate(rows):
        y = i * row_h + row_h / 2
        x_lo, x_hi, x_mean = (left + plot_w * min(1.0, max(0.0, v)) for v in (lower, upper, mean))
        tip = f"{escape(name)}: mean {_fmt(mean)}, 95% interval [{_fmt(lower)}, {_fmt(upper)}]"
        parts.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{escape(name[:14])}</text>')
        parts.append(
            f'<line x1="{x_lo:.1f}" y1="{y:.1f}" x2="{x_hi:.1f}" y2="{y:.1f}" stroke="{colour(i)}" '
            f'stroke-width="6" stroke-linecap="round"><title>{tip}</title></line>'
        )
        parts.append(
            f'<circle cx="{x_mean:.1f}" cy="{y:.1f}" r="5" fill="#fff" stroke="{colour(i)}" '
            f'stroke-width="2"><title>{tip}</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)


def stacked_history(
    columns: Sequence[tuple[str, Mapping[str, float]]], *, width: int = 640, height: int = 160, label: str
) -> str:
    """Shares per variant at successive moments (oldest first), one stacked column each:
    the routing policy's weights after each change."""
    if not columns:
        return '<p class="note">No routing changes recorded.</p>'
    names = sorted({name for _, shares in columns for name in shares})
    top, bottom = 8, 26
    plot_h = height - top - bottom
    col_w = (width - 10) / len(columns)
    parts = [
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for c, (moment, shares) in enumerate(columns):
        total = sum(shares.values()) or 1.0
        y = float(top + plot_h)
        for n, name in enumerate(names):
            share = shares.get(name, 0.0) / total
            if share <= 0:
                continue
            h = plot_h * share
            y -= h
            parts.append(
                f'<rect x="{5 + c * col_w + 2:.1f}" y="{y:.1f}" width="{max(1.0, col_w - 4):.1f}" '
                f'height="{h:.1f}" fill="{colour(n)}"><title>{escape(moment)} · {escape(name)}: '
                f"{share:.0%}</title></rect>"
            )
    parts.append(f'<text x="5" y="{height - 8}">{escape(columns[0][0][:19])}</text>')
    if len(columns) > 1:
        parts.append(
            f'<text x="{width - 5}" y="{height - 8}" text-anchor="end">{escape(columns[-1][0][:19])}</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key" style="background:{colour(i)}"></span>{escape(name)}'
        for i, name in enumerate(names)
    )
    return "".join(parts) + f'<p class="legend">{legend}</p>'


def _time_axis(
    parts: list[str], start_s: float, end_s: float, *, left: float, right: float, y: float
) -> None:
    """The first and last moments under a time chart (UTC, to the minute)."""
    first = time.strftime("%Y-%m-%d %H:%M", time.gmtime(start_s))
    last = time.strftime("%Y-%m-%d %H:%M", time.gmtime(end_s))
    parts.append(f'<text x="{left}" y="{y}">{first}</text>')
    parts.append(f'<text x="{right}" y="{y}" text-anchor="end">{last} UTC</text>')


def shares_over_time(
    buckets: Sequence[tuple[float, float, Mapping[str, float]]],
    *,
    width: int = 640,
    height: int = 170,
    label: str,
    names: Sequence[str] = (),
) -> str:
    """Each variant's share of the predictions served per time bucket, stacked to 100 %:
    ``buckets`` are (start, length in seconds, {name: count}), oldest first, placed by time
    (a bucket without traffic is a gap). ``names`` fixes the variants' order (and colours)."""
    served = [(start, seconds, counts) for start, seconds, counts in buckets if sum(counts.values()) > 0]
    if not served:
        return '<p class="note">No traffic counted in the window yet.</p>'
    seen = {name for _, _, counts in served for name in counts}
    names = [*names, *sorted(seen - set(names))]  # a variant's colour is its place here
    left, right, top, bottom = 36, 10, 8, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    t0, t1 = served[0][0], served[-1][0] + served[-1][1]
    span = (t1 - t0) or 1.0
    parts = [
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
        f'<text x="{left - 4}" y="{top + 8}" text-anchor="end">100%</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end">0%</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{AXIS}"/>',
    ]
    for start, seconds, counts in served:
        total = sum(counts.values())
        x = left + plot_w * (start - t0) / span
        w = max(1.0, plot_w * seconds / span - (1.0 if plot_w * seconds / span > 3 else 0.0))
        y = float(top + plot_h)
        moment = time.strftime("%H:%M:%S", time.gmtime(start))
        for n, name in enumerate(names):
            count = counts.get(name, 0.0)
            if count <= 0:
                continue
            h = plot_h * count / total
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour(n)}">'
                f"<title>{moment} · {escape(name)}: {count / total:.0%} ({_fmt(count)})</title></rect>"
            )
    _time_axis(parts, t0, t1, left=left, right=width - right, y=height - 8)
    parts.append("</svg>")
    return "".join(parts) + _legend(names, seen)


def bands_over_time(
    series: Mapping[str, Sequence[tuple[float, float, float, float]]],
    *,
    width: int = 640,
    height: int = 200,
    label: str,
    level: float = 0.9,
    names: Sequence[str] = (),
) -> str:
    """Per variant a value on [0, 1] over time with its band: ``series`` maps a name to
    (time, mean, lower, upper) points, oldest first (a Beta posterior's mean and credible
    interval at the end of each bucket). ``names`` fixes the variants' order (and colours)."""
    drawn = {name: points for name, points in series.items() if points}
    if not drawn:
        return '<p class="note">No feedback counted in the window yet.</p>'
    left, right, top, bottom = 36, 10, 8, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    t0 = min(points[0][0] for points in drawn.values())
    t1 = max(points[-1][0] for points in drawn.values())
    span = (t1 - t0) or 1.0

    def x_of(t: float) -> float:
        return left + plot_w * (t - t0) / span if t1 > t0 else left + plot_w / 2

    def y_of(v: float) -> float:
        return top + plot_h * (1.0 - min(1.0, max(0.0, v)))

    parts = [
        f'<svg role="img" aria-label="{escape(label)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">',
    ]
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = y_of(tick)
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}" stroke="#e9ecef"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{tick:g}</text>')
    names = [*names, *sorted(set(drawn) - set(names))]  # a variant's colour is its place here
    for n, name in enumerate(names):
        if name not in drawn:
            continue
        points = drawn[name]
        upper = " ".join(f"{x_of(t):.1f},{y_of(hi):.1f}" for t, _, _, hi in points)
        lower = " ".join(f"{x_of(t):.1f},{y_of(lo):.1f}" for t, _, lo, _ in reversed(points))
        t, mean, lo, hi = points[-1]
        tip = f"{escape(name)}: mean {_fmt(mean)}, {level:.0%} interval [{_fmt(lo)}, {_fmt(hi)}] (latest)"
        parts.append(
            f'<polygon points="{upper} {lower}" fill="{colour(n)}" fill-opacity="0.18" stroke="none">'
            f"<title>{tip}</title></polygon>"
        )
        if len(points) > 1:
            line = " ".join(f"{x_of(t):.1f},{y_of(m):.1f}" for t, m, _, _ in points)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour(n)}" stroke-width="2"/>')
        for t, mean, lo, hi in points:
            moment = time.strftime("%H:%M:%S", time.gmtime(t))
            parts.append(
                f'<circle cx="{x_of(t):.1f}" cy="{y_of(mean):.1f}" r="2.5" fill="{colour(n)}">'
                f"<title>{moment} · {escape(name)}: {_fmt(mean)} [{_fmt(lo)}, {_fmt(hi)}]</title></circle>"
            )
    _time_axis(parts, t0, t1, left=left, right=width - right, y=height - 8)
    parts.append("</svg>")
    return "".join(parts) + _legend(names, set(drawn))


def _legend(names: Sequence[str], shown: set[str]) -> str:
    keys = "".join(
        f'<span class="key" style="background:{colour(i)}"></span>{escape(name)}'
        for i, name in enumerate(names)
        if name in shown
    )
    return f'<p class="legend">{keys}</p>'
