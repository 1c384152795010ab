"""The console's charts over time: shares stacked per bucket, placed by time; posterior bands;
names escaped, colours fixed by the variants' order in both charts."""

from __future__ import annotations

import re

from mlops_core.console import charts

T0 = 1_800_000_000


def test_shares_are_stacked_per_bucket_and_a_bucket_without_traffic_is_a_gap() -> None:
    svg = charts.shares_over_time(
        [(T0, 300, {"v1": 3.0, "v2": 1.0}), (T0 + 300, 300, {}), (T0 + 600, 300, {"v2": 2.0})],
        label="shares",
        names=["v1", "v2"],
    )

    titles = re.findall(r"<title>([^<]*)</title>", svg)
    assert titles == ["08:00:00 · v1: 75% (3)", "08:00:00 · v2: 25% (1)", "08:10:00 · v2: 100% (2)"]
    xs = [float(x) for x in re.findall(r'<rect x="([\d.]+)"', svg)]
    assert xs[0] == xs[1] < xs[2]  # one column per bucket, placed by its start
    assert xs[2] > 36 + (640 - 46) * 0.6  # after the gap the empty middle bucket leaves


def test_bands_draw_a_band_and_a_line_per_variant_on_zero_to_one() -> None:
    svg = charts.bands_over_time(
        {"v2": [(T0, 0.5, 0.2, 0.8), (T0 + 300, 0.6, 0.4, 0.75)], "v1": [(T0 + 300, 0.3, 0.1, 0.5)]},
        label="posterior",
        names=["v1", "v2"],
    )

    assert svg.count("<polygon") == 2 and svg.count("<polyline") == 1  # v1 has one point: no line
    assert "v2: mean 0.6, 90% interval [0.4, 0.75] (latest)" in svg
    v1_colour, v2_colour = charts.colour(0), charts.colour(1)
    assert '<polyline points="' in svg and f'stroke="{v2_colour}"' in svg
    assert f'fill="{v1_colour}" fill-opacity' in svg


def test_time_charts_say_when_there_is_nothing_and_escape_names() -> None:
    assert "No traffic counted" in charts.shares_over_time([(T0, 300, {})], label="x")
    assert "No feedback counted" in charts.bands_over_time({"v1": []}, label="x")
    svg = charts.shares_over_time([(T0, 300, {"<b>": 1.0})], label="<i>")
    assert "<b>" not in svg and "&lt;b&gt;" in svg and 'aria-label="&lt;i&gt;"' in svg
