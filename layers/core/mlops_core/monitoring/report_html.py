"""A drift report as one self-contained HTML page: inline CSS and SVG, no script, no fonts or
images to fetch, so it renders the same from S3, a download, or an e-mail attachment.

Features appear by severity (drifted first, then by effect size over threshold), each with
its numbers (test, statistic, p-value, corrected p-value, effect size, threshold, decision)
and, for the first ``MAX_PLOTTED``, its reference-vs-window distribution: a histogram and
the two CDFs for a numeric feature, bars per category for a categorical one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from mlops_core.monitoring.entities import FeatureDrift
from mlops_core.monitoring.report import DriftReport
from mlops_core.monitoring.window import CategoricalDistribution, NumericDistribution

#: Features plotted (the table lists every one): the page stays a few hundred kB at most.
MAX_PLOTTED = 60
WIDTH, HEIGHT, PAD = 360, 150, 28
#: Room left of the plot for the share labels (100.0%).
LEFT = 44
REFERENCE_COLOUR, CURRENT_COLOUR = "#7f8c9b", "#d9480f"

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2329}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:0 0 6px}
.meta{color:#56616d}
.badge{display:inline-block;padding:2px 10px;border-radius:12px;font-weight:600;color:#fff}
.drift{background:#c92a2a}.no_drift{background:#2b8a3e}
.insufficient_data,.no_reference,.running{background:#868e96}.failed{background:#5f3dc4}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0}
.card{border:1px solid #dee2e6;border-radius:8px;padding:10px 14px;min-width:150px}
.card b{display:block;font-size:20px}table{border-collapse:collapse;font-size:13px}
th,td{border-bottom:1px solid #e9ecef;padding:4px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}tr.drifted td{background:#fff5f5}
.plots{display:flex;flex-wrap:wrap;gap:16px}
.plot{border:1px solid #e9ecef;border-radius:8px;padding:10px}
.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.note{color:#56616d;font-size:13px}svg text{font-size:10px;fill:#56616d}.wide{overflow-x:auto}
"""


#: The report's stylesheet, for a page that embeds ``render_sections`` (the model console).
REPORT_STYLE = _STYLE


def render_html(report: DriftReport) -> str:
    run = report.run
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Drift report: {escape(run.model_name)} {escape(run.run_id)}</title>",
        f"<style>{_STYLE}</style></head><body>",
    ]
    return "\n".join([*head, *render_sections(report), "</body></html>"])


def render_sections(report: DriftReport) -> list[str]:
    """The report's body (heading, cards, feature table, plots), without the page around it."""
    run = report.run
    parts = [
        f"<h1>Drift report: {escape(run.model_name)} "
        f'<span class="badge {escape(run.status)}">{escape(run.status.replace("_", " "))}</span></h1>',
        f'<p class="meta">run {escape(run.run_id)} ({escape(run.trigger.replace("_", "-"))}) · '
        f"version {_text(run.model_version)} · reference: training run {_text(run.reference_run_id)} · "
        f"window {_text(run.window_start)} to {_text(run.window_end)} · {run.window_rows:,} rows</p>",
    ]
    if run.message:
        parts.append(f'<p class="note">{escape(run.message)}</p>')
    parts.append(_cards(report))
    parts.extend(_notes(report))
    result = report.result
    if result is not None:
        parts.append("<h2>Features, by severity</h2>")
        parts.append(_feature_table(result.features))
        plotted = [f for f in result.features if f.feature in report.distributions][:MAX_PLOTTED]
        if plotted:
            parts.append("<h2>Reference vs window</h2>")
            parts.append(
                '<p class="legend note">shares of rows per bin or category, and cumulative shares:'
                f'<span style="background:{REFERENCE_COLOUR}"></span>reference (training)'
                f'<span style="background:{CURRENT_COLOUR}"></span>window</p>'
            )
            if len(plotted) < len(result.features):
                parts.append(
                    f'<p class="note">The first {len(plotted)} of {len(result.features)} features '
                    "are plotted.</p>"
                )
            parts.append('<div class="plots">')
            parts.extend(_plot(f, report.distributions[f.feature]) for f in plotted)
            parts.append("</div>")
        if result.prediction is not None and report.prediction_distribution is not None:
            parts.append("<h2>Model output</h2>")
            parts.append(_feature_table([result.prediction]))
            parts.append(
                f'<div class="plots">{_plot(result.prediction, report.prediction_distribution)}</div>'
            )
        settings = result.settings
        parts.append(
            f'<p class="note">Settings: alpha {settings.alpha}, {escape(settings.correction)} correction, '
            f"numeric threshold {settings.numeric_threshold} (normalized Wasserstein), categorical threshold "
            f"{settings.categorical_threshold} (Jensen-Shannon), min_rows {settings.min_rows}, dataset drift "
            f"at {settings.dataset_drift_share:.0%} of tested features. A feature drifts when its corrected "
            "p-value is below alpha and its effect size reaches its threshold.</p>"
        )
    if report.concept is not None:
        parts.append("<h2>Concept drift</h2><table>")
        parts.extend(
            f"<tr><td>{escape(str(k))}</td><td>{escape(_value(v))}</td></tr>"
            for k, v in report.concept.items()
        )
        parts.append("</table>")
    parts.append(f'<p class="note">Report format {report.format}; finished {_text(run.finished_at)}.</p>')
    return parts


def _cards(report: DriftReport) -> str:
    run = report.run
    cards = [
        ("drifted features", f"{len(run.drifted_features)} of {run.tested_features}"),
        ("drift share", f"{run.drift_share:.0%}"),
        ("window rows", f"{run.window_rows:,}"),
        ("rows of this version", f"{run.version_rows:,}"),
    ]
    if run.prediction is not None:
        cards.append(("output", run.prediction.status.replace("_", " ")))
    if run.seconds is not None:
        cards.append(("run time", f"{run.seconds:.2f} s"))
    body = "".join(f'<div class="card">{escape(label)}<b>{escape(value)}</b></div>' for label, value in cards)
    return f'<div class="cards">{body}</div>'


def _notes(report: DriftReport) -> list[str]:
    run, notes = report.run, []
    for label, names in (
        ("Missing from the window (not tested)", run.missing_features),
        ("Values that are not numbers (not tested)", run.unexpected_type_features),
        ("In the window but not in the reference profile", run.unknown_features),
    ):
        if names:
            notes.append(f'<p class="note"><b>{label}:</b> {escape(", ".join(names))}</p>')
    if report.window is not None and report.window.malformed_rows:
        notes.append(f'<p class="note">{report.window.malformed_rows} malformed captured rows left out.</p>')
    return notes


def _feature_table(features: Sequence[FeatureDrift]) -> str:
    head = (
        "<tr><th>feature</th><th>kind</th><th>decision</th><th>test</th><th>statistic</th><th>p</th>"
        "<th>corrected p</th><th>effect</th><th>threshold</th><th>severity</th><th>rows (window / ref)</th>"
        "<th>missing (window)</th><th>PSI</th><th>unseen</th></tr>"
    )
    rows = []
    for f in features:
        effect = "" if f.effect_size is None else f"{_number(f.effect_size)} ({_effect_name(f.effect_name)})"
        unseen = ", ".join(f"{c}: {n}" for c, n in sorted(f.unseen_categories.items())[:5])
        decision = f.status.replace("_", " ") + (f" ({f.message})" if f.message and not f.drifted else "")
        rows.append(
            f'<tr class="{"drifted" if f.drifted else ""}"><td>{escape(f.feature)}</td><td>{f.kind}</td>'
            f"<td>{escape(decision)}</td><td>{_text(f.test)}</td><td>{_number(f.statistic)}</td>"
            f"<td>{_p(f.p_value)}</td><td>{_p(f.corrected_p_value)}</td><td>{escape(effect)}</td>"
            f"<td>{_number(f.threshold)}</td><td>{_number(f.severity)}</td>"
            f"<td>{f.window_rows:,} / {f.reference_rows:,}</td><td>{_share(f.window_missing_rate)}</td>"
            f"<td>{_number(f.psi)}</td><td>{escape(unseen)}</td></tr>"
        )
    return f'<div class="wide"><table>{head}{"".join(rows)}</table></div>'


def _plot(feature: FeatureDrift, plotted: NumericDistribution | CategoricalDistribution) -> str:
    title = f"{escape(feature.feature)} · {escape(feature.status.replace('_', ' '))}"
    if feature.effect_size is not None:
        title += f" · effect {_number(feature.effect_size)}"
    if isinstance(plotted, CategoricalDistribution):
        charts = _bars(plotted)
    else:
        charts = _histogram(plotted) + _cdf(plotted)
    return f'<div class="plot"><h3>{title}</h3>{charts}</div>'


def _frame(inner: str, x_labels: tuple[str, str], top: float, label: str) -> str:
    bottom = HEIGHT - PAD
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)}">'
        f'<line x1="{LEFT}" y1="{bottom}" x2="{WIDTH - 6}" y2="{bottom}" stroke="#adb5bd"/>'
        f'<line x1="{LEFT}" y1="8" x2="{LEFT}" y2="{bottom}" stroke="#adb5bd"/>'
        f'<text x="{LEFT}" y="{HEIGHT - 10}">{escape(x_labels[0])}</text>'
        f'<text x="{WIDTH - 6}" y="{HEIGHT - 10}" text-anchor="end">{escape(x_labels[1])}</text>'
        f'<text x="{LEFT - 4}" y="14" text-anchor="end">{_share(top)}</text>'
        f'<text x="{LEFT - 4}" y="{bottom}" text-anchor="end">0</text>{inner}</svg>'
    )


def _histogram(plotted: NumericDistribution) -> str:
    top = max([*plotted.reference, *plotted.current, 1e-9])
    bins = len(plotted.reference)
    span = (WIDTH - 6 - LEFT) / bins
    scale = (HEIGHT - PAD - 12) / top
    bars = []
    for i, (ref, cur) in enumerate(zip(plotted.reference, plotted.current, strict=True)):
        x = LEFT + i * span
        for offset, share, colour in ((0.0, ref, REFERENCE_COLOUR), (span / 2, cur, CURRENT_COLOUR)):
            height = share * scale
            bars.append(
                f'<rect x="{x + offset:.1f}" y="{HEIGHT - PAD - height:.1f}" '
                f'width="{max(span / 2 - 0.5, 0.5):.1f}" height="{height:.1f}" fill="{colour}"/>'
            )
    labels = (_number(plotted.edges[0]), _number(plotted.edges[-1]))
    return _frame("".join(bars), labels, top, "histogram: reference and window")


def _cdf(plotted: NumericDistribution) -> str:
    low, high = plotted.cdf_points[0], plotted.cdf_points[-1]
    width = (high - low) or 1.0

    def line(values: list[float], colour: str) -> str:
        x_scale, y_scale = (WIDTH - 6 - LEFT) / width, HEIGHT - PAD - 12
        points = " ".join(
            f"{LEFT + (x - low) * x_scale:.1f},{HEIGHT - PAD - y * y_scale:.1f}"
            for x, y in zip(plotted.cdf_points, values, strict=True)
        )
        return f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2"/>'

    inner = line(plotted.cdf_reference, REFERENCE_COLOUR) + line(plotted.cdf_current, CURRENT_COLOUR)
    return _frame(inner, (_number(low), _number(high)), 1.0, "cumulative shares: reference and window")


def _bars(plotted: CategoricalDistribution) -> str:
    top = max([*plotted.reference, *plotted.current, 1e-9])
    span = (WIDTH - 6 - LEFT) / max(len(plotted.categories), 1)
    scale = (HEIGHT - PAD - 12) / top
    parts = []
    for i, category in enumerate(plotted.categories):
        x = LEFT + i * span
        for offset, share, colour in (
            (0.0, plotted.reference[i], REFERENCE_COLOUR),
            (span * 0.4, plotted.current[i], CURRENT_COLOUR),
        ):
            height = share * scale
            parts.append(
                f'<rect x="{x + offset + 1:.1f}" y="{HEIGHT - PAD - height:.1f}" width="{span * 0.4:.1f}" '
                f'height="{height:.1f}" fill="{colour}"/>'
            )
        parts.append(
            f'<text x="{x + span * 0.4:.1f}" y="{HEIGHT - PAD + 11}" text-anchor="middle">'
            f"{escape(category[:8])}</text>"
        )
    return _frame("".join(parts), ("", ""), top, "shares per category: reference and window")


def _effect_name(name: str | None) -> str:
    return {"wasserstein_normalized": "Wasserstein/sd", "jensen_shannon": "Jensen-Shannon"}.get(
        name or "", ""
    )


def _number(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return f"{value:.4g}"


def _p(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def _share(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


def _text(value: object) -> str:
    return "-" if value is None else escape(str(value))


def _value(value: object) -> str:
    if value is None:
        return "-"  # not measured (no labels yet, say): a dash, as _text shows it
    return f"{value:.4g}" if isinstance(value, float) else str(value)
